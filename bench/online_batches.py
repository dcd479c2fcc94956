"""``churnstream bench online``: the online models learning each label at once vs. a micro-batch's labels together.

Progressive validation (:func:`models.progressive.run`) over one generated stream, in one run: first each settled
label is learned as it is settled (``learn_one``), then the labels settled by each ``batch`` events are learned
together (``OnlineModel.learn_many``: the scaler takes the batch at once, the regression one SGD step per label), as
the worker learns a micro-batch's labels after it. The online model's AUC on the later half of the labels, per task,
and the seconds per pass (features, scoring and learning included) go in the run record; the AUC moves are taken
between passes of the same run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bench.records import Run
from bench.report import update_section
from core.tasks import TASKS
from features import offline
from models import progressive
from models.registry import Registry
from simulation import generator


def run(console: Console, registry_dir: Path, users: int, days: int, batches: list[int], seed: int = 1) -> Run:
    record = Run.start("online", sys.argv)
    record.sizes = {"users": users, "days": days, "seed": seed, "batches": [1, *batches]}
    with console.status(f"simulating {users:,} users over {days} days"):
        stream = generator.simulate(generator.make_users(users, days, seed), days, seed)
        accepted = offline.accept((e["type"], orjson.dumps(e)) for e in stream)
    registry = Registry(registry_dir)
    champions = {t: registry.load(ref) for t in TASKS if (ref := registry.champion(t))}
    if set(champions) != set(TASKS):
        raise SystemExit("no champion for every task: run `churnstream train` first")
    passes: dict[int, dict[str, Any]] = {}
    for batch in [1, *batches]:
        with console.status(f"progressive validation, labels learned per {batch} events"):
            t0 = time.perf_counter()
            outcome = progressive.run(accepted, champions, batch_events=batch)
            seconds = time.perf_counter() - t0
        halves = {t: o.later_half() for t, o in outcome.items()}
        passes[batch] = {
            "seconds": round(seconds, 1),
            **{f"{t}_auc": round(h["online"]["roc_auc"], 4) for t, h in halves.items()},
            **{f"{t}_labels": int(h["labels"]["n"]) for t, h in halves.items()},
        }
        console.print(f"per {batch} events: {passes[batch]}")
    record.details["passes"] = {str(b): p for b, p in passes.items()}
    figures: dict[str, Any] = {"online_stream_events": len(stream)}
    for batch, p in passes.items():
        for task in TASKS:
            figures[f"online_{task}_auc_per_{batch}"] = p[f"{task}_auc"]
        figures[f"online_pass_seconds_per_{batch}"] = p["seconds"]
    record.figures = figures
    for batch in batches:
        for task in TASKS:
            figures[f"online_{task}_auc_move_per_{batch}"] = round(
                passes[batch][f"{task}_auc"] - passes[1][f"{task}_auc"], 4
            )
        record.ratio(
            f"online_pass_speedup_per_{batch}", "online_pass_seconds_per_1", f"online_pass_seconds_per_{batch}"
        )
    record.save()
    rows = [
        f"| {'each label at once' if b == 1 else f'labels of {b:,} events together'} | "
        f"{p['churn_auc']:.4f} | {p['purchase_auc']:.4f} | {p['seconds']:.1f} |"
        for b, p in passes.items()
    ]
    update_section(
        "online",
        "\n".join(
            [
                "## Online models: learning a micro-batch's labels together",
                "",
                f"Command: `{record.command}`: progressive validation over one generated stream of "
                f"{len(stream):,} events ({users:,} users, {days} days, seed {seed}), the champions of the home "
                "registry scoring beside the online logistic regression, passes in the same run. The AUC is the "
                f"online model's on the later half of the settled labels (churn {passes[1]['churn_labels']:,}, "
                f"purchase {passes[1]['purchase_labels']:,}); the seconds include replaying, features and scoring. "
                f"Run record: [`{record.run_id}`](benchmark-runs/{record.run_id}.json).",
                "",
                "| labels learned | churn AUC | purchase AUC | seconds per pass |",
                "|---|---:|---:|---:|",
                *rows,
            ]
        ),
    )
    return record
