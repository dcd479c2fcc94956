"""Champion/challenger experiments: stable assignment (property-based), the registry's experiment files, and the
scorer's rows while one runs (both variants score every row; each user is served their variant's score)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contracts import Event
from features.compute import FEATURE_NAMES
from models.champions import Champions
from models.experiments import Experiment, Experiments
from models.pretrained import create
from models.registry import ModelRef, Registry
from streams.scoring import PREDICTION_COLUMNS, EventRow, Scorer, TimeRow

ids = st.text(min_size=1, max_size=40)
OTHER = {"champion": "challenger", "challenger": "champion"}


@settings(max_examples=300, deadline=None)
@given(ids, st.lists(ids, min_size=1, max_size=30), st.floats(0.01, 0.99), st.sampled_from(["served", "shadow"]))
def test_a_user_s_variant_never_changes_within_an_experiment(
    experiment: str, users: list[str], share: float, mode: str
) -> None:
    """The same (experiment, user) always gives the same variant: in another process (the registry file read
    again), in any order, and the served variant is the user's (served mode) or always the champion (shadow)."""
    exp = Experiment(experiment, "churn", "xgboost", "v2", share, mode, started_ms=1)
    first = {u: exp.variant(u) for u in users}
    again = Experiment.from_json(exp.to_json())  # another process reading the registry file
    assert {u: again.variant(u) for u in reversed(users)} == first
    assert all(exp.served(u) == (first[u] if mode == "served" else "champion") for u in users)


def test_the_challenger_share_is_the_share_asked_and_another_experiment_draws_afresh() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    a = Experiment("a", "churn", "m", "v", 0.3, "served", 0)
    b = Experiment("b", "churn", "m", "v", 0.3, "served", 0)
    in_a = {u for u in users if a.variant(u) == "challenger"}
    in_b = {u for u in users if b.variant(u) == "challenger"}
    assert abs(len(in_a) / len(users) - 0.3) < 0.015
    assert abs(len(in_a & in_b) / len(users) - 0.09) < 0.015  # independent draws: 0.3 x 0.3


def fit(name: str, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, len(FEATURE_NAMES)))
    return create(name, seed).fit(X, (X[:, seed] > 0).astype(np.int8))


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Registry, ModelRef, ModelRef]:
    reg = Registry(tmp_path)
    champion = reg.save("churn", fit("logreg", 0), {})
    reg.promote(champion)
    return reg, champion, reg.save("churn", fit("logreg", 1), {})


def test_experiments_start_once_per_task_end_and_are_kept(registry: tuple[Registry, ModelRef, ModelRef]) -> None:
    reg, _, challenger = registry
    store = Experiments(reg.root)
    exp = store.start(challenger, 0.5, "served")
    assert store.running("churn") == exp and store.running("purchase") is None
    with pytest.raises(ValueError, match="running"):
        store.start(challenger, 0.2)
    ended = store.end("churn", "stopped")
    assert ended is not None and ended.outcome == "stopped" and store.running("churn") is None
    assert store.history("churn") == [ended] and store.find("churn", exp.experiment_id) == ended


def test_while_an_experiment_runs_each_row_is_scored_by_both_and_served_by_the_user_s_variant(
    registry: tuple[Registry, ModelRef, ModelRef],
) -> None:
    reg, champion_ref, challenger_ref = registry
    exp = Experiments(reg.root).start(challenger_ref, 0.5, "served")
    champions = Champions(reg.root)
    champions.refresh(force=True)
    scorer = Scorer(champions)
    rng = np.random.default_rng(5)
    users = [f"u{i}" for i in range(40)]
    width = len(FEATURE_NAMES)
    rows = [
        EventRow(Event("page_view", f"e{i}", u, 1000 + i), 1000 + i, rng.normal(size=width).tolist(), 0)
        for i, u in enumerate(users * 2)
    ]
    X = np.array([r.x for r in rows])
    want = {
        "champion": reg.load(champion_ref).predict_proba_many(X).tolist(),
        "challenger": reg.load(challenger_ref).predict_proba_many(X).tolist(),
    }
    scored = scorer.score(rows)
    table = [dict(zip(PREDICTION_COLUMNS, r, strict=True)) for r in scored.predictions.rows()]
    churn = [r for r in table if r["task"] == "churn"]
    keys = Counter((r["event_id"], r["task"], r["model_kind"], r["variant"]) for r in churn)
    assert set(keys.values()) == {1} and len(churn) == 2 * len(rows), "one row per (event, task, kind, variant)"
    for r in churn:
        i = int(r["event_id"][1:])
        variant = exp.variant(r["user_id"])
        assert r["experiment"] == exp.experiment_id
        assert r["variant"] == (variant if r["model_kind"] == "pretrained" else OTHER[variant])
        assert r["score"] == want[r["variant"]][i]
        assert r["model_version"] == (challenger_ref if r["variant"] == "challenger" else champion_ref).version
    served = {u: v for u, v in ((u, exp.variant(u)) for u in users)}
    assert 5 < sum(v == "challenger" for v in served.values()) < 35
    for u in users:  # the cache holds the served variant's score of the user's last row; the snapshot both
        last = max(i for i, r in enumerate(rows) if r.event.user_id == u)
        assert orjson.loads(scored.cache[u]["churn:pretrained"])["score"] == want[served[u]][last]
        assert set(scored.cache[u]) == {"churn:pretrained"}  # the served score only: no shadow in the cache
        assert scored.scores[u]["churn"] == {
            "pretrained": want[served[u]][last],
            "champion": want["champion"][last],
            "challenger": want["challenger"][last],
        }
    times = scorer.score_times([TimeRow(u, 86_400_000 - 1, 1000, rows[0].x) for u in users], cache=set(users))
    trows = [dict(zip(PREDICTION_COLUMNS, r, strict=True)) for r in times.predictions.rows() if r[4] == "churn"]
    got = Counter((r["user_id"], r["model_kind"], r["variant"]) for r in trows)
    assert set(got.values()) == {1}
    assert set(got) == {(u, "pretrained", served[u]) for u in users} | {(u, "shadow", OTHER[served[u]]) for u in users}


def test_without_an_experiment_rows_carry_no_variant(registry: tuple[Registry, ModelRef, ModelRef]) -> None:
    reg, *_ = registry
    champions = Champions(reg.root)
    champions.refresh(force=True)
    rows = [EventRow(Event("page_view", "e1", "u1", 5), 5, [0.0] * len(FEATURE_NAMES), 0)]
    table = [dict(zip(PREDICTION_COLUMNS, r, strict=True)) for r in Scorer(champions).score(rows).predictions.rows()]
    assert [(r["model_kind"], r["variant"], r["experiment"]) for r in table] == [("pretrained", "", "")]
