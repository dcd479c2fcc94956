"""Population stability: the bins of a model's training data, and the PSI of a live population against them.

At training, :func:`profile` bins each feature of the training rows at its deciles (fewer bins where values repeat,
as for counts and flags) and the model's scores at fixed tenths, and keeps each bin's share. The profile is stored in
the model's ``meta.json`` (``drift``), so the live side needs only the bin edges and shares, never the training data.

The live side counts its population into the same bins (:func:`bin_counts`) and compares with :func:`psi`:

    PSI = sum over bins of (live share - training share) * ln(live share / training share)

with each share floored at :data:`FLOOR`, so an empty bin does not make it infinite. The usual reading, and the
defaults of the drift thresholds: under 0.1 stable, 0.1 to 0.25 a shift worth a look (warn), above 0.25 a shift
(alert).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> train = rng.normal(size=(20_000, 2))
>>> prof = profile(train, ("a", "b"), scores=rng.uniform(size=20_000))
>>> same = bin_counts(prof, rng.normal(size=(5_000, 2)))
>>> round(psi(prof.features["a"].share, same["a"]), 3) < 0.01
True
>>> moved = bin_counts(prof, rng.normal(loc=[1.0, 0.0], size=(5_000, 2)))
>>> level(psi(prof.features["a"].share, moved["a"])), level(psi(prof.features["b"].share, moved["b"]))
('alert', 'ok')
>>> Profile.from_json(prof.to_json()) == prof
True
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

POPULATION_COLUMNS = ("user_id", "as_of", "x")  # ClickHouse `daily_features` (its `day` is computed)
# features that grow with the population's age (a maturing customer base shifts them with no change of behaviour):
# their PSI is reported, level ``trend``, and never warns or alerts
TRENDING = frozenset({"tenure_days", "lifetime_events", "lifetime_purchases", "lifetime_revenue"})
FLOOR = 1e-4  # the smallest share a bin counts with (an empty live or training bin)
WARN, ALERT = 0.1, 0.25
SCORE_EDGES = tuple(round(0.1 * i, 1) for i in range(1, 10))  # scores: tenths, the same for every model


@dataclass(frozen=True)
class Bins:
    """Right-open bins: value v falls in bin ``searchsorted(edges, v, side="right")``, 0 to ``len(edges)``."""

    edges: tuple[float, ...]
    share: tuple[float, ...]  # the training rows' share of each bin (``len(edges) + 1`` of them)

    def index(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.edges), values, side="right")

    def counts(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.index(values), minlength=len(self.edges) + 1)


@dataclass(frozen=True)
class Profile:
    features: dict[str, Bins]
    score: Bins | None = None

    def to_json(self) -> dict[str, Any]:
        # a list, in feature order: meta.json is written with sorted keys
        out: dict[str, Any] = {"features": [{"name": n, **_bins_json(b)} for n, b in self.features.items()]}
        if self.score is not None:
            out["score"] = _bins_json(self.score)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        score = data.get("score")
        return cls({b["name"]: _bins(b) for b in data["features"]}, _bins(score) if score else None)


def _bins_json(b: Bins) -> dict[str, list[float]]:
    return {"edges": list(b.edges), "share": list(b.share)}


def _bins(data: dict[str, Any]) -> Bins:
    return Bins(tuple(float(x) for x in data["edges"]), tuple(float(x) for x in data["share"]))


def _shares(counts: np.ndarray) -> tuple[float, ...]:
    total = max(int(counts.sum()), 1)
    return tuple(round(float(c) / total, 6) for c in counts)


def in_sample(user_id: str, share: float) -> bool:
    """Whether the user belongs to the live population sample of ``share`` (stable across processes and runs).

    >>> sum(in_sample(f"u{i}", 0.1) for i in range(10_000))
    995
    """
    return zlib.crc32(user_id.encode()) % 10_000 < share * 10_000


def feature_bins(values: np.ndarray, bins: int = 10) -> Bins:
    """Bins at the deciles of ``values`` (repeated quantiles merge, so a flag gets two bins) and their shares."""
    inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = tuple(float(e) for e in inner)
    return Bins(edges, _shares(Bins(edges, ()).counts(values)))


def profile(X: np.ndarray, names: Sequence[str], scores: np.ndarray | None = None) -> Profile:
    """The training rows' bins per feature (columns of ``X`` in ``names`` order) and, if given, of the scores."""
    prof = Profile({name: feature_bins(X[:, i]) for i, name in enumerate(names)})
    return prof if scores is None else with_scores(prof, scores)


def with_scores(prof: Profile, scores: np.ndarray) -> Profile:
    """``prof`` with the bins of a model's scores on the same rows."""
    return Profile(prof.features, Bins(SCORE_EDGES, _shares(Bins(SCORE_EDGES, ()).counts(scores))))


def bin_counts(prof: Profile, X: np.ndarray) -> dict[str, np.ndarray]:
    """How many rows of ``X`` (columns in the profile's feature order) fall in each bin of each feature."""
    return {name: b.counts(X[:, i]) for i, (name, b) in enumerate(prof.features.items())}


def psi(share: Sequence[float], counts: Sequence[int] | np.ndarray) -> float:
    """The population stability index of live ``counts`` against the training ``share`` of the same bins.

    >>> psi([0.5, 0.5], [50, 50])
    0.0
    >>> round(psi([0.5, 0.5], [90, 10]), 4)
    0.8789
    """
    expected = np.maximum(np.asarray(share, dtype=np.float64), FLOOR)
    c = np.asarray(counts, dtype=np.float64)
    actual = np.maximum(c / max(c.sum(), 1.0), FLOOR)
    return round(float(np.sum((actual - expected) * np.log(actual / expected))), 6)


def level(value: float, warn: float = WARN, alert: float = ALERT) -> str:
    """``ok``, ``warn`` or ``alert`` for a PSI.

    >>> level(0.05), level(0.1), level(0.3)
    ('ok', 'warn', 'alert')
    """
    return "alert" if value >= alert else "warn" if value >= warn else "ok"
