"""How sure a test figure is: calibration per decile and bootstrap intervals, both over users.

Rows of one user share that user's rates and overlapping label windows, so they are not independent. Every
error bar here treats the user as the unit: the calibration check uses a cluster-robust standard error, and the
bootstrap resamples users with replacement (all rows of a drawn user come along), seeded.

>>> rng = np.random.default_rng(0)
>>> p = rng.random(4000)
>>> y = (rng.random(4000) < p).astype(np.int8)
>>> groups = np.arange(4000) // 4
>>> max(abs(b["z"]) for b in calibration_by_decile(y, p, groups)) < 4
True
>>> ci = bootstrap({"a": p, "b": np.full(4000, 0.5)}, y, groups, resamples=200)
>>> ci["a"]["roc_auc"]["low"] > 0.5, ci["b"]["roc_auc"]["value"]
(True, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95


def _codes(groups: Sequence[Any] | np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(groups), return_inverse=True)[1]


def calibration_by_decile(
    y: np.ndarray, p: np.ndarray, groups: Sequence[Any] | np.ndarray, bins: int = 10
) -> list[dict[str, float]]:
    """Per decile of ``p`` (ranks, so ties split evenly): rows, mean predicted, observed rate, and
    ``z`` = (observed - predicted) / its standard error.

    The standard error is the larger of the cluster-robust one (each user's residuals summed first) and the
    binomial one of the predictions, sqrt(sum p(1 - p)) / n: in a decile of tiny probabilities and no
    positive label the residuals alone would claim a precision the sample does not have.
    """
    y, p, g = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64), _codes(groups)
    order = np.argsort(p, kind="stable")
    out = []
    for rows in np.array_split(order, bins):
        resid = y[rows] - p[rows]
        per_user = np.bincount(g[rows], weights=resid)
        binomial = np.sum(p[rows] * (1 - p[rows]))
        se = float(np.sqrt(max(np.sum(per_user**2), binomial))) / len(rows)
        diff = float(resid.mean())
        out.append(
            {
                "rows": float(len(rows)),
                "predicted": float(p[rows].mean()),
                "observed": float(y[rows].mean()),
                "se": se,
                "z": diff / se if se > 0 else (0.0 if diff == 0 else float("inf")),
            }
        )
    return out


def _auc(p_sorted: np.ndarray, tie: np.ndarray, y_sorted: np.ndarray, w: np.ndarray) -> float:
    """Weighted ROC-AUC (Mann-Whitney, ties count a half) of rows sorted by score; ``tie``: tie-group ids."""
    pos = np.bincount(tie, weights=w * y_sorted)
    neg = np.bincount(tie, weights=w * (1 - y_sorted))
    below = np.cumsum(neg) - neg
    total = pos.sum() * neg.sum()
    return float(np.sum(pos * (below + 0.5 * neg)) / total) if total > 0 else float("nan")


def _metrics(p: np.ndarray, y: np.ndarray, w: np.ndarray, order: np.ndarray, tie: np.ndarray) -> dict[str, float]:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    n = w.sum()
    return {
        "roc_auc": _auc(p[order], tie, y[order], w[order]),
        "brier": float(np.sum(w * (q - y) ** 2) / n),
        "log_loss": float(-np.sum(w * (y * np.log(q) + (1 - y) * np.log(1 - q))) / n),
    }


def _interval(value: float, samples: np.ndarray) -> dict[str, float]:
    """``value`` with the ``CONFIDENCE`` percentile interval of the finite ``samples`` (NaN without any)."""
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return {"value": value, "low": float("nan"), "high": float("nan")}
    lo_q, hi_q = (1 - CONFIDENCE) / 2, 1 - (1 - CONFIDENCE) / 2
    return {"value": value, "low": float(np.quantile(samples, lo_q)), "high": float(np.quantile(samples, hi_q))}


def bootstrap(
    scores: Mapping[str, np.ndarray],
    y: np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    resamples: int = 400,
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] = (),
) -> dict[str, dict[str, dict[str, float]]]:
    """ROC-AUC, Brier and log loss of each scorer with a ``CONFIDENCE`` percentile interval over user resamples.

    ``pairs`` (a, b) also get the interval of the difference a - b on the same resamples (paired), and
    ``within_noise``: the interval of the ROC-AUC difference contains 0.
    """
    y = np.asarray(y, dtype=np.float64)
    g = _codes(groups)
    n_users = int(g.max()) + 1 if len(g) else 0
    prep = {}
    for name, p in scores.items():
        p = np.asarray(p, dtype=np.float64)
        order = np.argsort(p, kind="stable")
        tie = np.concatenate(([0], np.cumsum(np.diff(p[order]) != 0)))
        prep[name] = (p, order, tie)
    ones = np.ones(len(y))
    point = {name: _metrics(p, y, ones, o, t) for name, (p, o, t) in prep.items()}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[dict[str, float]]] = {name: [] for name in prep}
    for _ in range(resamples):
        times_drawn = np.bincount(rng.integers(0, n_users, n_users), minlength=n_users)
        w = times_drawn[g].astype(np.float64)
        for name, (p, o, t) in prep.items():
            draws[name].append(_metrics(p, y, w, o, t))
    interval = _interval
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in prep:
        out[name] = {m: interval(point[name][m], np.array([d[m] for d in draws[name]])) for m in point[name]}
    for a, b in pairs:
        diff = {
            m: interval(
                point[a][m] - point[b][m], np.array([da[m] - db[m] for da, db in zip(draws[a], draws[b], strict=True)])
            )
            for m in point[a]
        }
        auc = diff["roc_auc"]
        diff["roc_auc"] = {**auc, "within_noise": float(auc["low"] <= 0 <= auc["high"])}
        out[f"{a} - {b}"] = diff
    return out


def bootstrap_mean(
    cuts: Sequence[tuple[Mapping[str, np.ndarray], np.ndarray, Sequence[Any]]],
    resamples: int = 400,
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] = (),
) -> dict[str, dict[str, float]]:
    """The mean ROC-AUC over several cutoffs, each (scores, y, users), with a ``CONFIDENCE`` interval from
    resampling the users once for all cutoffs (a user drawn twice counts twice at every cutoff), as the cutoffs
    share users. ``pairs`` (a, b) get the paired interval of the difference of the means and ``within_noise``.

    >>> rng = np.random.default_rng(0)
    >>> cuts = []
    >>> for _ in range(3):
    ...     p = rng.random(500); y = (rng.random(500) < p).astype(np.int8)
    ...     cuts.append(({"p": p, "flat": np.full(500, 0.3)}, y, [f"u{i}" for i in range(500)]))
    >>> out = bootstrap_mean(cuts, resamples=100, pairs=[("p", "flat")])
    >>> out["p"]["low"] > 0.6, out["flat"]["value"], out["p - flat"]["within_noise"]
    (True, 0.5, 0.0)
    """
    if not cuts:
        return {}
    users = np.unique(np.concatenate([np.asarray(g, dtype=object) for _, _, g in cuts]).astype(str))
    prepared = []
    for scores, y, groups in cuts:
        codes = np.searchsorted(users, np.asarray(groups, dtype=object).astype(str))
        per = {}
        for name, p in scores.items():
            p = np.asarray(p, dtype=np.float64)
            order = np.argsort(p, kind="stable")
            tie = np.concatenate(([0], np.cumsum(np.diff(p[order]) != 0)))
            per[name] = (order, tie, p[order])
        prepared.append((per, np.asarray(y, dtype=np.float64), codes))
    names = list(cuts[0][0]) if cuts else []

    def means(times_drawn: np.ndarray) -> dict[str, float]:
        out = {}
        for name in names:
            aucs = []
            for per, y, codes in prepared:
                order, tie, p_sorted = per[name]
                w = times_drawn[codes].astype(np.float64)
                aucs.append(_auc(p_sorted, tie, y[order], w[order]))
            out[name] = float(np.nanmean(aucs))
        return out

    point = means(np.ones(len(users), dtype=np.int64))
    rng = np.random.default_rng(seed)
    draws = [
        means(np.bincount(rng.integers(0, len(users), len(users)), minlength=len(users))) for _ in range(resamples)
    ]
    interval = _interval
    result = {name: interval(point[name], np.array([d[name] for d in draws])) for name in names}
    for a, b in pairs:
        diff = interval(point[a] - point[b], np.array([d[a] - d[b] for d in draws]))
        result[f"{a} - {b}"] = {**diff, "within_noise": float(diff["low"] <= 0 <= diff["high"])}
    return result
