"""docs/models.md and docs/models.json from training reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.tasks import TASKS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def write(reports: dict[str, dict[str, Any]], command: str, data_note: str) -> None:
    summary: dict[str, Any] = {}
    for task, r in reports.items():
        summary[task] = {
            "oracle_auc": round(r["oracle"]["roc_auc"], 4) if "oracle" in r else None,
            "champion": r["champion"],
            "champion_auc": round(r["models"][r["champion"]]["roc_auc"], 4),
            "online_auc": None,  # the online (river) models are not built yet
            "models": {m: round(v["roc_auc"], 4) for m, v in r["models"].items()},
        }
    (DOCS / "models.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    lines = [
        "# Models",
        "",
        "## Tasks",
        "",
        "| task | label = 1 when | horizon |",
        "|---|---|---|",
        f"| `churn` | the user has **no event of any type** in (as_of, as_of + {TASKS['churn'].horizon_days} days] "
        f"| {TASKS['churn'].horizon_days} days |",
        f"| `purchase` | the user makes **at least one purchase** in (as_of, as_of + "
        f"{TASKS['purchase'].horizon_days} days] | {TASKS['purchase'].horizon_days} days |",
        "",
        "Training rows are sampled at users' event times, because the stream scores right after an event. Their "
        "features come from the offline builder, which uses the same fold and the same `features()` as the "
        "stream. Labels use only events after as_of. The split is by time: the test as_of points are the last "
        "30 days that still have full labels, and training as_of points end one horizon before the test "
        "starts, so no training label overlaps the test period.",
        "",
        "The **oracle** scores each test row with the true probability computed from the generator's latent "
        "parameters (engagement, churn hazard, purchase propensity, cart rate, weekday profile; see "
        "`models/oracle.py`). No model can rank better, so its AUC is the ceiling.",
        "",
        "## Results",
        "",
        f"Command: `{command}`. {data_note}",
        "",
    ]
    for task, r in reports.items():
        lines += [
            f"### {task}",
            "",
            f"{r['train_rows']:,} training rows (positive rate {r['train_positive_rate']:.3f}), "
            f"{r['test_rows']:,} test rows (positive rate {r['test_positive_rate']:.3f}). "
            f"Champion: **{r['champion']}**.",
            "",
            "| model | ROC-AUC | PR-AUC | log loss | Brier | precision top 10% | recall top 10% | 1 row (us) "
            "| batch per row (us) | size (KB) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        if "oracle" in r:
            o = r["oracle"]
            lines.append(
                f"| oracle (true probability) | {o['roc_auc']:.4f} | {o['pr_auc']:.4f} | {o['log_loss']:.4f} "
                f"| {o['brier']:.4f} | {o['precision_top_decile']:.3f} | {o['recall_top_decile']:.3f} "
                "| - | - | - |"
            )
        for name, m in r["models"].items():
            star = " (champion)" if name == r["champion"] else ""
            lines.append(
                f"| {name}{star} | {m['roc_auc']:.4f} | {m['pr_auc']:.4f} | {m['log_loss']:.4f} | {m['brier']:.4f} "
                f"| {m['precision_top_decile']:.3f} | {m['recall_top_decile']:.3f} | {m['single_row_us']:.0f} "
                f"| {m['batch_per_row_us']:.2f} | {m['size_bytes'] / 1024:.0f} |"
            )
        lines += ["| online (river) | not built yet | | | | | | | | |", ""]
    (DOCS / "models.md").write_text("\n".join(lines) + "\n")
