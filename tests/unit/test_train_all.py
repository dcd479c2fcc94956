"""``models.train.train_all``, the logic behind ``churnstream train``: on a simulation (with the oracle and the
online models' progressive validation) and on a history file (neither)."""

from __future__ import annotations

from pathlib import Path

import orjson

from features.compute import FEATURE_NAMES
from models import drift
from models.registry import Registry
from models.train import train_all
from simulation import generator


def test_train_all_on_a_simulation_trains_both_tasks_and_validates_the_online_models(tmp_path: Path) -> None:
    registry, steps = Registry(tmp_path), []
    run = train_all(
        registry, users=200, days=130, per_user=4, progressive_users=100, models=("logreg",), progress=steps.append
    )
    assert list(run.reports) == ["churn", "purchase"]
    for task, report in run.reports.items():
        assert report["champion"] == "logreg" and "oracle" in report
        assert registry.champion(task) is not None and registry.champion(task).model == "logreg"  # type: ignore[union-attr]
        assert report["train_time_rows"] > 0  # trained on calendar-grid rows too
        cal = report["calendar"]  # scored at the calendar cutoffs, with the oracle and the baselines
        expected = {"logreg", "oracle", "days since last event"} | ({"BG/NBD"} if task == "purchase" else set())
        assert cal["cutoffs"] and all(set(c["roc_auc"]) == expected for c in cal["cutoffs"])
        assert set(cal["mean"]) >= expected | {"oracle - logreg", "logreg - days since last event"}
        # the training population's bins, for live PSI (models/drift.py): every feature, and the scores
        prof = drift.Profile.from_json(registry.meta(registry.champion(task))["drift"])  # type: ignore[arg-type]
        assert tuple(prof.features) == FEATURE_NAMES and prof.score is not None
        assert all(abs(sum(b.share) - 1) < 1e-4 for b in (*prof.features.values(), prof.score))
        assert max(len(b.edges) for b in prof.features.values()) == 9  # a continuous feature gets its deciles
    assert "200 users over 130 days (seed 0)" in run.source
    assert run.progressive is not None and set(run.progressive) == {"churn", "purchase"}
    for quality in run.progressive.values():
        assert quality["labels"]["n"] > 0 and 0 <= quality["online"]["roc_auc"] <= 1
    assert steps[0] == "preparing history" and steps[-1] == "done"
    assert any(s.startswith("progressive validation on a separate stream of 100 users") for s in steps)


def test_train_all_on_a_history_file_has_no_oracle_and_no_progressive_validation(tmp_path: Path) -> None:
    history = generator.simulate(generator.make_users(200, 130, 0), 130, 0)
    events = tmp_path / "history.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in history))
    run = train_all(Registry(tmp_path / "models"), events=events, per_user=4, models=("logreg",))
    assert run.source == f"history from {events}."
    assert run.progressive is None
    assert all("oracle" not in r and r["champion"] == "logreg" for r in run.reports.values())
    assert all("oracle" not in c["roc_auc"] for r in run.reports.values() for c in r["calendar"]["cutoffs"])
