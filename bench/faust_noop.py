"""A do-nothing Faust agent over the given topics: the framework's own floor. Prints one JSON line when done.

Run as: python -m bench.faust_noop <bootstrap> <group> <expected> <topic> [<topic> ...]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import faust


def main() -> None:
    bootstrap, group, expected, *topics = sys.argv[1:]
    n_expected = int(expected)
    # default: faust as installed; worker: the worker's framework settings (uvloop, a monitor without per-event
    # stats); tuned: those plus big fetches and stream buffers (bench/faust_tuning.py, not used by the worker)
    mode = os.environ.get("CHURNSTREAM_BENCH_FAUST_MODE", "default")
    tuning: dict = {}
    if mode in ("worker", "tuned"):
        from bench.faust_tuning import APP_SETTINGS, use_uvloop
        from streams.monitor import LeanMonitor

        use_uvloop()
        tuning = APP_SETTINGS if mode == "tuned" else {"Monitor": LeanMonitor}
    datadir = os.path.join(tempfile.gettempdir(), "churnstream-faust-noop")
    os.makedirs(datadir, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=os.path.join(datadir, "{conf.name}"),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        **tuning,
    )
    source = app.topic(*topics, value_serializer="raw", key_serializer="raw")
    seen = {"n": 0, "t0": 0.0}

    @app.agent(source)
    async def noop(stream):  # type: ignore[no-untyped-def]
        async for _ in stream:
            seen["n"] += 1
            if seen["n"] == 1:
                seen["t0"] = time.perf_counter()
            elif seen["n"] >= n_expected:
                elapsed = time.perf_counter() - seen["t0"]
                print(
                    json.dumps(
                        {"events": seen["n"] - 1, "seconds": elapsed, "events_per_s": (seen["n"] - 1) / elapsed}
                    ),
                    flush=True,
                )
                os._exit(0)

    from faust.worker import Worker

    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
