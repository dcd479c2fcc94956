"""Write benchmark results: merge figures into docs/benchmarks.json, replace a section of docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs"


def machine() -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        mem_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
    return {"cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1)}


def update_json(figures: dict[str, Any], path: Path = DOCS / "benchmarks.json") -> dict[str, Any]:
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(figures)
    data["machine"] = machine()
    data["date"] = dt.date.today().isoformat()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


def update_section(name: str, body: str, path: Path = DOCS / "benchmarks.md") -> None:
    """Replace the text between ``<!-- bench:name -->`` and ``<!-- /bench:name -->`` (appended if missing)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
