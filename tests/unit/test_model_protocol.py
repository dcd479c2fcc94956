"""One model protocol: pretrained and online models score the same matrix through :class:`ScoringModel`.

The online models' batch scores must be exactly the per-row scores they gave before the protocol (a list of
``predict_proba_one`` over ``X.tolist()``), so moving them onto ``predict_proba_many(X: np.ndarray)`` changes no
score the worker writes or the API answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from features.compute import FEATURE_NAMES
from models.online import ONLINE_KINDS, OnlineModel
from models.pretrained import MODEL_NAMES, create
from models.protocol import ScoringModel
from serving.catalog import LoadedModel


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, len(FEATURE_NAMES)))
    y = (X[:, 0] - 0.7 * X[:, 5] + rng.normal(scale=0.5, size=400) > 0).astype(np.int8)
    return X, y


def online(kind: str, X: np.ndarray, y: np.ndarray, learn: int) -> OnlineModel:
    model = OnlineModel("churn", kind, seed=1)
    for row, label in zip(X[:learn].tolist(), y[:learn].tolist(), strict=True):
        model.learn_one(dict(zip(FEATURE_NAMES, row, strict=True)), label)
    return model


def every_family(X: np.ndarray, y: np.ndarray) -> list[ScoringModel]:
    pretrained: list[ScoringModel] = [create(name, seed=1).fit(X[:300], y[:300]) for name in MODEL_NAMES]
    return pretrained + [online(kind, X, y, learn=300) for kind in ONLINE_KINDS]


def test_both_families_score_the_same_matrix_through_the_protocol(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    models = every_family(X, y)
    assert [m.name for m in models] == [*MODEL_NAMES, *(f"online:{k}" for k in ONLINE_KINDS)]
    test, before = X[300:], X[300:].copy()
    for model in models:
        assert isinstance(model, ScoringModel)
        assert tuple(model.feature_names) == FEATURE_NAMES
        p = model.predict_proba_many(test)
        assert np.array_equal(test, before), f"{model.name} mutated its input"
        assert isinstance(p, np.ndarray) and p.dtype == np.float64 and p.shape == (len(test),), model.name
        assert np.all((p >= 0) & (p <= 1)), model.name
        assert np.mean((p > 0.5) == y[300:]) > 0.7, f"{model.name} learns an easy signal"
        one = [model.predict_proba_one(dict(zip(FEATURE_NAMES, r, strict=True))) for r in test[:20].tolist()]
        assert one == pytest.approx(p[:20].tolist(), abs=1e-6), model.name
        assert model.predict_proba_many(test[:0]).shape == (0,)


@pytest.mark.parametrize("kind", ONLINE_KINDS)
@pytest.mark.parametrize("learn", [0, 1, 300])
def test_online_batch_scores_equal_the_old_per_row_scores(
    kind: str, learn: int, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    model = online(kind, X, y, learn)
    # what predict_proba_many(rows: list[list[float]]) returned before, for rows = X.tolist()
    old = [model.predict_proba_one(dict(zip(FEATURE_NAMES, r, strict=True))) for r in X.tolist()]
    new = model.predict_proba_many(X)
    assert new.tolist() == old  # exactly, not approximately
    # the API's path: LoadedModel.predict used to pass X.tolist() to the online model
    assert LoadedModel("churn", model.name, "online", model.version, model).predict(X) == old
    if learn == 0:
        assert set(old) == {0.5}


@pytest.mark.parametrize("learn", [0, 1, 300])
def test_online_logreg_scores_a_batch_with_rivers_formulas_and_no_row_depends_on_its_batch(
    learn: int, data: tuple[np.ndarray, np.ndarray]
) -> None:
    """The logistic regression scores batches with numpy from river's fitted state (issue 13): the same values
    as river's own ``predict_proba_one`` up to rounding, and each row exactly the same in any batch."""
    X, y = data
    model = online("logreg", X, y, learn)
    river = [model.model.predict_proba_one(dict(zip(FEATURE_NAMES, r, strict=True)))[True] for r in X.tolist()]
    p = model.predict_proba_many(X)
    assert p.tolist() == pytest.approx(river, abs=1e-12)
    assert np.array_equal(model.predict_proba_many(X[7:231]), p[7:231])
    assert np.array_equal(model.predict_proba_many(X[::-1]), p[::-1])


def test_online_logreg_learns_batches_of_constant_columns_without_a_negative_variance() -> None:
    """River's batch variance (E[x^2] - mean^2) leaves a column of 1/3s at about -1e-17; its square root in river's
    transform_one is a complex number. ``learn_many`` keeps every variance at 0 or above and the scores finite."""
    model = OnlineModel("churn")
    X = np.full((50, len(FEATURE_NAMES)), 1 / 3)
    X[:, 0] = np.arange(50)
    for start in range(0, 50, 10):
        model.learn_many(X[start : start + 10], [i % 2 for i in range(10)], [0] * 10)
    assert min(model.model["StandardScaler"].vars.values()) >= 0
    model.learn_one(dict(zip(FEATURE_NAMES, X[0].tolist(), strict=True)), 1)  # river's own path after the batches
    assert np.isfinite(model.predict_proba_many(X)).all()


def test_pretrained_models_refuse_to_learn_through_the_protocol(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    model: ScoringModel = create("logreg").fit(X, y)
    with pytest.raises(TypeError):
        model.learn_one(dict(zip(FEATURE_NAMES, X[0].tolist(), strict=True)), 1)
