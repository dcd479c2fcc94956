"""Contract suite over every pretrained model, and the registry's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from features.compute import FEATURE_NAMES
from models.pretrained import MODEL_NAMES, create
from models.registry import ModelRef, ModelRejected, Registry


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, len(FEATURE_NAMES)))
    y = (X[:, 0] + 0.5 * X[:, 3] + rng.normal(scale=0.5, size=600) > 0).astype(np.int8)
    return X, y


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_contract(name: str, data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = data
    model = create(name, seed=1).fit(X, y)
    X_before = X.copy()
    p = model.predict_proba_many(X)
    assert np.array_equal(X, X_before), "input mutated"
    assert p.shape == (len(X),) and np.all((p >= 0) & (p <= 1))
    assert np.mean((p > 0.5) == y) > 0.8, "learns an easy signal"
    # single row agrees with the batch, fed as a feature dict
    row = dict(zip(FEATURE_NAMES, X[7], strict=True))
    assert model.predict_proba_one(row) == pytest.approx(p[7], abs=1e-6)
    # pretrained models refuse to learn online
    with pytest.raises(TypeError):
        model.learn_one(row, 1)
    # save / load round trip through the registry gives the same scores
    registry = Registry(tmp_path)
    ref = registry.save("churn", model, {"metrics": {"roc_auc": 0.9}})
    assert np.allclose(registry.load(ref).predict_proba_many(X), p, atol=1e-6)
    meta = registry.meta(ref)
    assert meta["feature_names"] == list(FEATURE_NAMES) and len(meta["sha256"]) == 64
    # seeded training repeats
    assert np.allclose(create(name, seed=1).fit(X, y).predict_proba_many(X), p, atol=1e-6)


@pytest.fixture
def registry_with_champion(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> tuple[Registry, ModelRef]:
    X, y = data
    registry = Registry(tmp_path)
    ref = registry.save("purchase", create("logreg").fit(X, y), {"metrics": {"roc_auc": 0.8}})
    registry.promote(ref)
    return registry, ref


def _new_version(registry: Registry, data: tuple[np.ndarray, np.ndarray]) -> ModelRef:
    X, y = data
    return registry.save("purchase", create("xgboost").fit(X, y), {"metrics": {"roc_auc": 0.85}})


def test_checksum_mismatch_is_refused_and_champion_stays(registry_with_champion, data) -> None:  # type: ignore[no-untyped-def]
    registry, old = registry_with_champion
    ref = _new_version(registry, data)
    path = registry.root / "purchase" / "xgboost" / ref.version / "model.json"
    path.write_text(path.read_text().replace('"num_trees"', '"num_trees" ', 1))
    with pytest.raises(ModelRejected, match="checksum mismatch"):
        registry.promote(ref)
    assert registry.champion("purchase") == old


def test_corrupt_artifact_is_refused(registry_with_champion, data) -> None:  # type: ignore[no-untyped-def]
    registry, old = registry_with_champion
    ref = _new_version(registry, data)
    d = registry.root / "purchase" / "xgboost" / ref.version
    (d / "model.json").write_bytes(b"{not a model")
    meta = json.loads((d / "meta.json").read_text())
    from models.registry import sha256

    meta["sha256"] = sha256(d / "model.json")  # consistent checksum, broken content
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelRejected, match="cannot be loaded"):
        registry.promote(ref)
    assert registry.champion("purchase") == old


def test_feature_list_mismatch_is_refused(registry_with_champion, data) -> None:  # type: ignore[no-untyped-def]
    registry, old = registry_with_champion
    ref = _new_version(registry, data)
    d = registry.root / "purchase" / "xgboost" / ref.version
    meta = json.loads((d / "meta.json").read_text())
    meta["feature_names"] = list(reversed(meta["feature_names"]))
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelRejected, match="other features"):
        registry.load(ref)
    assert registry.champion("purchase") == old


def test_skops_refuses_foreign_types(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    import skops.io

    from models.pretrained import LogReg

    skops.io.dump({"x": Path("/etc/passwd")}, tmp_path / "model.skops")
    with pytest.raises(ValueError, match="outside scikit-learn"):
        LogReg.load(tmp_path / "model.skops", FEATURE_NAMES)


# ---- data sets, champions on validation, intervals, the report --------------------------------------------------


@pytest.fixture(scope="module")
def history():  # type: ignore[no-untyped-def]
    import orjson

    from features import offline
    from simulation import generator

    users = generator.make_users(300, days=200, seed=7)
    events = generator.simulate(users, days=200, seed=7)
    return offline.accept((e["type"], orjson.dumps(e)) for e in events)


def test_rows_never_depend_on_later_events(history) -> None:  # type: ignore[no-untyped-def]
    """Cutting every user's history at a time T leaves the rows up to T as they were: choosing an event as a row
    must not look at what follows it (choosing k events per user would)."""
    from features.state import DAY_MS
    from models.dataset import _rows

    first = min(e.ts_ms for evs in history.values() for e in evs)
    lo, hi, cut = first + 7 * DAY_MS, first + 150 * DAY_MS, first + 80 * DAY_MS
    full = [(u, t) for u, t, _ in _rows(history, history, lo, hi, 0.2, seed=3)]
    cut_history = {u: [e for e in evs if e.ts_ms <= cut] for u, evs in history.items()}
    cut_rows = [(u, t) for u, t, _ in _rows(cut_history, cut_history, lo, hi, 0.2, seed=3)]
    assert len(cut_rows) > 1000
    assert cut_rows == [r for r in full if r[1] <= cut]


def test_users_are_in_one_split_and_the_champion_is_the_best_on_validation(history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from models import dataset
    from models.train import train_task

    ts = dataset.build(history, "purchase")
    parts = [set(ts.train.users), set(ts.validation.users), set(ts.test.users)]
    assert all(parts) and sum(map(len, parts)) == len(set().union(*parts))
    # on this history the validation and the test users rank these two the other way round
    report = train_task(history, "churn", Registry(tmp_path), models=("svm", "xgboost"), resamples=50)
    validation = {m: v["validation_roc_auc"] for m, v in report["models"].items()}
    test = {m: v["roc_auc"] for m, v in report["models"].items()}
    assert max(validation, key=validation.get) != max(test, key=test.get), "the check needs a disagreement"
    best = max(validation, key=validation.get)
    assert report["champion"] == best and Registry(tmp_path).champion("churn").model == best  # type: ignore[union-attr]
    for m in report["models"].values():
        assert m["ci"]["roc_auc"]["low"] <= m["roc_auc"] <= m["ci"]["roc_auc"]["high"]


def test_bootstrap_says_when_a_difference_is_noise() -> None:
    from models.evaluate import bootstrap

    rng = np.random.default_rng(1)
    n = 3000
    p = rng.random(n)
    y = (rng.random(n) < p).astype(np.int8)
    users = np.arange(n) // 3
    scores = {"truth": p, "blurred": np.clip(p + rng.normal(0, 0.02, n), 0, 1), "noise": rng.random(n)}
    out = bootstrap(scores, y, users, resamples=200, pairs=[("truth", "blurred"), ("truth", "noise")])
    assert out["truth - blurred"]["roc_auc"]["within_noise"] == 1.0
    assert out["truth - noise"]["roc_auc"]["within_noise"] == 0.0
    assert out["truth - noise"]["roc_auc"]["low"] > 0.1
    # seeded: the same call gives the same intervals
    assert bootstrap(scores, y, users, resamples=200) == bootstrap(scores, y, users, resamples=200)


def test_report_records_the_run_and_keeps_the_prose(tmp_path: Path) -> None:
    from models import report

    m = {
        "roc_auc": 0.8,
        "validation_roc_auc": 0.81,
        "pr_auc": 0.5,
        "log_loss": 0.4,
        "brier": 0.1,
        "single_row_us": 100.0,
        "batch_per_row_us": 1.0,
        "size_bytes": 2048,
        "ci": {k: {"value": 0.8, "low": 0.7, "high": 0.9} for k in ("roc_auc", "brier", "log_loss")},
    }
    diff = {"roc_auc": {"value": 0.01, "low": -0.02, "high": 0.04, "within_noise": 1.0}}
    r = {
        "models": {"logreg": m, "xgboost": m},
        "champion": "logreg",
        "runner_up": "xgboost",
        "differences": {"logreg - xgboost": diff},
        "resamples": 10,
        **{f"{s}_{k}": 1 for s in ("train", "validation", "test") for k in ("rows", "users")},
        "test_positive_rate": 0.5,
    }
    (tmp_path / "models.md").write_text(
        "# Models\n\nHand-written prose.\n\n<!-- models:results -->\nold\n<!-- /models:results -->\n\nMore prose.\n"
    )
    for _ in range(2):
        report.write({"churn": r}, "churnstream train --users 5", "Some data.", docs=tmp_path)
    text = (tmp_path / "models.md").read_text()
    assert text.startswith("# Models\n\nHand-written prose.\n") and text.endswith("\nMore prose.\n")
    assert "old" not in text and text.count("<!-- models:results -->") == 1
    assert "within the noise" in text
    data = json.loads((tmp_path / "models.json").read_text())
    run = data["run"]
    assert run["command"] == "churnstream train --users 5" and run["machine"]["cores"] >= 1
    assert len(run["commit"].removesuffix("-dirty")) == 40 and run["date"].endswith("Z")
    assert data["churn"]["champion_minus_runner_up"]["within_noise"] is True
