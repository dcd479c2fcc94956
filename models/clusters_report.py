"""The behavioural clusters' section of docs/models.md (between ``<!-- models:clusters -->`` markers) and their entry
in docs/models.json, written by ``churnstream train`` from the run that fitted them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.clusters import COLUMNS
from models.report import DOCS, run_record, write_between

START, END = "<!-- models:clusters -->", "<!-- /models:clusters -->"


def markdown(c: dict[str, Any], run: dict[str, Any]) -> str:
    lines = [
        f"Command: `{run['command']}` at commit `{run['commit'][:12]}`, {run['date']}. Fitted on the "
        f"{c['users']:,} users with an event in the last 60 days of the history, as of its last day end "
        f"(version `{c['version']}`).",
        "",
        "Silhouette by k (the best is kept): "
        + ", ".join(f"k={k}: {v:.3f}" for k, v in sorted(c["silhouettes"].items(), key=lambda kv: int(kv[0])))
        + f". Kept: **k = {c['k']}**, silhouette **{c['silhouette']:.3f}**.",
        "",
        "| cluster | users | share | " + " | ".join(COLUMNS) + " |",
        "|---|---:|---:|" + "---:|" * len(COLUMNS),
    ]
    for p in c["profiles"]:
        means = " | ".join(f"{p['means'][name]:,.2f}" for name in COLUMNS)
        lines.append(f"| {p['cluster']} | {p['users']:,} | {p['share']:.3f} | {means} |")
    return "\n".join(lines)


def write(clusters: dict[str, Any], command: str, data_note: str, docs: Path = DOCS) -> None:
    run = run_record(command, data_note)
    write_between(docs / "models.md", START, END, markdown(clusters, run))
    figures = docs / "models.json"
    data = json.loads(figures.read_text()) if figures.exists() else {}
    data["clusters"] = {k: v for k, v in clusters.items() if k != "profiles"} | {"profiles": clusters["profiles"]}
    figures.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
