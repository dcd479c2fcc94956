"""How ambiguous silence is in the generated data (issue 14), recorded as a run in ``docs/benchmark-runs/``.

ROC-AUC of days-since-last-event alone, the posterior oracle and the clairvoyant oracle at monthly calendar cutoffs
and at event times (``models.ambiguity.measure``). The figures stay in the run record's details: they describe
the generator, not the product, so they are not published in ``docs/benchmarks.json``.

    .venv/bin/python -m bench.ambiguity --users 4000 --days 400 --seed 0
"""

from __future__ import annotations

import json
import shlex
import sys

import typer
from rich.console import Console
from rich.table import Table

from bench.records import DOCS, RUNS, Run
from models.ambiguity import measure


def run(console: Console, users: int, days: int, seed: int, stride: int) -> dict:
    record = Run.start("ambiguity", sys.argv)
    record.command = shlex.join([".venv/bin/python", "-m", "bench.ambiguity", *sys.argv[1:]])
    record.sizes = {"users": users, "days": days, "seed": seed, "event_stride": stride}
    with console.status(f"simulating {users:,} users over {days} days and scoring the rows"):
        result = measure(users, days, seed, stride=stride)
    record.details = result
    benchmarks = DOCS / "benchmarks.json"
    before = benchmarks.read_text() if benchmarks.exists() else None
    path = record.save()
    if before is not None and benchmarks.read_text() != before:  # nothing of ours is published there
        benchmarks.write_text(before)
    table = Table(title=f"ROC-AUC, {users:,} users, {days} days, seed {seed} ({result['events']:,} events)")
    for column in ("rows", "task", "n", "label rate", "recency", "posterior oracle", "clairvoyant"):
        table.add_column(column)
    for rows in ("calendar", "event_time"):
        for task, r in result[rows].items():
            table.add_row(
                rows,
                task,
                f"{r['rows']:,}",
                f"{r['rate']:.3f}",
                *(f"{r[k]:.4f}" for k in ("recency", "oracle", "clairvoyant")),
            )
    console.print(table)
    console.print(f"run record: {path.relative_to(DOCS.parent)} (in docs/{RUNS}/)")
    return result


def main(
    users: int = typer.Option(4000, help="simulated users"),
    days: int = typer.Option(400, help="days of history"),
    seed: int = typer.Option(0, help="generator seed"),
    stride: int = typer.Option(50, help="every this-many-th event is an event-time row"),
    as_json: bool = typer.Option(False, "--json", help="also print the result as JSON"),
) -> None:
    """ROC-AUC of recency alone, the posterior oracle and the clairvoyant at month ends and at event times."""
    result = run(Console(), users, days, seed, stride)
    if as_json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
