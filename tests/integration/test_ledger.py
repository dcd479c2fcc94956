"""The Redis ledgers of marks (dead letters, ClickHouse rows) on a real Redis: a mark never goes down, and keeps its
time unless it rises. A replaying owner's batch ends below the mark its predecessor left; lowering the mark then
(with a fresh time) made the next owner scan the DLQ only from that time, and send again the letters the
predecessor had delivered before it (the rebalance test's doubled dead letters of early records)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from core.keys import CLICKHOUSE_LEDGER, DLQ_LEDGER
from streams.ledger import RedisLedger
from tests.conftest import StackHandle


def test_a_mark_never_goes_down_and_keeps_its_time_unless_it_rises(module_stack: StackHandle) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(module_stack.settings.redis_url)
        try:
            for prefix in (DLQ_LEDGER, CLICKHOUSE_LEDGER):
                ledger = RedisLedger(client, prefix)
                a, b = (f"ledger{time.time_ns()}.page_views", 0), (f"ledger{time.time_ns()}.cart_events", 3)
                await ledger.save({a: 200, b: 7}, {a: 1_000, b: 1_000})
                await ledger.save({a: 150, b: 9}, {a: 5_000, b: 5_000})  # a replayed batch below a's mark
                assert await ledger.load([a, b]) == {a: (200, 1_000), b: (9, 5_000)}
                await ledger.save({a: 200})  # the same mark again: its time stays
                assert await ledger.load([a]) == {a: (200, 1_000)}
                await ledger.save({a: 250})  # a rise: now
                offset, at_ms = (await ledger.load([a]))[a]
                assert offset == 250 and abs(at_ms - time.time() * 1000) < 60_000
        finally:
            await client.aclose()

    asyncio.run(run())
