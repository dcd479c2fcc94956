"""The acceptance of issue 14 for docs/models.md and docs/models.json: the calendar-cutoff figures of the recorded
training run, with both baselines and the oracle, each with its interval, and the means the issue names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
MEANS = {"champion": "calendar_champion_auc", "oracle": "calendar_oracle_auc"}
MEANS |= {"days since last event": "calendar_recency_auc", "BG/NBD": "calendar_bgnbd_auc"}


@pytest.mark.parametrize("task", ["churn", "purchase"])
def test_models_json_has_the_calendar_means_of_the_recorded_run(task: str) -> None:
    report = json.loads((DOCS / "models.json").read_text())
    assert set(report["run"]) >= {"commit", "command", "date", "machine"}
    r = report[task]
    scorers = {*r["models"], "oracle", "days since last event"} | ({"BG/NBD"} if task == "purchase" else set())
    assert set(r["calendar_models"]) == scorers
    cuts = r["calendar_cutoffs"]
    assert len(cuts) >= 6 and all(set(c["roc_auc"]) == scorers and c["users"] > 100 for c in cuts)
    for name, key in MEANS.items():
        if name == "BG/NBD" and task == "churn":
            assert key not in r
            continue
        scorer = r["champion"] if name == "champion" else name
        mean = sum(c["roc_auc"][scorer] for c in cuts) / len(cuts)
        assert r[key] == r["calendar_models"][scorer] and abs(r[key] - mean) <= 1e-3, (task, key)
        low, high = r["calendar_models_ci"][scorer]
        assert low <= r[key] <= high, (task, key)
    for c in cuts:
        for scorer, (low, high) in c["roc_auc_ci"].items():
            assert low <= c["roc_auc"][scorer] <= high, (task, c["date"], scorer)


def test_models_md_shows_the_calendar_table_of_the_same_run() -> None:
    text = (DOCS / "models.md").read_text()
    report = json.loads((DOCS / "models.json").read_text())
    assert report["run"]["commit"][:12] in text
    for task in ("churn", "purchase"):
        r = report[task]
        assert f"#### {task} at calendar cutoffs" in text
        table = text[text.index(f"#### {task} at calendar cutoffs") :]
        for scorer, value in r["calendar_models"].items():
            assert f"| {scorer}" in table and f"{value:.4f} [" in table, (task, scorer)
