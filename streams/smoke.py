"""Smoke pipeline proving the stack end to end: page views -> per-user counters in Redis + rows in ClickHouse.

Effects are idempotent per source record, so redelivery after a crash or rebalance changes nothing: ClickHouse rows
are keyed by (topic, partition, offset) in a ReplacingMergeTree, and one Lua call per batch applies Redis increments
only for offsets above the last one applied for that partition, in the same atomic step.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from tenacity import AsyncRetrying, before_sleep_log, wait_exponential

from churnstream.settings import Settings
from streams.sinks import ClickHouseSink

log = logging.getLogger(__name__)

COUNTS_KEY = "cs:smoke:users"
TOTAL_KEY = "cs:smoke:total"
OFFSETS_KEY = "cs:smoke:offsets"
COLUMNS = ("topic", "partition", "offset", "user_id", "event_id", "ts")

# KEYS: offsets hash, per-user counts hash, total counter. ARGV: (topic:partition, offset, user_id) triples.
APPLY_BATCH = """
local applied = 0
for i = 1, #ARGV, 3 do
  local off = tonumber(ARGV[i + 1])
  local last = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if off > last then
    redis.call('HINCRBY', KEYS[2], ARGV[i + 2], 1)
    redis.call('HSET', KEYS[1], ARGV[i], off)
    applied = applied + 1
  end
end
if applied > 0 then redis.call('INCRBY', KEYS[3], applied) end
return applied
"""


def generate_page_views(events: int, users: int, run_id: str | None = None, rate: float = 0.0) -> Iterator[dict]:
    """Minimal page views for the smoke pipeline (the full generator replaces this).

    >>> [e["user_id"] for e in generate_page_views(3, 2, run_id="r")]
    ['user-0', 'user-1', 'user-0']
    """
    run_id = run_id or uuid.uuid4().hex[:8]
    now_ms = int(time.time() * 1000)
    start = time.monotonic()
    for i in range(events):
        if rate > 0 and i % 100 == 0:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        yield {
            "event_id": f"{run_id}-{i}",
            "user_id": f"user-{i % users}",
            "ts": now_ms - (events - i) * 10,
            "page_type": "product",
        }


class SmokeProcessor:
    """Applies one micro-batch of raw page-view records to ClickHouse, then Redis."""

    def __init__(self, settings: Settings) -> None:
        self.redis = aioredis.Redis.from_url(settings.redis_url)
        self.script = self.redis.register_script(APPLY_BATCH)
        self.sink = ClickHouseSink(settings.clickhouse_dsn, "smoke_page_views", COLUMNS)

    async def process(self, records: list[tuple[str, int, int, bytes]]) -> int:
        """``records`` are (topic, partition, offset, value); returns how many Redis applied (new ones)."""
        args: list[Any] = []
        for topic, partition, offset, value in records:
            try:
                event = orjson.loads(value)
                user_id = str(event["user_id"])
                ts = dt.datetime.fromtimestamp(int(event["ts"]) / 1000, tz=dt.UTC)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("smoke: skipping malformed record %s[%d]@%d", topic, partition, offset)
                continue
            self.sink.add((topic, partition, offset, user_id, str(event.get("event_id", "")), ts))
            args += (f"{topic}:{partition}", offset, user_id)
        await self.sink.flush()
        applied = 0
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.1, max=5), before_sleep=before_sleep_log(log, logging.WARNING)
        ):
            with attempt:
                applied = int(await self.script(keys=[OFFSETS_KEY, COUNTS_KEY, TOTAL_KEY], args=args)) if args else 0
        return applied
