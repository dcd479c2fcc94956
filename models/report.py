"""docs/models.md and docs/models.json from training reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.tasks import TASKS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def write(
    reports: dict[str, dict[str, Any]],
    command: str,
    data_note: str,
    progressive: dict[str, dict[str, Any]] | None = None,
) -> None:
    """``progressive``: task -> later-half quality of the online model and the champion on the same labels."""
    summary: dict[str, Any] = {}
    for task, r in reports.items():
        pv = (progressive or {}).get(task)
        summary[task] = {
            "oracle_auc": round(r["oracle"]["roc_auc"], 4) if "oracle" in r else None,
            "champion": r["champion"],
            "champion_auc": round(r["models"][r["champion"]]["roc_auc"], 4),
            "online_auc": round(pv["online"]["roc_auc"], 4) if pv else None,
            "models": {m: round(v["roc_auc"], 4) for m, v in r["models"].items()},
        }
        if pv:
            summary[task]["progressive_champion_auc"] = round(pv["champion"]["roc_auc"], 4)
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
        pv = (progressive or {}).get(task)
        if pv:
            lines += [
                f"| online (river, progressive validation) | {pv['online']['roc_auc']:.4f} | "
                f"{pv['online']['pr_auc']:.4f} | {pv['online']['log_loss']:.4f} | {pv['online']['brier']:.4f} "
                "| | | | | |",
                "",
                f"Progressive validation over one pass of a separate simulated stream (`models/progressive.py`): "
                f"on the {pv['labels']['n']:,.0f} labels resolved in the later half, the online model reaches "
                f"ROC-AUC {pv['online']['roc_auc']:.4f} against {pv['champion']['roc_auc']:.4f} for the champion "
                "on the same snapshots.",
                "",
            ]
        else:
            lines += ["| online (river) | see progressive validation | | | | | | | | |", ""]
    lines += [
        "## Registry",
        "",
        "`<home>/models/<task>/<model>/<version>/` holds the artifact and `meta.json`. Artifacts are XGBoost's own "
        "JSON, or scikit-learn through skops, loaded with an allow-list of scikit-learn and numpy types. "
        "`meta.json` records the feature names and order, training window, metrics, data fingerprint, library "
        "versions and sha256. Loading verifies all of it. A corrupt artifact, a checksum mismatch or another "
        "feature list is refused with a clear error, and the previous champion keeps serving. "
        "`<home>/models/<task>/champion.json` names the champion: `churnstream train` promotes the best test "
        "AUC, and `churnstream models promote TASK MODEL` sets one by hand. A running worker picks up a "
        "promotion within `CHURNSTREAM_MODEL_RELOAD_S` seconds.",
        "",
        "## Online models and delayed labels",
        "",
        "Per task, a river pipeline (`CHURNSTREAM_ONLINE_MODEL=logreg`: standard scaler + logistic regression; "
        "`arf`: adaptive random forest) scores every event next to the champion. After each batch, a user "
        "without a pending snapshot for a task gets one: the features, as_of and the scores made then, kept in "
        "Redis (`cs:p:{user}`, at most one per task). A later purchase within 30 days settles the purchase "
        "label as 1, and any later event within 60 days settles churn as 0. An expiry index per partition "
        "(`cs:exp:<partition>`, a sorted set by as_of + horizon) settles the rest once the event-time watermark "
        "(latest event time less `CHURNSTREAM_LABEL_LATENESS_S`) passes the horizon: purchase 0, churn 1. "
        "Each settled label first scores the predictions made at snapshot time (progressive validation), then "
        "trains the online model. Rolling ROC-AUC and log loss per (task, model kind) go to ClickHouse "
        "`model_metrics` every `CHURNSTREAM_ONLINE_METRICS_S` seconds. Models are checkpointed to Redis every "
        "`CHURNSTREAM_ONLINE_CHECKPOINT_S` seconds, signed with HMAC-SHA256, and restored at start.",
    ]
    (DOCS / "models.md").write_text("\n".join(lines) + "\n")
