"""A do-nothing Faust agent over the given topics: the framework's own floor. Prints one JSON line when done.

Run as: python -m bench.faust_noop <bootstrap> <group> <expected> <topic> [<topic> ...]

``CHURNSTREAM_BENCH_FAUST_MODE`` picks the agent:

- ``default``: ``async for _ in stream`` (faust acks each event), faust as installed;
- ``stock``: the worker's stock pattern, ``stream.noack_take(1000, within=0.2)`` then ``stream.ack`` per event,
  faust's defaults otherwise;
- ``batch``: the batch delivery (``streams/delivery.py`` ``BatchTopic`` + ``batches``, acked per message with
  ``message.ack``) on the ``churnstream-kafka://`` consumer (``streams/transport.py``), faust's defaults otherwise;
- ``worker`` / ``tuned``: ``default`` with the worker's framework settings (uvloop, lean monitor) / plus big
  fetches and buffers (``bench/faust_tuning.py``).

With ``CHURNSTREAM_BENCH_NOOP_LOG=<path>`` the agent also writes ``topic partition offset`` of every message handed
to it, one per line (the batch-delivery integration test counts them), and keeps running after ``expected``
messages until it is stopped, so the commits of the last acks go out. ``CHURNSTREAM_BENCH_NOOP_DELAY_S`` sleeps
that long after each batch (modes ``batch`` and ``stock``), so a test can rebalance the group mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any, TextIO

import faust

PROFILER: Any = None
BATCH, WITHIN_S = 1000, 0.2  # the worker's defaults (CHURNSTREAM_BATCH_SIZE, CHURNSTREAM_BATCH_WITHIN_S)


class Counter:
    """Counts handed-over messages, times from the first, prints the result at ``expected`` (and exits unless
    logging offsets)."""

    def __init__(self, expected: int, log: TextIO | None) -> None:
        self.expected, self.log, self.n, self.first, self.t0 = expected, log, 0, 0, 0.0

    def add(self, messages: list[Any]) -> None:
        if self.log is not None:
            self.log.writelines(f"{m.topic} {m.partition} {m.offset}\n" for m in messages)
            self.log.flush()
        if self.n == 0:  # timed from the first hand-over: its messages are not counted
            self.t0, self.first = time.perf_counter(), len(messages)
        before = self.n
        self.n += len(messages)
        if before < self.expected <= self.n:
            elapsed = time.perf_counter() - self.t0
            counted = self.n - self.first
            print(json.dumps({"events": counted, "seconds": elapsed, "events_per_s": counted / elapsed}), flush=True)
            if PROFILER is not None:  # CHURNSTREAM_BENCH_PROFILE=<path>: pyinstrument's text report of the run
                PROFILER.stop()
                with open(os.environ["CHURNSTREAM_BENCH_PROFILE"], "w") as f:
                    f.write(PROFILER.output_text(unicode=False, color=False, show_all=False))
            if self.log is None:
                os._exit(0)


def main() -> None:
    bootstrap, group, expected, *topics = sys.argv[1:]
    mode = os.environ.get("CHURNSTREAM_BENCH_FAUST_MODE", "default")
    log_path = os.environ.get("CHURNSTREAM_BENCH_NOOP_LOG")
    counter = Counter(int(expected), open(log_path, "a") if log_path else None)  # noqa: SIM115 (lives as long as the process)
    tuning: dict = {}
    if mode in ("worker", "tuned"):
        from bench.faust_tuning import APP_SETTINGS, use_uvloop
        from streams.monitor import LeanMonitor

        use_uvloop()
        tuning = APP_SETTINGS if mode == "tuned" else {"Monitor": LeanMonitor}
    if mode == "batch":
        tuning = {"broker_consumer": f"churnstream-kafka://{bootstrap}"}
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
    delay = float(os.environ.get("CHURNSTREAM_BENCH_NOOP_DELAY_S", "0"))
    if mode == "batch":
        from streams.delivery import BatchTopic, ack_all, batches

        @app.agent(BatchTopic(app, topics=topics))
        async def batch_noop(stream):  # type: ignore[no-untyped-def]
            async for batch in batches(stream, BATCH, WITHIN_S):
                counter.add(batch)
                ack_all(app, batch)
                if delay:
                    await asyncio.sleep(delay)

    elif mode == "stock":

        @app.agent(app.topic(*topics, value_serializer="raw", key_serializer="raw"))
        async def stock_noop(stream):  # type: ignore[no-untyped-def]
            async for events in stream.noack_take(BATCH, within=WITHIN_S):
                counter.add([e.message for e in events])
                for event in events:
                    await stream.ack(event)
                if delay:
                    await asyncio.sleep(delay)

    else:

        @app.agent(app.topic(*topics, value_serializer="raw", key_serializer="raw"))
        async def noop(stream):  # type: ignore[no-untyped-def]
            async for _ in stream:
                counter.add([stream.current_event.message])

    from faust.worker import Worker

    if os.environ.get("CHURNSTREAM_BENCH_PROFILE"):
        from pyinstrument import Profiler

        global PROFILER
        PROFILER = Profiler(async_mode="disabled")
        PROFILER.start()

    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
