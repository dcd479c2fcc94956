"""Pretrained models in river's verbs: ``predict_proba_many`` for batches, ``predict_proba_one`` for one row.

Each adapter wraps one fitted estimator, saves it in a safe format (XGBoost's own JSON; scikit-learn through
skops, loaded with an allow-list of types), and refuses to learn: pretrained models change only by training
and promotion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from features.compute import FEATURE_NAMES

MODEL_NAMES = ("logreg", "svm", "random_forest", "xgboost")


class Pretrained:
    name: ClassVar[str]
    artifact: ClassVar[str]

    def __init__(self, estimator: Any, feature_names: Sequence[str] = FEATURE_NAMES) -> None:
        self.estimator = estimator
        self.feature_names = tuple(feature_names)

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        """P(label = 1) for each row of ``X`` (columns in ``feature_names`` order); no rows, no scores."""
        if not len(X):
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=np.float64)

    def predict_proba_one(self, x: dict[str, float]) -> float:
        return float(self.predict_proba_many(np.array([[x[n] for n in self.feature_names]]))[0])

    def learn_one(self, x: dict[str, float], y: int) -> None:
        raise TypeError(f"{self.name} is pretrained: retrain and promote instead of learning online")

    def fit(self, X: np.ndarray, y: np.ndarray) -> Pretrained:
        self.estimator.fit(X, y)
        return self

    def save(self, directory: Path) -> Path:
        import skops.io

        path = directory / self.artifact
        skops.io.dump(self.estimator, path)
        return path

    @classmethod
    def load(cls, path: Path, feature_names: Sequence[str]) -> Pretrained:
        import skops.io

        untrusted = skops.io.get_untrusted_types(file=path)
        unexpected = [t for t in untrusted if not t.startswith(("sklearn.", "numpy."))]
        if unexpected:
            raise ValueError(f"{path} holds types outside scikit-learn and numpy: {unexpected}")
        return cls(skops.io.load(path, trusted=untrusted), feature_names)


class LogReg(Pretrained):
    name, artifact = "logreg", "model.skops"

    @classmethod
    def create(cls, seed: int = 0) -> LogReg:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return cls(make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)))


class SVM(Pretrained):
    name, artifact = "svm", "model.skops"

    @classmethod
    def create(cls, seed: int = 0) -> SVM:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        svm = LinearSVC(C=0.1, random_state=seed, max_iter=5000)
        return cls(make_pipeline(StandardScaler(), CalibratedClassifierCV(svm, method="sigmoid", cv=3)))


class RandomForest(Pretrained):
    name, artifact = "random_forest", "model.skops"

    @classmethod
    def create(cls, seed: int = 0) -> RandomForest:
        from sklearn.ensemble import RandomForestClassifier

        return cls(
            RandomForestClassifier(
                n_estimators=200, min_samples_leaf=20, max_features="sqrt", n_jobs=2, random_state=seed
            )
        )

    def fit(self, X: np.ndarray, y: np.ndarray) -> Pretrained:
        super().fit(X, y)
        self.estimator.set_params(n_jobs=1)  # threads help fitting; for scoring they only add latency
        return self


class XGBoost(Pretrained):
    name, artifact = "xgboost", "model.json"

    @classmethod
    def create(cls, seed: int = 0) -> XGBoost:
        from xgboost import XGBClassifier

        return cls(
            XGBClassifier(
                n_estimators=300,
                max_depth=4,
                learning_rate=0.05,
                subsample=0.8,
                colsample_bytree=0.8,
                min_child_weight=5,
                n_jobs=2,
                random_state=seed,
                eval_metric="logloss",
            )
        )

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        if not len(X):
            return np.empty(0, dtype=np.float64)
        booster = self.estimator.get_booster() if hasattr(self.estimator, "get_booster") else self.estimator
        return np.asarray(booster.inplace_predict(X, predict_type="value"), dtype=np.float64)

    def save(self, directory: Path) -> Path:
        path = directory / self.artifact
        self.estimator.get_booster().save_model(path)
        return path

    @classmethod
    def load(cls, path: Path, feature_names: Sequence[str]) -> XGBoost:
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(path)
        # one thread: a micro-batch is a few hundred rows, where thread start-up costs more than it saves
        # (0.5-0.7 ms vs. 1.9-3.2 ms per 200 rows on 2 cores)
        booster.set_param({"nthread": 1})
        return cls(booster, feature_names)


ADAPTERS: dict[str, type[Pretrained]] = {c.name: c for c in (LogReg, SVM, RandomForest, XGBoost)}


def create(name: str, seed: int = 0) -> Pretrained:
    return ADAPTERS[name].create(seed)  # type: ignore[attr-defined]
