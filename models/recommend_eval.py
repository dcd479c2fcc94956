"""Offline evaluation of the recommender on a time split: fit on the events before ``split``, ask for 10 items per
user, and count the items each user then bought in the next 30 days (and had not bought before).

Scorers: the hybrid (the admin's default blend), CF alone (``alpha`` 1), content alone (``alpha`` 0) and the
popularity baseline (the most popular items the user has not bought). HR@10: the share of users with at least one
bought item among the 10. NDCG@10: binary relevance, normalised by the ideal order of the user's bought items. The 95%
intervals resample the users (seeded), the difference to popularity paired on the same draws. The hybrid's weight is
chosen on an earlier (validation) split, never on the test split.

>>> from simulation.generator import make_users, simulate
>>> events = simulate(make_users(300, 200, seed=1), 200, seed=1)
>>> r = evaluate(events, split_ms=events[0]["ts"] + 150 * 86_400_000, resamples=50)
>>> r["users"] > 20, r["scorers"]["hybrid"]["hr"] > r["scorers"]["popularity"]["hr"]
(True, True)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from core.days import DAY_MS
from features import offline
from features.state import UserState, apply
from models.recommend import ItemModel, category_shares, histories, interactions, rank

K = 10
ALPHAS = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0)  # the blend weights tried on the validation split
HORIZON_DAYS = 30


def ndcg(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def scored_users(
    events: Sequence[Mapping[str, Any]], split_ms: int, alphas: Sequence[float]
) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """Fit on the events before ``split_ms``; per scorer ("alpha=<a>" for each blend, "popularity"), the (hit,
    NDCG@10) of each user who bought, in the next 30 days, an item they had not bought before; and the model's
    items."""
    before = [e for e in events if e["ts"] < split_ms]
    after = [e for e in events if split_ms <= e["ts"] < split_ms + HORIZON_DAYS * DAY_MS]
    rows = interactions(before)
    model = ItemModel.fit(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], "eval"
    )
    history, bought = histories(rows)
    future: dict[str, set[str]] = defaultdict(set)
    for user, item, _, _, was_bought in interactions(after):
        if was_bought and item not in bought[user] and user in history:
            future[user].add(item)
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in before)
    metrics: dict[str, list[tuple[float, float]]] = {
        name: [] for name in [*(f"alpha={a}" for a in alphas), "popularity"]
    }
    for user in sorted(future):
        state = UserState()
        for ev in accepted.get(user, []):
            apply(state, ev)
        cf, content = model.cf_scores(history[user]), model.content_scores(category_shares(state))
        lists = {f"alpha={a}": rank(cf, content, a, bought[user], K) for a in alphas}
        lists["popularity"] = model.popular(K, bought[user])
        for name, ranked in lists.items():
            items = [i for i, _ in ranked]
            metrics[name].append((float(bool(future[user] & set(items))), ndcg(items, future[user])))
    return metrics, len(model.items)


def evaluate(
    events: Sequence[Mapping[str, Any]],
    split_ms: int,
    resamples: int = 400,
    seed: int = 0,
) -> dict[str, Any]:
    """The blend's weight is chosen by NDCG@10 on a validation split 30 days earlier (fit on the events before it,
    scored on the purchases of the 30 days after it), then every scorer is measured on the test split."""
    valid, _ = scored_users(events, split_ms - HORIZON_DAYS * DAY_MS, ALPHAS)
    alpha = max(ALPHAS, key=lambda a: (float(np.mean([m[1] for m in valid[f"alpha={a}"]] or [0])), a))
    test, items = scored_users(events, split_ms, sorted({alpha, 1.0, 0.0}))
    named = {
        "hybrid": test[f"alpha={alpha}"],
        "cf": test["alpha=1.0"],
        "content": test["alpha=0.0"],
        "popularity": test["popularity"],
    }
    return {
        "users": len(named["popularity"]),
        "items": items,
        "validation_users": len(valid["popularity"]),
        "validation_ndcg": {a: round(float(np.mean([m[1] for m in valid[f"alpha={a}"]] or [0])), 4) for a in ALPHAS},
        "split_ms": split_ms,
        "alpha": alpha,
        "k": K,
        "scorers": _intervals(named, resamples, seed),
    }


def _intervals(metrics: Mapping[str, list[tuple[float, float]]], resamples: int, seed: int) -> dict[str, Any]:
    """Each scorer's HR and NDCG with 95% intervals, and its paired difference to popularity, over user draws."""
    arrays = {name: np.array(values).reshape(-1, 2) for name, values in metrics.items()}
    n = len(next(iter(arrays.values())))
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n)) if n else np.zeros((0, 0), dtype=int)
    base = arrays["popularity"]
    out: dict[str, Any] = {}
    for name, a in arrays.items():
        row: dict[str, Any] = {}
        for col, metric in enumerate(("hr", "ndcg")):
            means = a[draws, col].mean(axis=1) if n else np.zeros(1)
            diffs = (a[draws, col] - base[draws, col]).mean(axis=1) if n else np.zeros(1)
            row[metric] = round(float(a[:, col].mean()) if n else 0.0, 4)
            row[f"{metric}_ci"] = [round(float(np.percentile(means, q)), 4) for q in (2.5, 97.5)]
            row[f"{metric}_vs_popularity_ci"] = [round(float(np.percentile(diffs, q)), 4) for q in (2.5, 97.5)]
        out[name] = row
    return out
