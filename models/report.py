"""docs/models.md and docs/models.json from a recorded training run.

The JSON carries the run record (commit, command, date, machine, data) and the figures. In the Markdown only
the text between ``<!-- models:results -->`` and ``<!-- /models:results -->`` is generated; the prose around it
is kept, so a rerun replaces the figures and nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from models.calendar_report import calendar_markdown, calendar_summary, difference

DOCS = Path(__file__).resolve().parents[1] / "docs"
START, END = "<!-- models:results -->", "<!-- /models:results -->"


def run_record(command: str, data_note: str) -> dict[str, Any]:
    """What produced the figures: commit (``-dirty`` with uncommitted changes), command, UTC time, machine."""
    from infra.machine import machine

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return {
        "commit": commit,
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {**machine(), "python": platform.python_version()},
        "data": data_note,
    }


def _ci(m: dict[str, Any], metric: str = "roc_auc") -> list[float]:
    c = m["ci"][metric]
    return [round(c["low"], 4), round(c["high"], 4)]


def summary(
    reports: dict[str, dict[str, Any]], run: dict[str, Any], progressive: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The figures of docs/models.json: test ROC-AUC per model with its interval, validation ROC-AUC, the champion
    (best on validation), paired differences, and the oracle's ROC-AUC and Brier score against the base rate."""
    out: dict[str, Any] = {"run": run}
    for task, r in reports.items():
        pv = (progressive or {}).get(task)
        champion, runner_up = r["champion"], r.get("runner_up")
        rate = r["test_positive_rate"]
        t: dict[str, Any] = {
            "champion": champion,
            "champion_auc": round(r["models"][champion]["roc_auc"], 4),
            "models": {m: round(v["roc_auc"], 4) for m, v in r["models"].items()},
            "models_ci": {m: _ci(v) for m, v in r["models"].items()},
            "validation_auc": {m: round(v["validation_roc_auc"], 4) for m, v in r["models"].items()},
            "rows": {s: r[f"{s}_rows"] for s in ("train", "validation", "test")},
            "users": {s: r[f"{s}_users"] for s in ("train", "validation", "test")},
            "test_positive_rate": round(rate, 5),
            "base_rate_brier": round(rate * (1 - rate), 5),
            "online_auc": round(pv["online"]["roc_auc"], 4) if pv else None,
            "oracle_auc": round(r["oracle"]["roc_auc"], 4) if "oracle" in r else None,
        }
        if runner_up:
            t["champion_minus_runner_up"] = {
                "runner_up": runner_up,
                **difference(r["differences"][f"{champion} - {runner_up}"]),
            }
        if "oracle" in r:
            t["oracle_auc_ci"] = _ci(r["oracle"])
            t["oracle_brier"] = round(r["oracle"]["brier"], 5)
            t["oracle_minus_champion"] = difference(r["differences"][f"oracle - {champion}"])
        if pv:
            t["progressive_champion_auc"] = round(pv["champion"]["roc_auc"], 4)
        t["time_rows"] = {s: r.get(f"{s}_time_rows", 0) for s in ("train", "validation")}
        t.update(calendar_summary(r.get("calendar")))
        out[task] = t
    return out


def _interval(m: dict[str, Any], metric: str, digits: int) -> str:
    c = m["ci"][metric]
    return f"{c['value']:.{digits}f} [{c['low']:.{digits}f}, {c['high']:.{digits}f}]"


