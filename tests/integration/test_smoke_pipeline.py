"""10,000 messages over 4 partitions -> the Faust smoke agent -> 10,000 Redis increments and ClickHouse rows."""

from __future__ import annotations

import time
import uuid

import redis

from infra import clickhouse_db
from streams.produce import produce_events
from streams.smoke import COUNTS_KEY, TOTAL_KEY
from tests.conftest import StackHandle

N = 10_000


def test_smoke_pipeline_counts_every_message_once(stack: StackHandle) -> None:
    s = stack.settings
    r = redis.Redis.from_url(s.redis_url)
    before_total = int(r.get(TOTAL_KEY) or 0)
    run = uuid.uuid4().hex[:8]
    users = [f"{run}-u{i}" for i in range(500)]
    produce_events(
        s,
        s.topic_page_views,
        (
            {
                "event_id": f"{run}-{i}",
                "user_id": users[i % len(users)],
                "ts": 1_763_800_000_000 + i,
                "page_type": "home",
            }
            for i in range(N)
        ),
    )
    worker = stack.spawn_worker()
    try:
        deadline = time.monotonic() + 180
        while int(r.get(TOTAL_KEY) or 0) - before_total < N and time.monotonic() < deadline:
            assert worker.running(), (s.home / "logs" / "worker.log").read_text()[-3000:]
            time.sleep(0.25)
        time.sleep(1.0)  # anything beyond N would be a double count
    finally:
        worker.stop()
    assert int(r.get(TOTAL_KEY) or 0) - before_total == N
    per_user = r.hmget(COUNTS_KEY, users)
    assert sum(int(v) for v in per_user) == N

    client = clickhouse_db.connect(s.clickhouse_dsn)
    try:
        rows, partitions = client.query(
            "SELECT count(), uniqExact(partition) FROM smoke_page_views FINAL WHERE startsWith(event_id, {run:String})",
            parameters={"run": run},
        ).result_rows[0]
    finally:
        client.close()
    assert rows == N
    assert partitions == s.partitions == 4
