"""10,000 page views over 4 partitions -> the Faust agent -> 10,000 Redis increments and 10,000 ClickHouse rows."""

from __future__ import annotations

import uuid

import redis

from core.keys import state_key
from features.state import PAGE_VIEWS, decode_state
from infra import clickhouse_db
from streams.produce import produce_events
from tests.conftest import StackHandle

N = 10_000


def test_every_message_counted_once_in_redis_and_clickhouse(module_stack: StackHandle) -> None:
    s = module_stack.settings
    run = uuid.uuid4().hex[:8]
    users = [f"{run}-u{i}" for i in range(500)]
    produce_events(
        s,
        (
            {
                "type": "page_view",
                "event_id": f"{run}-{i}",
                "user_id": users[i % len(users)],
                "ts": 1_763_800_000_000 + i,
                "page_type": "home",
            }
            for i in range(N)
        ),
    )
    with module_stack.worker():
        module_stack.wait_consumed()
    r = redis.Redis.from_url(s.redis_url)
    states = [decode_state(b) for b in r.mget([state_key(u) for u in users])]
    assert sum(st.life[PAGE_VIEWS] for st in states) == N
    assert sum(st.events for st in states) == N

    client = clickhouse_db.connect(s.clickhouse_dsn)
    try:
        rows, partitions = client.query(
            "SELECT count(), uniqExact(partition) FROM events WHERE startsWith(event_id, {run:String})",
            parameters={"run": run},
        ).result_rows[0]
    finally:
        client.close()
    assert rows == N
    assert partitions == s.partitions == 4
