"""Run records: every benchmark run leaves one file with where, when and how it ran and every figure it measured.

A run record (``docs/benchmark-runs/<run_id>.json``) holds the run id, the commit (``git rev-parse HEAD``) with a
dirty flag, the command line, the UTC start and end, the machine (cores, memory, CPU model, kernel, load average
at the start), the sizes the run used, every figure of the run and its details (tables, status codes).
``docs/benchmarks.json`` maps each headline figure to ``{"value": ..., "run": run_id}``; :func:`check` verifies
that every figure there is the figure of the run record it names. A ratio is only ever taken between two figures of
the same run (:meth:`Run.ratio`).

>>> run = Run.start("demo", ["churnstream", "bench", "demo"], docs=None)
>>> run.figures.update(a_events_per_s=300, b_events_per_s=600)
>>> run.ratio("a_vs_b_ratio", "a_events_per_s", "b_events_per_s", 3)
0.5
>>> run.ratio("x", "a_events_per_s", "missing_events_per_s")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
KeyError: 'missing_events_per_s is not a figure of run ...'
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.machine import machine

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUNS = "benchmark-runs"
#: files the benchmarks themselves write: their changes do not make the checkout dirty
OUTPUTS = ("docs/benchmarks.md", "docs/benchmarks.json", f"docs/{RUNS}/")


def git_state(root: Path = ROOT) -> tuple[str, bool]:
    """The checked-out commit and whether files other than the benchmarks' own outputs differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout

    commit = git("rev-parse", "HEAD").strip()
    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=all").splitlines()]
    return commit, any(not path.startswith(OUTPUTS) for path in changed)


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Run:
    """One benchmark run: fill ``figures`` (headline numbers) and ``details``, then :meth:`save`."""

    run_id: str
    bench: str
    command: str
    argv: list[str]
    commit: str
    dirty: bool
    started_utc: str
    machine: dict[str, Any]
    sizes: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    finished_utc: str | None = None
    outcome: str = "running"
    docs: Path | None = field(default=DOCS, repr=False)

    @classmethod
    def start(cls, bench: str, argv: list[str], docs: Path | None = DOCS) -> Run:
        commit, dirty = git_state() if docs is not None else ("0" * 40, False)
        started = now_utc()
        stamp = started.replace("-", "").replace(":", "")
        return cls(
            run_id=f"{stamp}-{bench}-{commit[:7]}",
            bench=bench,
            command=shlex.join(["churnstream", *argv[1:]]),
            argv=list(argv),
            commit=commit,
            dirty=dirty,
            started_utc=started,
            machine=machine(),
            docs=docs,
        )

    def ratio(self, name: str, numerator: str, denominator: str, digits: int = 3) -> float:
        """``numerator / denominator``, both figures of this run, stored as figure ``name``."""
        for figure in (numerator, denominator):
            if self.figures.get(figure) is None:
                raise KeyError(f"{figure} is not a figure of run {self.run_id}")
        value = round(self.figures[numerator] / self.figures[denominator], digits)
        self.figures[name] = value
        return value

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("docs")
        return out

    def save(self, outcome: str = "ok") -> Path:
        """Write the run record; with ``outcome == "ok"`` also publish its figures in ``benchmarks.json``."""
        assert self.docs is not None, "a run without a docs directory is not saved"
        self.outcome, self.finished_utc = outcome, now_utc()
        self.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        path = self.docs / RUNS / f"{self.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record(), indent=2, sort_keys=True) + "\n")
        if outcome == "ok":
            publish(self.figures, self.run_id, self.docs / "benchmarks.json")
        return path


def publish(figures: dict[str, Any], run_id: str, path: Path) -> dict[str, Any]:
    """Set each figure in ``benchmarks.json`` to ``{"value", "run"}``; figures of other runs stay as they are."""
    data = json.loads(path.read_text()) if path.exists() else {}
    table = data.setdefault("figures", {})
    for name, value in figures.items():
        if value is not None:
            table[name] = {"value": value, "run": run_id}
    data["runs"] = f"docs/{RUNS}/<run>.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


def check(path: Path) -> list[str]:
    """Problems with ``benchmarks.json``: a figure without a run, a run without a record, or a value that differs
    from the record's. An empty list means every figure is the figure of the run record it names."""
    data = json.loads(path.read_text())
    problems = [f"top-level key {k!r} is not a sourced figure" for k in data if k not in ("figures", "runs")]
    for name, entry in data.get("figures", {}).items():
        if not isinstance(entry, dict) or set(entry) != {"value", "run"}:
            problems.append(f"{name}: not {{value, run}}: {entry!r}")
            continue
        record_path = path.parent / RUNS / f"{entry['run']}.json"
        if not record_path.exists():
            problems.append(f"{name}: run record {record_path.name} does not exist")
            continue
        record = json.loads(record_path.read_text())
        if record.get("outcome") != "ok":
            problems.append(f"{name}: run {entry['run']} did not succeed ({record.get('outcome')})")
        if name not in record.get("figures", {}):
            problems.append(f"{name}: run {entry['run']} has no such figure")
        elif record["figures"][name] != entry["value"]:
            problems.append(f"{name}: {entry['value']!r} here, {record['figures'][name]!r} in run {entry['run']}")
    return problems
