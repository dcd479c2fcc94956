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

from models.cutoffs import BGNBD, ORACLE, RECENCY

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


def _difference(d: dict[str, Any]) -> dict[str, Any]:
    auc = d["roc_auc"]
    return {
        "roc_auc": round(auc["value"], 4),
        "ci": [round(auc["low"], 4), round(auc["high"], 4)],
        "within_noise": bool(auc["within_noise"]),
    }


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
                **_difference(r["differences"][f"{champion} - {runner_up}"]),
            }
        if "oracle" in r:
            t["oracle_auc_ci"] = _ci(r["oracle"])
            t["oracle_brier"] = round(r["oracle"]["brier"], 5)
            t["oracle_minus_champion"] = _difference(r["differences"][f"oracle - {champion}"])
        if pv:
            t["progressive_champion_auc"] = round(pv["champion"]["roc_auc"], 4)
        t["time_rows"] = {s: r.get(f"{s}_time_rows", 0) for s in ("train", "validation")}
        t.update(calendar_summary(r.get("calendar")))
        out[task] = t
    return out


_CALENDAR_KEYS = {"champion": "calendar_champion_auc", ORACLE: "calendar_oracle_auc"}
_CALENDAR_KEYS.update({RECENCY: "calendar_recency_auc", BGNBD: "calendar_bgnbd_auc"})


def calendar_summary(cal: dict[str, Any] | None) -> dict[str, Any]:
    """The calendar-cutoff figures of one task in docs/models.json: the mean ROC-AUC over the cutoffs of the
    champion, the oracle, days-since-last-event and BG/NBD (``calendar_*_auc``), every scorer's mean with its
    interval, the paired differences, and each cutoff's ROC-AUCs."""
    if not cal or not cal["cutoffs"]:
        return {}
    mean = cal["mean"]
    scorers = list(cal["cutoffs"][0]["roc_auc"])
    out: dict[str, Any] = {
        "calendar_models": {n: round(mean[n]["value"], 4) for n in scorers},
        "calendar_models_ci": {n: [round(mean[n]["low"], 4), round(mean[n]["high"], 4)] for n in scorers},
        "calendar_differences": {
            k: {**_difference({"roc_auc": v}), "roc_auc": round(v["value"], 4)} for k, v in mean.items() if " - " in k
        },
        "calendar_cutoffs": [
            {
                "date": c["date"],
                "users": c["users"],
                "positive_rate": round(c["positive_rate"], 4),
                "roc_auc": {n: round(v["value"], 4) for n, v in c["roc_auc"].items()},
                "roc_auc_ci": {n: [round(v["low"], 4), round(v["high"], 4)] for n, v in c["roc_auc"].items()},
            }
            for c in cal["cutoffs"]
        ],
    }
    for name, key in _CALENDAR_KEYS.items():
        scorer = cal["champion"] if name == "champion" else name
        if scorer in mean:
            out[key] = round(mean[scorer]["value"], 4)
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


def _ival(c: dict[str, float], digits: int = 4, sign: str = "") -> str:
    return f"{c['value']:{sign}.{digits}f} [{c['low']:{sign}.{digits}f}, {c['high']:{sign}.{digits}f}]"


def calendar_markdown(task: str, cal: dict[str, Any] | None) -> list[str]:
    """The calendar-cutoff part of one task: each scorer's mean ROC-AUC over the cutoffs with its interval and
    its ROC-AUC at each cutoff, then the champion's paired differences against the oracle and the baselines."""
    if not cal or not cal["cutoffs"]:
        return []
    cuts, mean, champion = cal["cutoffs"], cal["mean"], cal["champion"]
    lines = [
        f"#### {task} at calendar cutoffs",
        "",
        f"Every test user with an event in the prior 60 days, scored as of the cutoff's day end ({len(cuts)} "
        f"cutoffs; users per cutoff {min(c['users'] for c in cuts):,} to {max(c['users'] for c in cuts):,}, "
        f"positive rate {min(c['positive_rate'] for c in cuts):.3f} to {max(c['positive_rate'] for c in cuts):.3f}). "
        "The mean's 95% interval resamples the users once for all cutoffs; each cutoff's own interval is in "
        "docs/models.json.",
        "",
        "| scorer | mean ROC-AUC [95% CI] | " + " | ".join(c["date"] for c in cuts) + " |",
        "|---|---:|" + "---:|" * len(cuts),
    ]
    for name in cuts[0]["roc_auc"]:
        label = f"{name} (champion)" if name == champion else name
        cells = " | ".join(f"{c['roc_auc'][name]['value']:.3f}" for c in cuts)
        lines.append(f"| {label} | {_ival(mean[name])} | {cells} |")
    lines.append("")
    for key, d in mean.items():
        if " - " in key:
            noise = " (within the noise)" if d["within_noise"] else ""
            lines.append(f"- {key}, mean ROC-AUC over the cutoffs: {_ival(d, sign='+')}{noise}.")
    lines.append("")
    return lines


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
    path = docs / "models.md"
    text = path.read_text() if path.exists() else "# Models\n\n## Results\n"
    block = f"{START}\n{results_markdown(reports, run, progressive)}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    return data
