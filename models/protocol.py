"""The one interface every scoring model has, pretrained (``models/pretrained.py``) or online (``models/online.py``).

In river's verbs: ``predict_proba_many`` takes a matrix whose rows are features in ``feature_names`` order (which is
:data:`features.compute.FEATURE_NAMES`) and returns P(label = 1) per row as a float64 vector; ``predict_proba_one``
takes one feature dict. ``learn_one`` learns one label, or, for pretrained models, refuses (they change only by
training and promotion). Code that scores with either family takes a :class:`ScoringModel`; mypy checks that both
families satisfy it (see the end of this module).

>>> import numpy as np
>>> from models.online import OnlineModel
>>> from models.pretrained import create
>>> X = np.random.default_rng(0).normal(size=(50, len(FEATURE_NAMES)))
>>> y = (X[:, 0] > 0).astype(np.int8)
>>> scorers: list[ScoringModel] = [create("logreg").fit(X, y), OnlineModel("churn")]
>>> [(m.name, m.predict_proba_many(X[:3]).shape, m.feature_names == FEATURE_NAMES) for m in scorers]
[('logreg', (3,), True), ('online:logreg', (3,), True)]
>>> all(isinstance(m, ScoringModel) for m in scorers)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from features.compute import FEATURE_NAMES

__all__ = ["FEATURE_NAMES", "ScoringModel"]


@runtime_checkable
class ScoringModel(Protocol):
    """A model that scores rows of features; pretrained adapters and online models both are one."""

    @property
    def name(self) -> str:
        """The model's name: ``logreg``, ``svm``, ``random_forest``, ``xgboost`` or ``online:<kind>``."""
        ...

    @property
    def feature_names(self) -> Sequence[str]:
        """The column order ``predict_proba_many`` expects (the keys ``predict_proba_one`` reads)."""
        ...

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        """P(label = 1) for each row of ``X`` (one row per entity, columns in ``feature_names`` order), float64."""
        ...

    def predict_proba_one(self, x: dict[str, float]) -> float:
        """P(label = 1) for one feature dict."""
        ...

    def learn_one(self, x: dict[str, float], y: int) -> None:
        """Learn one label (online models), or raise ``TypeError`` (pretrained ones)."""
        ...


if TYPE_CHECKING:  # mypy checks here that both families are ScoringModels; nothing runs
    from models.online import OnlineModel
    from models.pretrained import Pretrained

    def _both_are_scoring_models(pretrained: Pretrained, online: OnlineModel) -> list[ScoringModel]:
        return [pretrained, online]
