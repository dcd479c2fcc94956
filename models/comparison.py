"""Comparing an experiment's two variants on the same resolved labels: AUC, log loss and calibration of each, and a
paired bootstrap of the differences (challenger minus champion) that says whether they are significant.

Both variants score every user of an experiment (one serves, the other shadows), so each label has both scores:
resampling labels with their two scores keeps the pairing, and the interval of the AUC difference is far narrower
than two independent samples would give.

>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 4000)
>>> good = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, 4000), 0.01, 0.99)
>>> poor = np.clip(0.5 + 0.1 * (y - 0.5) + rng.normal(0, 0.2, 4000), 0.01, 0.99)
>>> r = compare(y, champion=poor, challenger=good)
>>> r["significant"], r["challenger"]["roc_auc"] > r["champion"]["roc_auc"], r["auc_diff"]["low"] > 0
(True, True, True)
>>> compare(y, champion=good, challenger=good)["significant"]
False
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

EPS = 1e-6


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties averaged; NaN with one class."""
    pos = int(y.sum())
    neg = len(y) - pos
    if not pos or not neg:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted mean |observed rate - mean score| over score tenths."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / max(len(y), 1))


def quality(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": round(auc(y, p), 6),
        "log_loss": round(log_loss(y, p), 6),
        "calibration_error": round(calibration_error(y, p), 6),
        "mean_score": round(float(p.mean()), 6) if len(p) else float("nan"),
    }


def _interval(values: np.ndarray, point: float) -> dict[str, float]:
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return {"diff": round(point, 6), "low": round(float(low), 6), "high": round(float(high), 6)}


def compare(
    y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, n_boot: int = 500, seed: int = 0
) -> dict[str, Any]:
    """Each variant's quality on the same labels and the paired bootstrap's 95 % intervals of the differences;
    ``significant``: the AUC difference's interval excludes 0."""
    y = np.asarray(y, dtype=np.int8)
    a, b = np.asarray(champion, dtype=np.float64), np.asarray(challenger, dtype=np.float64)
    out: dict[str, Any] = {"labels": len(y), "positives": int(y.sum())}
    out["champion"], out["challenger"] = quality(y, a), quality(y, b)
    if len(y) < 20 or not 0 < y.sum() < len(y):
        return out | {"significant": False, "auc_diff": None, "log_loss_diff": None}
    rng = np.random.default_rng(seed)
    auc_diffs, loss_diffs = np.empty(n_boot), np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        auc_diffs[i] = auc(y[idx], b[idx]) - auc(y[idx], a[idx])
        loss_diffs[i] = log_loss(y[idx], b[idx]) - log_loss(y[idx], a[idx])
    out["auc_diff"] = _interval(auc_diffs, out["challenger"]["roc_auc"] - out["champion"]["roc_auc"])
    out["log_loss_diff"] = _interval(loss_diffs, out["challenger"]["log_loss"] - out["champion"]["log_loss"])
    out["significant"] = bool(out["auc_diff"]["low"] > 0 or out["auc_diff"]["high"] < 0)
    return out
