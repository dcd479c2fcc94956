"""Behavioural clusters: K-means on standardised behaviour features, fitted with the models, assigned online by the
worker (docs/segments.md, "Behavioural clusters").

The clustering features are a compact behavioural profile read from the feature vector: recency, activity,
engagement, cart use, spend and trend. Counts and amounts are heavy-tailed, so each feature except the trend is
``log1p``-transformed, then all are standardised (mean 0, unit variance over the fitted users). K-means
(scikit-learn, ``n_init=10``, seeded) is fitted for each k in :data:`KS`; the k with the best silhouette (on a seeded
sample of at most 5,000 users) is kept, and every k's silhouette is reported.

A version is one JSON file of plain numbers (centres, the scaler, the profiles) under
``<registry>/clusters/<version>/``, with its sha256 in ``CURRENT``: loading checks it, so a corrupt or edited file is
refused like any model.

>>> rng = np.random.default_rng(0)
>>> X = np.zeros((300, len(FEATURE_NAMES)))
>>> X[:, INDEX[0]] = np.r_[rng.uniform(0, 2, 150), rng.uniform(40, 59, 150)]  # recent vs quiet users
>>> c = Clusters.fit(X, version="c1", ks=(2, 3))
>>> c.k, c.silhouette > 0.5, len(set(c.assign(X[:150]).tolist())), len(set(c.assign(X[150:]).tolist()))
(2, True, 1, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from features.compute import FEATURE_NAMES
from models.registry import ModelRejected

COLUMNS = (
    "days_since_last_event",
    "active_days_60d",
    "page_views_30d",
    "cart_adds_30d",
    "lifetime_purchases",
    "lifetime_revenue",
    "avg_order_value",
    "tenure_days",
    "trend_30d",
)
INDEX = tuple(FEATURE_NAMES.index(c) for c in COLUMNS)
_LOG = np.array([c != "trend_30d" for c in COLUMNS])
KS = (3, 4, 5, 6, 7, 8)
SAMPLE = 5000


def _transform(X: np.ndarray) -> np.ndarray:
    Z = np.asarray(X, dtype=np.float64)[:, INDEX].copy()
    Z[:, _LOG] = np.log1p(np.maximum(Z[:, _LOG], 0.0))  # NEVER (-1) and the like count as 0
    return Z


class Clusters:
    def __init__(
        self,
        version: str,
        centers: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        silhouettes: dict[int, float],
        profiles: list[dict[str, Any]],
    ) -> None:
        self.version, self.centers, self.mean, self.scale = version, centers, mean, scale
        self.silhouettes, self.profiles = silhouettes, profiles

    @property
    def k(self) -> int:
        return len(self.centers)

    @property
    def silhouette(self) -> float:
        return self.silhouettes[self.k]

    @classmethod
    def fit(cls, X: np.ndarray, version: str, ks: tuple[int, ...] = KS, seed: int = 0) -> Clusters:
        """K-means for each k in ``ks`` on the standardised features of ``X`` (rows in ``FEATURE_NAMES`` order); the
        best silhouette wins. Profiles: each cluster's share of users and its mean of every clustering feature."""
        Z = _transform(X)
        mean, scale = Z.mean(axis=0), Z.std(axis=0)
        scale[scale == 0] = 1.0
        S = (Z - mean) / scale
        rng = np.random.default_rng(seed)
        sample = rng.choice(len(S), size=min(SAMPLE, len(S)), replace=False)
        fits, silhouettes = {}, {}
        for k in ks:
            if k >= len(S):
                continue
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(S)
            fits[k] = km
            silhouettes[k] = round(float(silhouette_score(S[sample], km.labels_[sample])), 4)
        best = max(silhouettes, key=lambda k: (silhouettes[k], -k))
        labels = fits[best].labels_
        X = np.asarray(X, dtype=np.float64)
        profiles = [
            {
                "cluster": c,
                "share": round(float((labels == c).mean()), 4),
                "users": int((labels == c).sum()),
                "means": {
                    name: round(float(X[labels == c, i].mean()), 3) for name, i in zip(COLUMNS, INDEX, strict=True)
                },
            }
            for c in range(best)
        ]
        return cls(version, fits[best].cluster_centers_, mean, scale, silhouettes, profiles)

    def assign(self, X: np.ndarray) -> np.ndarray:
        """The nearest centre of each row (rows in ``FEATURE_NAMES`` order)."""
        S = (_transform(np.atleast_2d(X)) - self.mean) / self.scale
        return np.argmin(((S[:, None, :] - self.centers[None, :, :]) ** 2).sum(axis=2), axis=1)

    def assign_one(self, x: list[float]) -> int:
        return int(self.assign(np.asarray([x]))[0])

    # ---- storage ----------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "columns": list(COLUMNS),
            "centers": self.centers.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "silhouettes": {str(k): v for k, v in self.silhouettes.items()},
            "profiles": self.profiles,
        }

    def save(self, root: Path) -> Path:
        """Write this version under ``root`` and make it current (``CURRENT``: version and sha256, replaced
        atomically)."""
        path = root / self.version / "clusters.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = json.dumps(self.to_json(), indent=1).encode()
        path.write_bytes(blob)
        tmp = root / f".CURRENT.{os.getpid()}"
        tmp.write_text(f"{self.version} {hashlib.sha256(blob).hexdigest()}")
        tmp.replace(root / "CURRENT")
        return path

    @classmethod
    def load_current(cls, root: Path) -> Clusters | None:
        """The current version (None: none yet); :class:`ModelRejected` if its file does not match its sha256 or
        was fitted on other features."""
        try:
            version, digest = (root / "CURRENT").read_text().split()
        except FileNotFoundError:
            return None
        blob = (root / version / "clusters.json").read_bytes()
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ModelRejected(f"clusters {version}: checksum mismatch")
        d = json.loads(blob)
        if tuple(d["columns"]) != COLUMNS:
            raise ModelRejected(f"clusters {version}: fitted on other features")
        silhouettes = {int(k): v for k, v in d["silhouettes"].items()}
        centers, mean, scale = (np.array(d[k], dtype=np.float64) for k in ("centers", "mean", "scale"))
        return cls(d["version"], centers, mean, scale, silhouettes, d["profiles"])


def current_version(root: Path) -> str | None:
    try:
        return (root / "CURRENT").read_text().split()[0]
    except (FileNotFoundError, IndexError):
        return None
