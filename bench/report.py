"""Write a benchmark's generated section of docs/benchmarks.md; the figures go to run records (bench/records.py).

Only the text between ``<!-- bench:name -->`` and ``<!-- /bench:name -->`` is generated. Analysis and history are
written outside the markers, where the next run of the benchmark leaves them alone.
"""

from __future__ import annotations

from pathlib import Path

from bench.records import DOCS
from models.report import write_between


def update_section(name: str, body: str, path: Path = DOCS / "benchmarks.md") -> None:
    """Replace the text between ``<!-- bench:name -->`` and ``<!-- /bench:name -->`` (appended if missing).

    Everything outside the two markers is kept byte for byte.
    """
    write_between(path, f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->", body, "# Benchmarks\n")
