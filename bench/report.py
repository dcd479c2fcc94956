"""Write a benchmark's generated section of docs/benchmarks.md; the figures go to run records (bench/records.py).

Only the text between ``<!-- bench:name -->`` and ``<!-- /bench:name -->`` is generated. Analysis and history are
written outside the markers, where the next run of the benchmark leaves them alone.
"""

from __future__ import annotations

from pathlib import Path

from bench.records import DOCS


def update_section(name: str, body: str, path: Path = DOCS / "benchmarks.md") -> None:
    """Replace the text between ``<!-- bench:name -->`` and ``<!-- /bench:name -->`` (appended if missing).

    Everything outside the two markers is kept byte for byte.
    """
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
