"""Demand by category: after each daily cut, the expected number of customers buying in each category in the next
30 days, written to ClickHouse ``category_demand`` (``category_demand_check`` sets it beside what happened).

For each customer active in the 60 days up to the cut: their purchase probability (the champion's latest purchase
score as of the cut, from ``predictions``) times their share of interest in each category, interest being the
priority categories' definition (:mod:`features.interest`: a page view 1, a cart event 3, a purchased item 5,
halving every ``CHURNSTREAM_CATEGORY_HALF_LIFE_DAYS``), over the events of the 90 days before the cut and every
category touched.
Summed over customers per category. Computed in ClickHouse in one query.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.days import DAY_MS, LAPSE_DAYS
from streams.sinks import ClickHouseSink

WINDOW_DAYS = 90
DEMAND_COLUMNS = ("day", "as_of", "category", "expected", "users")

DEMAND = """
WITH
    fromUnixTimestamp64Milli({as_of:Int64}, 'UTC') AS cut,
    touched AS (
        SELECT user_id, ts, multiIf(event_type = 'purchase', 5.0, event_type = 'cart', 3.0, 1.0) AS weight,
               if(event_type = 'purchase', JSONExtractString(item, 'category'), category) AS category
        FROM (SELECT * FROM events WHERE ts <= cut AND ts > cut - INTERVAL {window:UInt32} DAY
              LIMIT 1 BY user_id, event_id)
        LEFT ARRAY JOIN if(event_type = 'purchase', JSONExtractArrayRaw(items), ['']) AS item
    ),
    interest AS (
        SELECT user_id, category,
               sum(weight * exp2(-dateDiff('millisecond', ts, cut) / {half_life_ms:Float64})) AS v
        FROM touched WHERE category != '' GROUP BY user_id, category
    ),
    shares AS (SELECT user_id, category, v / sum(v) OVER (PARTITION BY user_id) AS share FROM interest),
    active AS (
        SELECT user_id FROM events WHERE ts <= cut
        GROUP BY user_id HAVING max(ts) > fromUnixTimestamp64Milli({since:Int64}, 'UTC')
    ),
    p AS (
        SELECT user_id, argMax(score, as_of) AS score FROM predictions
        WHERE task = 'purchase' AND model_kind = 'pretrained' AND as_of <= cut
          AND user_id IN (SELECT user_id FROM active)
        GROUP BY user_id
    )
SELECT shares.category AS category, sum(shares.share * p.score) AS expected, uniqExact(shares.user_id) AS users
FROM shares INNER JOIN p ON p.user_id = shares.user_id
GROUP BY category ORDER BY category
"""


def demand(client: Any, as_of_ms: int, half_life_days: float) -> list[tuple[Any, ...]]:
    """The ``category_demand`` rows of the cut at ``as_of_ms``."""
    params = {
        "as_of": as_of_ms,
        "window": WINDOW_DAYS,
        "half_life_ms": half_life_days * DAY_MS,
        "since": as_of_ms - LAPSE_DAYS * DAY_MS,
    }
    day = dt.date(1970, 1, 1) + dt.timedelta(days=as_of_ms // DAY_MS)
    return [
        (day, as_of_ms, category, round(float(expected), 6), int(users))
        for category, expected, users in client.query(DEMAND, parameters=params).result_rows
    ]


class DemandJob:
    """Computes and writes a cut's demand on ``table`` (a sink of ``category_demand``, whose client also reads)."""

    def __init__(self, table: ClickHouseSink, half_life_days: float) -> None:
        self.table, self.half_life_days = table, half_life_days

    async def run(self, as_of_ms: int) -> int:
        rows = await self.table.call(demand, as_of_ms, self.half_life_days)
        return await self.table.write(rows, f"demand:{as_of_ms}")
