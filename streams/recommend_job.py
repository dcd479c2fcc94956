"""The daily recommender job: fit the item model on the last 90 days of ClickHouse ``events``, save it as the version
served, and write each user's CF candidates to Redis (:mod:`models.recommend_store`).

The worker runs it after each RFM cut it makes (:mod:`streams.segment_watch`: once a day of event time, and once at
a deployment's first events), reading ClickHouse on that cut's client and thread and fitting in a thread of its own,
so the event loop keeps consuming. ``churnstream recommend fit`` runs the same job by hand.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from core.days import DAY_MS
from models.recommend import CANDIDATES, ItemModel, histories, interactions
from models.recommend_store import Candidates, RecommendationStore, save_current

log = logging.getLogger(__name__)

WINDOW_DAYS = 90
# each event once (a batch written again before a merge); events that name a product
INTERACTIONS = """
SELECT user_id, event_type, product_id, category, items
FROM events
WHERE ts <= fromUnixTimestamp64Milli({as_of:Int64}, 'UTC') AND ts > fromUnixTimestamp64Milli({since:Int64}, 'UTC')
  AND (product_id != '' OR event_type = 'purchase')
LIMIT 1 BY user_id, event_id
"""
Row = tuple[str, str, str, float, bool]  # (user, item, category, weight, bought)


def read_interactions(client: Any, as_of_ms: int, window_days: int = WINDOW_DAYS) -> list[Row]:
    params = {"as_of": as_of_ms, "since": as_of_ms - window_days * DAY_MS}
    events = (
        {"type": kind, "user_id": user, "product_id": product, "category": category,
         "items": orjson.loads(items) if kind == "purchase" and items else []}
        for user, kind, product, category, items in client.query(INTERACTIONS, parameters=params).result_rows
    )  # fmt: skip
    return interactions(events)


def build(rows: Sequence[Row], as_of_ms: int) -> tuple[ItemModel, dict[str, Candidates]]:
    """The item model of ``rows`` and every user's top CF candidates (not the items they bought)."""
    moment = dt.datetime.fromtimestamp(as_of_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    version = f"rec-{moment}"
    meta = {"as_of_ms": as_of_ms, "rows": len(rows)}
    model = ItemModel.fit(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], version, meta=meta
    )
    history, bought = histories(rows)
    out = {}
    for user, seen in history.items():
        cf = model.cf_scores(seen)
        ranked = sorted(((i, round(s, 6)) for i, s in cf.items() if i not in bought[user]), key=lambda t: (-t[1], t[0]))
        out[user] = Candidates(version, ranked[:CANDIDATES], sorted(bought[user]))
    return model, out


class RecommenderJob:
    def __init__(self, read: Callable[[int], Awaitable[list[Row]]], store: RecommendationStore, root: Path) -> None:
        self.read, self.store, self.root = read, store, root

    async def run(self, as_of_ms: int) -> str | None:
        """Fit, save and write as of ``as_of_ms``; the version served (None: no interaction in the window)."""
        rows = await self.read(as_of_ms)
        if not rows:
            return None
        model, candidates = await asyncio.to_thread(build, rows, as_of_ms)
        await asyncio.to_thread(save_current, self.root, model)
        await self.store.write(candidates)
        log.info("recommender %s: %d items, %d users' candidates", model.version, len(model.items), len(candidates))
        return model.version
