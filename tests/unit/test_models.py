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
