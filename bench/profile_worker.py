"""``churnstream bench profile``: where one worker's time goes, from a py-spy profile of a backlog run.

A fresh backlog on its own topics, one worker with all models on, and ``py-spy record`` (raw collapsed stacks, 100
samples/s without pausing the worker, every thread, only samples that hold the GIL: the Python work that one core
serialises) over ``seconds`` once the worker is busy. The summary gives the share of samples per layer (each sample
counted once, for the deepest layer on its stack) and the top functions by self time; the run record keeps both, and
the raw profile is written beside the logs.

>>> stacks = {"run (faust/agent.py);process (streams/processor.py);apply (features/state.py)": 3,
...           "run (faust/agent.py);process (streams/processor.py);insert (clickhouse_connect/x.py)": 1}
>>> layers(stacks)["features/ state fold"], layers(stacks)["faust, aiokafka, mode"], self_time(stacks)[0]
(0.75, 0.0, ('apply (features/state.py)', 0.75))
>>> layer_of("f (clickhouse_connect/driver/insert.py)")  # a package whose path holds "river/" is not river
'ClickHouse client and chDB'
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import features_throughput as ft
from bench.records import Run
from bench.report import update_section
from churnstream.settings import Settings
from infra.processes import free_port

PY_SPY_BIN = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"  # the venv's, then PATH
PY_SPY = ("-r", "100", "-f", "raw", "--nolineno", "--threads", "--gil", "--nonblocking")
LAYERS = {  # label -> path fragments of the frames that belong to it; the first label a frame matches wins
    "features/ state fold": ("features/state.py",),
    "features/ feature vector": ("features/compute.py",),
    "decode (core/contracts, msgspec)": ("core/contracts.py", "msgspec/"),
    "scoring: pretrained models (sklearn, xgboost, numpy)": ("sklearn/", "xgboost/", "numpy/"),
    "scoring: online models (river)": ("river/", "models/online.py"),
    "online learner (labels, snapshots)": ("streams/online.py",),
    "Redis client": ("redis/",),
    "ClickHouse client and chDB": ("clickhouse_connect/", "chdb/"),
    "Prometheus metrics": ("prometheus_client/",),
    "the worker's own code (streams/)": ("streams/",),
    "faust, aiokafka, mode": ("faust/", "aiokafka/", "mode/"),
    "asyncio, uvloop": ("asyncio/", "uvloop/"),
}
OTHER = "other (interpreter, standard library, threads)"


def read_raw(path: Path) -> dict[str, int]:
    """py-spy's raw format: one ``frame;frame;...;leaf count`` line per distinct stack."""
    stacks: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] = stacks.get(stack, 0) + int(count)
    return stacks


def layer_of(stack: str) -> str:
    """The layer of the deepest frame of ``stack`` that belongs to one (the time is spent there, or below it in
    code of no layer)."""
    for frame in reversed(stack.split(";")):
        path = frame[frame.rfind("(") + 1 :]  # "function (package/module.py)"
        for label, fragments in LAYERS.items():
            if any(path.startswith(f) or f"/{f}" in path for f in fragments):
                return label
    return OTHER


def layers(stacks: dict[str, int]) -> dict[str, float]:
    """Share of samples per layer, each sample counted once, for its deepest layer (:func:`layer_of`)."""
    total = sum(stacks.values()) or 1
    share: Counter[str] = Counter()
    for stack, n in stacks.items():
        share[layer_of(stack)] += n
    return {label: round(share[label] / total, 3) for label in (*LAYERS, OTHER)}


def self_time(stacks: dict[str, int], top: int = 15) -> list[tuple[str, float]]:
    """The leaf functions with the most samples, as shares of all samples."""
    total = sum(stacks.values()) or 1
    leaves: Counter[str] = Counter()
    for stack, n in stacks.items():
        leaves[stack.rsplit(";", 1)[-1]] += n
    return [(leaf, round(n / total, 3)) for leaf, n in leaves.most_common(top)]


def run(settings: Settings, console: Console, argv: list[str], users: int, days: int, seconds: int) -> Run:
    record = Run.start("profile", argv)
    prefix = f"prof-{uuid.uuid4().hex[:6]}"
    topics = ft.make_topics(settings, prefix)
    with console.status(f"producing {users:,} users x {days} days of events to {prefix}.*"):
        n = ft.produce(settings, topics, users, days, seed=11)
    record.sizes = {"records": n, "users": users, "days": days, "seconds": seconds}
    port = free_port()
    proc = ft.spawn_worker(ft.worker_env(settings, topics, f"{prefix}-worker", port), "bench-profile.log")
    out = settings.dir("logs") / f"{record.run_id}.pyspy.txt"
    try:
        with console.status("waiting for the worker to be busy"):
            while ft._processed(port) < min(n // 10, 20_000):
                if proc.poll() is not None:
                    raise RuntimeError("the worker exited; see bench-profile.log")
                time.sleep(0.5)
        before, t0 = ft._processed(port), time.perf_counter()
        with console.status(f"py-spy record for {seconds} s"):
            cmd = [PY_SPY_BIN, "record", "--pid", str(proc.pid), "-d", str(seconds), *PY_SPY, "-o", str(out)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 60)
        rate = (ft._processed(port) - before) / (time.perf_counter() - t0)
    finally:
        ft.stop([proc])
    stacks = read_raw(out)
    record.figures["profile_events_per_s"] = round(rate)
    record.details = {"layers": layers(stacks), "self_time": self_time(stacks), "samples": sum(stacks.values())}
    for label, share in record.details["layers"].items():
        console.print(f"{share:6.1%}  {label}")
    _write_section(record)
    console.print(f"run record: {record.save()}")
    return record


def _write_section(record: Run) -> None:
    details: dict[str, Any] = record.details
    dirty = ", with uncommitted changes" if record.dirty else ""
    md = [
        "## Where one worker's time goes (py-spy profile)",
        "",
        f"Command: `{record.command}`: {record.sizes['records']:,} generated records on fresh topics, one worker "
        f"with all models on, `py-spy record {' '.join(PY_SPY)}` for {record.sizes['seconds']} s once it is busy "
        f" ({details['samples']:,} samples holding the GIL), at "
        f"{record.figures['profile_events_per_s']:,} events/s under the profiler. Run record: "
        f"[`{record.run_id}`](benchmark-runs/{record.run_id}.json) (commit `{record.commit[:7]}`{dirty}, "
        f"{record.started_utc}).",
        "",
        "| layer (each sample counted once, for the deepest layer on its stack) | share of samples |",
        "|---|---:|",
        *(f"| {label} | {share:.1%} |" for label, share in details["layers"].items()),
        "",
        "| top functions by self time | share of samples |",
        "|---|---:|",
        *(f"| `{leaf}` | {share:.1%} |" for leaf, share in details["self_time"]),
    ]
    update_section("profile", "\n".join(md))
