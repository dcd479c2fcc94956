"""Hybrid recommendations: item-to-item collaborative filtering from co-views, co-carts and co-purchases, blended
with content scores from the user's category affinity (docs/models.md, "Recommendations").

- **Collaborative filtering.** A user-item matrix of interaction weights (a page view 1, a cart event 3, a purchased
  item 5; ``log1p`` of each user's sum per item), scipy sparse. Items are its columns, scaled to unit length; their
  cosine similarities are one sparse product, of which each item keeps its :data:`NEIGHBOURS` most similar. A user's
  CF score of an item is the similarity-weighted mean over the items in their history: from 0 to 1.
- **Content.** The user's share of interest in the item's category (their priority categories, :mod:`features.interest`)
  times the item's popularity relative to the most popular item of its category: from 0 to 1. It serves items no one
  has co-viewed yet and users with no history in the model.
- **Blend.** ``alpha * cf + (1 - alpha) * content``; ``alpha`` and a minimum score are admin settings.

Items a user bought are never recommended to them.

>>> m = ItemModel.fit(
...     ["a", "a", "b", "b", "c"], ["x1", "x2", "x1", "x2", "x3"], ["books", "books", "books", "books", "toys"],
...     [1.0, 5.0, 1.0, 3.0, 1.0], version="r1")
>>> m.neighbours("x1")
[('x2', 0.992)]
>>> cf = m.cf_scores({"x1": 1.0})
>>> {k: round(v, 3) for k, v in cf.items()}
{'x2': 0.992}
>>> [(i, round(s, 3)) for i, s in rank(cf, m.content_scores({"toys": 1.0}), alpha=0.5, exclude={"x1"}, k=3)]
[('x3', 0.5), ('x2', 0.496)]
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from features.interest import HALF_LIFE_DAYS, KEPT, top
from features.state import UserState

WEIGHTS = {"page_view": 1.0, "cart": 3.0, "purchase": 5.0}
NEIGHBOURS = 30  # similar items kept per item
CANDIDATES = 50  # CF candidates kept per user by the daily job


class ItemModel:
    """What the daily job learns: items, their category and popularity, and each item's nearest neighbours."""

    def __init__(
        self,
        items: np.ndarray,
        categories: np.ndarray,
        popularity: np.ndarray,
        nbr_idx: np.ndarray,
        nbr_sim: np.ndarray,
        version: str,
        meta: Mapping[str, object] | None = None,
    ) -> None:
        self.items, self.categories, self.popularity = items, categories, popularity
        self.nbr_idx, self.nbr_sim, self.version = nbr_idx, nbr_sim, version
        self.meta = dict(meta or {})
        self.index = {item: i for i, item in enumerate(items.tolist())}
        self._by_category: dict[str, list[tuple[str, float]]] = {}
        best: dict[str, float] = {}
        for cat, pop in zip(categories.tolist(), popularity.tolist(), strict=True):
            best[cat] = max(best.get(cat, 0.0), pop)
        for item, cat, pop in zip(items.tolist(), categories.tolist(), popularity.tolist(), strict=True):
            self._by_category.setdefault(cat, []).append((item, pop / best[cat] if best[cat] else 0.0))
        for ranked in self._by_category.values():
            ranked.sort(key=lambda kv: (-kv[1], kv[0]))

    # ---- fitting --------------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        users: Sequence[str],
        items: Sequence[str],
        categories: Sequence[str],
        weights: Sequence[float],
        version: str,
        neighbours: int = NEIGHBOURS,
        meta: Mapping[str, object] | None = None,
    ) -> ItemModel:
        """From interactions in long form: one (user, item, item's category, weight) per event and item."""
        user_codes, user_ids = _codes(users)
        item_codes, item_ids = _codes(items)
        matrix = sp.coo_matrix(
            (np.asarray(weights, dtype=np.float64), (user_codes, item_codes)), shape=(len(user_ids), len(item_ids))
        ).tocsr()  # duplicates are summed
        matrix.data = np.log1p(matrix.data)
        popularity = np.asarray((matrix > 0).sum(axis=0)).ravel().astype(np.float64)  # users per item
        category = np.empty(len(item_ids), dtype=object)
        category[item_codes] = list(categories)  # an item's category: the last one seen
        cols = normalize(matrix.tocsc(), axis=0)
        sims = (cols.T @ cols).tocsr()
        sims.setdiag(0)
        sims.eliminate_zeros()
        nbr_idx = np.full((len(item_ids), neighbours), -1, dtype=np.int32)
        nbr_sim = np.zeros((len(item_ids), neighbours), dtype=np.float32)
        for i in range(len(item_ids)):
            row = sims.getrow(i)
            if row.nnz:
                top = np.argsort(-row.data, kind="stable")[:neighbours]
                nbr_idx[i, : len(top)] = row.indices[top]
                nbr_sim[i, : len(top)] = row.data[top]
        return cls(np.asarray(item_ids, dtype=str), category.astype(str), popularity, nbr_idx, nbr_sim, version, meta)

    # ---- scoring --------------------------------------------------------------------------------------------------
    def neighbours(self, item: str) -> list[tuple[str, float]]:
        i = self.index[item]
        return [
            (str(self.items[j]), round(float(s), 3))
            for j, s in zip(self.nbr_idx[i], self.nbr_sim[i], strict=True)
            if j >= 0
        ]

    def cf_scores(self, history: Mapping[str, float]) -> dict[str, float]:
        """Each neighbour of the history's items: similarity-weighted mean over the history (weights as
        interactions, ``log1p`` applied here as in the fit)."""
        total, acc = 0.0, dict[int, float]()
        for item, weight in history.items():
            i = self.index.get(item)
            if i is None:
                continue
            w = float(np.log1p(weight))
            total += w
            for j, s in zip(self.nbr_idx[i].tolist(), self.nbr_sim[i].tolist(), strict=True):
                if j >= 0:
                    acc[j] = acc.get(j, 0.0) + w * s
        return {str(self.items[j]): v / total for j, v in acc.items()} if total else {}

    def content_scores(self, shares: Mapping[str, float], per_category: int = 20) -> dict[str, float]:
        """The most popular items of the user's categories, each by category share x relative popularity."""
        out: dict[str, float] = {}
        for cat, share in shares.items():
            for item, pop in self._by_category.get(cat, [])[:per_category]:
                out[item] = share * pop
        return out

    def popular(self, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The baseline: the ``k`` items most users interacted with, relative to the most popular."""
        order = np.argsort(-self.popularity, kind="stable")
        best = float(self.popularity[order[0]]) if len(order) else 1.0
        out = []
        for j in order.tolist():
            if str(self.items[j]) not in exclude:
                out.append((str(self.items[j]), float(self.popularity[j]) / best))
                if len(out) == k:
                    break
        return out

    def category_of(self, item: str) -> str | None:
        i = self.index.get(item)
        return None if i is None else str(self.categories[i])

    # ---- storage: numpy arrays and JSON, no pickles ---------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            directory / "items.npz",
            items=self.items,
            categories=self.categories,
            popularity=self.popularity,
            nbr_idx=self.nbr_idx,
            nbr_sim=self.nbr_sim,
        )
        (directory / "meta.json").write_text(json.dumps({"version": self.version, **self.meta}, indent=1))
        return directory

    @classmethod
    def load(cls, directory: Path) -> ItemModel:
        meta = json.loads((directory / "meta.json").read_text())
        with np.load(directory / "items.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("items", "categories", "popularity", "nbr_idx", "nbr_sim")}
        return cls(**arrays, version=meta.pop("version"), meta=meta)


def interactions(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, float, bool]]:
    """(user, item, category, weight, bought) for each product an event names: a product page view, a cart event,
    each item of a purchase."""
    out = []
    for e in events:
        kind, user = e["type"], e["user_id"]
        if kind == "purchase":
            out += [(user, i["product_id"], i["category"], WEIGHTS[kind], True) for i in e["items"]]
        elif e.get("product_id"):
            out.append((user, e["product_id"], e.get("category") or "", WEIGHTS[kind], False))
    return out


def histories(
    rows: Iterable[tuple[str, str, str, float, bool]],
) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
    """From :func:`interactions`: each user's summed weight per item, and the items each user bought."""
    history: dict[str, dict[str, float]] = defaultdict(dict)
    bought: dict[str, set[str]] = defaultdict(set)
    for user, item, _, weight, was_bought in rows:
        history[user][item] = history[user].get(item, 0.0) + weight
        if was_bought:
            bought[user].add(item)
    return history, bought


def category_shares(state: UserState, half_life_days: float = HALF_LIFE_DAYS) -> dict[str, float]:
    """The user's priority categories as shares of their kept interest (what the API blends with)."""
    ranked = top(state.interest, state.interest_ms, state.interest_ms, KEPT, half_life_days)
    total = sum(v for _, v in ranked)
    return {c: v / total for c, v in ranked} if total else {}


def _codes(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    ids, codes = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    return codes, ids.tolist()


def rank(
    cf: Mapping[str, float],
    content: Mapping[str, float],
    alpha: float,
    exclude: Collection[str] = (),
    k: int = 10,
    min_score: float = 0.0,
) -> list[tuple[str, float]]:
    """The blend of both scores over their candidates, best first, without ``exclude`` and those below
    ``min_score``; at most ``k``. Ties (and, at ``alpha`` 1, the items only content scores) go by the content score,
    then the item id: content fills a list CF cannot."""
    scores = {
        i: (alpha * cf.get(i, 0.0) + (1 - alpha) * content.get(i, 0.0), content.get(i, 0.0)) for i in {*cf, *content}
    }
    kept = [(i, s, c) for i, (s, c) in scores.items() if i not in exclude and s >= min_score and (s > 0 or c > 0)]
    kept.sort(key=lambda t: (-t[1], -t[2], t[0]))
    return [(i, s) for i, s, _ in kept[:k]]
