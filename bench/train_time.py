"""`churnstream bench train`: wall time to train every model for both tasks on >= 1M generated events."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console

from bench.records import Run
from bench.report import update_section
from features import offline
from models.registry import Registry
from models.train import train_task
from simulation import generator


def run(console: Console, users: int, days: int, seed: int = 0) -> dict[str, float]:
    record = Run.start("train", sys.argv)
    record.sizes = {"users": users, "days": days, "seed": seed}
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with console.status(f"simulating {users:,} users over {days} days"):
        history = generator.simulate(generator.make_users(users, days, seed), days, seed)
    timings["simulate_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    with console.status(f"accepting {len(history):,} events"):
        accepted = offline.accept((e["type"], orjson.dumps(e)) for e in history)
    timings["accept_s"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp))
        for task in ("churn", "purchase"):
            t = time.perf_counter()
            with console.status(f"training {task}") as status:
                report = train_task(accepted, task, registry, progress=lambda m: status.update(m))
            timings[f"train_{task}_s"] = time.perf_counter() - t
            timings[f"{task}_train_rows"] = report["train_rows"]
    total = time.perf_counter() - t0
    command = record.command
    record.figures = {"train_events": len(history), "train_seconds": round(total, 1)}
    record.details["timings"] = timings
    record.save()
    update_section(
        "train",
        "\n".join(
            [
                "## Training time",
                "",
                f"Command: `{command}`. {len(history):,} simulated events of {users:,} users over {days} days, "
                "simulated, accepted, turned into point-in-time training sets and used to train all four models "
                f"for both tasks: **{total / 60:.1f} minutes** in total (target: 1M events within 10 minutes). "
                f"Run record: [`{record.run_id}`](benchmark-runs/{record.run_id}.json).",
                "",
                "| step | seconds |",
                "|---|---:|",
                *(f"| {k.removesuffix('_s')} | {v:.1f} |" for k, v in timings.items() if k.endswith("_s")),
                "",
                f"Training rows: churn {timings['churn_train_rows']:,.0f}, "
                f"purchase {timings['purchase_train_rows']:,.0f}.",
            ]
        ),
    )
    console.print(f"{len(history):,} events, trained in {total:.0f}s (docs/benchmarks.md updated)")
    return timings
