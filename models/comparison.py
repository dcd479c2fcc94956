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

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from models.evaluate import bootstrap

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


def from_bins(rows: list[dict[str, Any]], bins: int = 10_000) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Each variant's quality and decile calibration from counts per (variant, label, score bin) with the sums of
    the scores and of the log losses in each (ClickHouse aggregates; named query ``experiment_bins``). ROC-AUC by
    the rank-sum formula over the bins: exact but for ties within a bin (a 1/10,000 of score).

    >>> rng = np.random.default_rng(1)
    >>> y = rng.integers(0, 2, 5000); p = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.2, 5000), 0, 1)
    >>> rows = [{"variant": "a", "label": int(l), "bin": min(int(s * 10_000), 9999), "rows": 1, "score_sum": float(s),
    ...          "loss_sum": -float(np.log(max(s, 1e-6) if l else max(1 - s, 1e-6)))} for l, s in zip(y, p)]
    >>> q, cal = from_bins(rows)
    >>> bool(abs(q["a"]["roc_auc"] - auc(y, p)) < 1e-4), bool(abs(q["a"]["log_loss"] - log_loss(y, p)) < 1e-6)
    (True, True)
    >>> [c["decile"] for c in cal][:3], q["a"]["labels"]
    ([0, 1, 2], 5000)
    """
    counts: dict[str, np.ndarray] = {}
    sums: dict[str, dict[str, float]] = {}
    deciles: dict[tuple[str, int], list[float]] = {}  # rows, score sum, positives
    for r in rows:
        v = r["variant"]
        c = counts.setdefault(v, np.zeros((2, bins)))
        c[int(r["label"]), int(r["bin"])] += r["rows"]
        acc = sums.setdefault(v, {"score": 0.0, "loss": 0.0})
        acc["score"] += r["score_sum"]
        acc["loss"] += r["loss_sum"]
        d = deciles.setdefault((v, int(r["bin"]) * 10 // bins), [0.0, 0.0, 0.0])
        d[0] += r["rows"]
        d[1] += r["score_sum"]
        d[2] += r["rows"] * int(r["label"])
    out = {}
    for v, c in counts.items():
        neg, pos = c[0], c[1]
        n_pos, n_neg = pos.sum(), neg.sum()
        below = np.cumsum(neg) - neg  # negatives in lower bins
        wins = float((pos * (below + neg / 2)).sum())
        n = n_pos + n_neg
        out[v] = {
            "labels": int(n),
            "positives": int(n_pos),
            "roc_auc": round(wins / (n_pos * n_neg), 6) if n_pos and n_neg else float("nan"),
            "log_loss": round(sums[v]["loss"] / n, 6),
            "mean_score": round(sums[v]["score"] / n, 6),
            "observed": round(n_pos / n, 6),
        }
    calibration = [
        {
            "variant": v,
            "decile": d,
            "rows": int(a[0]),
            "predicted": round(a[1] / a[0], 6),
            "observed": round(a[2] / a[0], 6),
        }
        for (v, d), a in sorted(deciles.items())
    ]
    return out, calibration


def compare(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Each variant's quality on the same labels and the paired bootstrap's 95 % intervals of the differences
    (:func:`models.evaluate.bootstrap`, resampling ``groups``: the users, whose labels are not independent; each
    label its own group if not given); ``significant``: the ROC-AUC difference's interval excludes 0."""
    y = np.asarray(y, dtype=np.int8)
    a, b = np.asarray(champion, dtype=np.float64), np.asarray(challenger, dtype=np.float64)
    out: dict[str, Any] = {"labels": len(y), "positives": int(y.sum())}
    out["champion"], out["challenger"] = quality(y, a), quality(y, b)
    if len(y) < 20 or not 0 < y.sum() < len(y):
        return out | {"significant": False, "auc_diff": None, "log_loss_diff": None}
    units = np.arange(len(y)) if groups is None else groups
    ci = bootstrap({"champion": a, "challenger": b}, y, units, n_boot, seed, pairs=[("challenger", "champion")])
    diff = ci["challenger - champion"]
    for key, metric in (("auc_diff", "roc_auc"), ("log_loss_diff", "log_loss")):
        d = diff[metric]
        out[key] = {"diff": round(d["value"], 6), "low": round(d["low"], 6), "high": round(d["high"], 6)}
    out["significant"] = not diff["roc_auc"]["within_noise"]
    return out
