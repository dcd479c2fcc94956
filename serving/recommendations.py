"""Recommendations for one user, as the API serves them: the daily job's CF candidates and the user's live category
affinity, blended with the admin's weight, without the items they bought, above the admin's minimum score.

A share of users (``popular_share``, by a stable hash of the id) is served the popularity baseline instead: the
holdout against which the dashboard compares click-through and conversion (variants ``hybrid`` and ``popularity``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from features.store import StateStore
from models.recommend import ItemModel, category_shares, rank
from models.recommend_store import RecommendationStore, current_version, load_current


def holdout(user_id: str, share: float) -> bool:
    """Is the user in the popularity holdout? A stable hash of the id, uniform on [0, 1), below ``share``."""
    h = int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8, person=b"rec-holdout").digest(), "big")
    return h / 2**64 < share


class RecommendationService:
    def __init__(
        self, root: Path, store: RecommendationStore, states: StateStore, half_life_days: float, reload_s: float = 5.0
    ) -> None:
        self.root, self.store, self.states = root, store, states
        self.half_life_days, self.reload_s = half_life_days, reload_s
        self._model: ItemModel | None = None
        self._checked = 0.0

    def model(self) -> ItemModel | None:
        """The item model served: reloaded when the job made a new version current (checked every ``reload_s``)."""
        now = time.monotonic()
        if now - self._checked >= self.reload_s or self._model is None:
            self._checked = now
            version = current_version(self.root)
            if version is not None and (self._model is None or self._model.version != version):
                self._model = load_current(self.root)
        return self._model

    async def recommend(self, user_id: str, k: int) -> dict[str, Any] | None:
        """The answer for ``user_id``; None if the user is unknown (no state, no candidates)."""
        model = self.model()
        if model is None:
            raise LookupError("no recommender trained yet: the worker's daily job, or `churnstream recommend fit`")
        candidates, bought_since, settings = await self.store.read(user_id)
        (state,) = await self.states.read_states([user_id])
        if state is None and candidates is None:
            return None
        bought = bought_since | set(candidates.bought if candidates else ())
        if holdout(user_id, settings.popular_share):
            variant = "popularity"
            ranked = [(i, s) for i, s in model.popular(k + len(bought), bought) if s >= settings.min_score][:k]
            cf: dict[str, float] = {}
            content: dict[str, float] = {}
        else:
            variant = "hybrid"
            cf = dict(candidates.items) if candidates else {}
            content = model.content_scores(category_shares(state, self.half_life_days)) if state else {}
            ranked = rank(cf, content, settings.alpha, bought, k, settings.min_score)
        items = [
            {"item_id": item, "category": model.category_of(item), "score": round(score, 6),
             "cf": round(cf.get(item, 0.0), 6), "content": round(content.get(item, 0.0), 6)}
            for item, score in ranked
        ]  # fmt: skip
        return {
            "user_id": user_id,
            "variant": variant,
            "model_version": model.version,
            "candidates_version": candidates.version if candidates else None,
            "alpha": settings.alpha,
            "min_score": settings.min_score,
            "items": items,
        }