def results_markdown(
    reports: dict[str, dict[str, Any]], run: dict[str, Any], progressive: dict[str, dict[str, Any]] | None = None
) -> str:
    """The generated block of docs/models.md."""
    resamples = next(iter(reports.values())).get("resamples", 0) if reports else 0
    lines = [
        f"Command: `{run['command']}` at commit `{run['commit'][:12]}`, {run['date']}, on "
        f"{run['machine']['cores']} cores and {run['machine']['memory_gb']} GB (Python {run['machine']['python']}). "
        f"{run['data']}",
        "",
        f"Test figures are on the test users only, with 95% intervals from {resamples} bootstrap resamples of those "
        "users (seeded). The champion is the best ROC-AUC on the validation users.",
        "",
    ]
    for task, r in reports.items():
        champion, runner_up = r["champion"], r.get("runner_up")
        rate = r["test_positive_rate"]
        lines += [
            f"### {task}",
            "",
            f"Rows (users): training {r['train_rows']:,} ({r['train_users']:,}), validation {r['validation_rows']:,} "
            f"({r['validation_users']:,}), test {r['test_rows']:,} ({r['test_users']:,}). Test positive rate "
            f"{rate:.4f}: a constant base rate scores Brier {rate * (1 - rate):.5f}. Champion: **{champion}**.",
            "",
            "| model | validation ROC-AUC | test ROC-AUC [95% CI] | test Brier [95% CI] | log loss | PR-AUC "
            "| 1 row (us) | batch per row (us) | size (KB) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        if "oracle" in r:
            o = r["oracle"]
            lines.append(
                f"| oracle (true probability) | - | {_interval(o, 'roc_auc', 4)} | {_interval(o, 'brier', 5)} "
                f"| {o['log_loss']:.4f} | {o['pr_auc']:.4f} | - | - | - |"
            )
        for name, m in r["models"].items():
            star = " (champion)" if name == champion else ""
            lines.append(
                f"| {name}{star} | {m['validation_roc_auc']:.4f} | {_interval(m, 'roc_auc', 4)} "
                f"| {_interval(m, 'brier', 5)} | {m['log_loss']:.4f} | {m['pr_auc']:.4f} | {m['single_row_us']:.0f} "
                f"| {m['batch_per_row_us']:.2f} | {m['size_bytes'] / 1024:.0f} |"
            )
        lines.append("")
        if runner_up:
            d = r["differences"][f"{champion} - {runner_up}"]["roc_auc"]
            verdict = (
                "**within the noise**: the interval contains 0, so this test does not tell them apart"
                if d["within_noise"]
                else "outside the noise"
            )
            lines.append(
                f"- Champion {champion} minus runner-up {runner_up} (by validation), test ROC-AUC: "
                f"{d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}], {verdict}."
            )
        if "oracle" in r:
            d = r["differences"][f"oracle - {champion}"]["roc_auc"]
            lines.append(
                f"- Oracle minus champion, test ROC-AUC: {d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
                + (" (within the noise)." if d["within_noise"] else ".")
            )
        pv = (progressive or {}).get(task)
        if pv:
            lines.append(
                f"- Online (river), progressive validation over one pass of a separate simulated stream "
                f"(`models/progressive.py`): on the {pv['labels']['n']:,.0f} labels resolved in the later half, "
                f"ROC-AUC {pv['online']['roc_auc']:.4f} (log loss {pv['online']['log_loss']:.4f}, Brier "
                f"{pv['online']['brier']:.4f}) against {pv['champion']['roc_auc']:.4f} for the champion on the "
                "same snapshots."
            )
        lines.append("")
        lines += calendar_markdown(task, r.get("calendar"))
    return "\n".join(lines).rstrip()


def write(
    reports: dict[str, dict[str, Any]],
    command: str,
    data_note: str,
    progressive: dict[str, dict[str, Any]] | None = None,
    docs: Path = DOCS,
) -> dict[str, Any]:
    """``progressive``: task -> later-half quality of the online model and the champion on the same labels."""
    run = run_record(command, data_note)
    data = summary(reports, run, progressive)
    (docs / "models.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    write_between(
        docs / "models.md", START, END, results_markdown(reports, run, progressive), "# Models\n\n## Results\n"
    )
    return data


def write_between(path: Path, start: str, end: str, body: str, new: str = "") -> None:
    """Replace the text between the ``start`` and ``end`` markers of ``path`` with ``body`` (the block is appended
    if they are missing; ``new`` is the file's text if it does not exist). Everything else stays byte for byte."""
    text = path.read_text() if path.exists() else new
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
