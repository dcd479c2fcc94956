"""Does a failed insert leave its deduplication token behind? Measured on embedded chDB, recorded as a run in
``docs/benchmark-runs/``.

A ``predictions``-shaped table (ReplacingMergeTree, partitioned, a materialized view into a second table, the
deduplication window on) takes inserts of ``--rows`` rows under an ``insert_deduplication_token`` while a thread
freezes its data directories with ``chattr +i`` (as a disk that remounts read-only) for a few milliseconds at a
time. Each failed insert is redone as the worker does (:mod:`streams.written`): ask which rows exist, insert the
others. Three ways to pick the redo's token:

- ``batch``: the failed insert's token again (the event path before the fix);
- ``rows``: a digest of the rows redone (the time path before the fix);
- ``retry``: a new token for every redo (:func:`streams.written.retry_token`).

The raw row count tells whether rows were lost (a redo dropped as a duplicate) or written twice.

    .venv/bin/python -m bench.dedup_after_failure --inserts 300 --rows 100
"""

from __future__ import annotations

import hashlib
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.records import DOCS, RUNS, Run
from streams.written import retry_token

MODES = ("batch", "rows", "retry")


def _one(session: Any, sql: str) -> str:
    return str(session.query(sql, "TSV").bytes().decode().strip())


class FreezingTable:
    """The table, its materialized view target, and the freezer."""

    def __init__(self, root: Path) -> None:
        from chdb import session

        self.s = session.Session(str(root))
        self.root = root
        for sql in (
            "CREATE DATABASE IF NOT EXISTS d ENGINE = Atomic",
            "CREATE TABLE d.t (k UInt64, p UInt8, v String) ENGINE = ReplacingMergeTree PARTITION BY p ORDER BY k "
            "SETTINGS non_replicated_deduplication_window = 1000",
            "CREATE TABLE d.latest (k UInt64, p UInt8) ENGINE = ReplacingMergeTree ORDER BY k "
            "SETTINGS non_replicated_deduplication_window = 1000",
            "CREATE MATERIALIZED VIEW d.mv TO d.latest AS SELECT k, p FROM d.t",
        ):
            self.s.query(sql)
        self.frozen = [self._dir("t"), self._dir("latest")]
        self.stop = False

    def _dir(self, name: str) -> str:
        path = _one(self.s, f"SELECT data_paths[1] FROM system.tables WHERE database = 'd' AND name = '{name}'")
        return path if path.startswith("/") else str(self.root / path)

    def freeze_now_and_then(self) -> None:
        rng = random.Random(0)
        while not self.stop:
            time.sleep(rng.uniform(0.001, 0.02))
            subprocess.run(["chattr", "+i", *self.frozen], check=True)
            time.sleep(rng.uniform(0.001, 0.02))
            subprocess.run(["chattr", "-i", *self.frozen], check=True)

    def thaw(self) -> None:
        self.stop = True
        subprocess.run(["chattr", "-i", *self.frozen], check=False)

    def insert(self, keys: list[int], token: str) -> None:
        values = ",".join(f"({k},{k % 3},'x')" for k in keys)
        self.s.query(f"INSERT INTO d.t SETTINGS insert_deduplication_token = '{token}' VALUES {values}")

    def existing(self, low: int, high: int) -> set[int]:
        return {int(k) for k in _one(self.s, f"SELECT k FROM d.t WHERE k BETWEEN {low} AND {high}").split()}


def measure(mode: str, inserts: int, rows: int, progress: Progress) -> dict[str, int]:
    root = Path(tempfile.mkdtemp(prefix=f"dedup-{mode}-"))
    table = FreezingTable(root)
    freezer = threading.Thread(target=table.freeze_now_and_then, daemon=True)
    freezer.start()
    failed = 0
    task = progress.add_task(f"{mode}: {inserts:,} inserts", total=inserts)
    try:
        for i in range(inserts):
            keys = list(range(i * rows, (i + 1) * rows))
            for attempt in range(1000):
                have = table.existing(keys[0], keys[-1]) if attempt else set()
                todo = [k for k in keys if k not in have]
                if not todo:
                    break
                token = f"batch{i}" if mode == "batch" else hashlib.sha1(str(todo).encode()).hexdigest()
                if mode == "retry" and attempt:
                    token = retry_token(token)
                try:
                    table.insert(todo, token)
                    break
                except Exception:
                    failed += 1
                    time.sleep(0.005)
            progress.advance(task)
    finally:
        table.thaw()
        freezer.join()
    raw = int(_one(table.s, "SELECT count() FROM d.t"))
    distinct = int(_one(table.s, "SELECT uniqExact(k) FROM d.t"))
    shutil.rmtree(root, ignore_errors=True)
    return {"failed_inserts": failed, "raw_rows": raw, "distinct_rows": distinct, "expected_rows": inserts * rows}


def main(
    inserts: int = typer.Option(300, help="inserts per mode"),
    rows: int = typer.Option(100, help="rows per insert"),
) -> None:
    """Rows lost or doubled when failed inserts are redone under each way of picking the redo's token."""
    console = Console()
    record = Run.start("dedup_after_failure", sys.argv)
    record.command = shlex.join([".venv/bin/python", "-m", "bench.dedup_after_failure", *sys.argv[1:]])
    record.sizes = {"inserts": inserts, "rows": rows}
    results: dict[str, dict[str, int]] = {}
    with Progress(console=console) as progress:
        for mode in MODES:
            results[mode] = measure(mode, inserts, rows, progress)
    record.details = results
    benchmarks = DOCS / "benchmarks.json"
    before = benchmarks.read_text() if benchmarks.exists() else None
    path = record.save()
    if before is not None and benchmarks.read_text() != before:  # a finding about chDB: nothing to publish there
        benchmarks.write_text(before)
    out = Table(title=f"{inserts:,} inserts of {rows} rows while the table freezes now and then")
    for column in ("redo token", "failed inserts", "raw rows", "distinct", "expected", "lost"):
        out.add_column(column)
    for mode, r in results.items():
        lost = r["expected_rows"] - r["distinct_rows"]
        out.add_row(
            mode, *(f"{r[k]:,}" for k in ("failed_inserts", "raw_rows", "distinct_rows", "expected_rows")), f"{lost:,}"
        )
    console.print(out)
    console.print(f"run record: {path.relative_to(DOCS.parent)} (in docs/{RUNS}/)")


if __name__ == "__main__":
    typer.run(main)
