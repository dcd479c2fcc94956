"""Delayed labels on the real stack: snapshots resolve by events and by the watermark, the online models learn,
live quality lands in ClickHouse `model_metrics`, and a restarted worker resumes from the signed checkpoint."""

from __future__ import annotations

import time

import redis

from core.keys import checkpoint_key, pending_key
from infra import clickhouse_db
from models.online import OnlineModel
from simulation.generator import arrivals, make_users, simulate
from streams.produce import produce_records
from tests.conftest import StackHandle

FAST = {"CHURNSTREAM_ONLINE_METRICS_S": "1", "CHURNSTREAM_ONLINE_CHECKPOINT_S": "1"}


def test_online_models_learn_from_resolved_labels(module_stack: StackHandle) -> None:
    prefix = f"ol{int(time.time()) % 100000}"
    since_ms = int(time.time() * 1000)  # this run's rows of the shared `model_metrics` table are written after it
    start = (int(time.time() * 1000) // 86_400_000 - 130) * 86_400_000
    users = make_users(400, 120, 21, prefix=prefix, start_ms=start)
    produce_records(module_stack.settings, arrivals(simulate(users, 120, 21, start_ms=start), 21))
    with module_stack.worker(**FAST) as worker:
        module_stack.wait_consumed(worker=worker)
        time.sleep(4)  # a few timer ticks: expiries, metrics, checkpoint
    r = redis.Redis.from_url(module_stack.settings.redis_url)
    key = module_stack.settings.checkpoint_secret()
    learned = {}
    for task in ("churn", "purchase"):
        blob = r.get(checkpoint_key(task, "logreg"))
        assert blob, f"no checkpoint for {task}"
        learned[task] = OnlineModel.loads(blob, key).learned
        assert learned[task] > 100, (task, learned[task])
    assert r.keys(pending_key(f"{prefix}*")), "pending snapshots are kept per user"

    client = clickhouse_db.connect(module_stack.settings.clickhouse_dsn)
    try:
        metrics = client.query(
            "SELECT task, model_kind, count(), max(labels) FROM model_metrics "
            "WHERE ts >= fromUnixTimestamp64Milli({since:Int64}) GROUP BY task, model_kind ORDER BY task, model_kind",
            parameters={"since": since_ms},
        ).result_rows
        versions = client.query(
            "SELECT task, max(toUInt64OrZero(substring(model_version, 2))) FROM predictions "
            "WHERE model_kind = 'online' AND startsWith(user_id, {p:String}) GROUP BY task",
            parameters={"p": prefix},
        ).result_rows
    finally:
        client.close()
    online = {t: (rows, labels) for t, k, rows, labels in metrics if k == "online"}
    assert set(online) == {"churn", "purchase"}, metrics
    for task, (rows, labels) in online.items():
        # live quality was written, over labels this run's model learned (it started from nothing: own Redis db)
        assert rows > 0 and 0 < labels <= learned[task], (task, rows, labels, learned[task])
    assert sorted(t for t, _ in versions) == ["churn", "purchase"], versions
    assert all(v > 0 for _, v in versions), "later events are scored by a model that has learned"

    # a restart resumes from the checkpoint instead of starting over
    more = make_users(50, 10, 22, prefix=prefix + "x", start_ms=start + 119 * 86_400_000)
    produce_records(module_stack.settings, arrivals(simulate(more, 10, 22, start_ms=start + 119 * 86_400_000), 22))
    with module_stack.worker(**FAST) as worker:
        module_stack.wait_consumed(worker=worker)
        time.sleep(3)
    for task in ("churn", "purchase"):  # kept what it had learned, and learned more
        assert OnlineModel.loads(r.get(checkpoint_key(task, "logreg")), key).learned > learned[task], task
