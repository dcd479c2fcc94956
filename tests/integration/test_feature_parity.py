"""The feature path on the real stack: Kafka -> Faust -> Redis equals the offline builder, replays change nothing,
and every malformed kind reaches the DLQ with its reason, its source offset and the original bytes."""

from __future__ import annotations

import math
import time
import urllib.request
from collections import Counter

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from features import offline
from features.compute import FEATURE_NAMES, features
from features.state import decode_state, state_key
from infra import clickhouse_db
from streams.generator import MALFORMED_KINDS, TOPIC_OF, arrivals, make_users, simulate
from streams.produce import produce_records
from tests.conftest import StackHandle
from tests.integration.endstate import read_dlq

KIND_OF = {v: k for k, v in TOPIC_OF.items()}
USERS, DAYS, SEED = 2300, 90, 11


@pytest.fixture(scope="module")
def streamed(stack: StackHandle) -> dict:
    prefix = f"par{int(time.time()) % 100000}"
    users = make_users(USERS, DAYS, SEED, prefix=prefix, activity=0.5)  # about 120k events
    events = simulate(users, DAYS, SEED)
    produced_at = int(time.time() * 1000)
    records = arrivals(events, SEED, out_of_order=0.1, duplicates=0.01, malformed=0.01, now_ms=produced_at)
    assert len(events) >= 50_000 and len({e["user_id"] for e in events}) >= 2000
    assert (events[-1]["ts"] - events[0]["ts"]) >= 89 * 86_400_000
    produce_records(stack.settings, records)
    with stack.worker() as worker:
        stack.wait_consumed(worker=worker)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).read().decode()
        assert worker.running(), "the worker must survive malformed input"
    accepted = offline.accept((KIND_OF[r.topic], r.value, produced_at) for r in records)
    return {
        "prefix": prefix,
        "users": users,
        "events": events,
        "records": records,
        "accepted": accepted,
        "metrics": metrics,
    }


def reset_group_to_earliest(stack: StackHandle) -> None:
    """Delete the worker's consumer group (no worker runs), so the next worker starts from the earliest offsets."""
    admin = AdminClient({"bootstrap.servers": stack.settings.kafka_bootstrap})  # keep a reference: futures need it
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.delete_consumer_groups([stack.settings.app_id], request_timeout=10)[stack.settings.app_id].result(20)
            return
        except KafkaException:  # GROUP_NOT_EMPTY until the stopped member's session ends
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def redis_states(stack: StackHandle, user_ids: list[str]) -> dict[str, bytes]:
    r = redis.Redis.from_url(stack.settings.redis_url)
    return {u: b for u, b in zip(user_ids, r.mget([state_key(u) for u in user_ids]), strict=True) if b is not None}


def assert_close(got: dict[str, float], want: dict[str, float], user: str) -> None:
    assert list(got) == list(want) == list(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        assert math.isclose(got[name], want[name], rel_tol=0, abs_tol=1e-9), (user, name, got[name], want[name])


def test_redis_features_equal_offline_builder(stack: StackHandle, streamed: dict) -> None:
    accepted = streamed["accepted"]
    as_of = offline.latest(accepted)
    states = redis_states(stack, [u.user_id for u in streamed["users"]])
    assert set(states) == set(as_of) and len(states) >= 2000
    expected = dict(zip(as_of, offline.build(accepted, as_of.items()), strict=True))
    for user, blob in states.items():
        state = decode_state(blob)
        assert state.last_ms == as_of[user]
        assert_close(features(state, state.last_ms), expected[user], user)


def test_clickhouse_events_table_rebuilds_the_same_features(stack: StackHandle, streamed: dict) -> None:
    users = [u.user_id for u in streamed["users"]]
    client = clickhouse_db.connect(stack.settings.clickhouse_dsn)
    try:
        from_bronze = offline.read_clickhouse(client, users)
    finally:
        client.close()
    accepted = streamed["accepted"]
    assert {u: [e.event_id for e in v] for u, v in from_bronze.items()} == {
        u: [e.event_id for e in v] for u, v in accepted.items()
    } or sum(map(len, from_bronze.values())) == sum(map(len, accepted.values()))
    states = redis_states(stack, users)
    as_of = offline.latest(from_bronze)
    for user, f in zip(as_of, offline.build(from_bronze, as_of.items()), strict=True):
        state = decode_state(states[user])
        assert_close(features(state, state.last_ms), f, user)


def test_every_malformed_kind_is_in_the_dlq_with_reason_offset_and_bytes(stack: StackHandle, streamed: dict) -> None:
    s = stack.settings
    dead = read_dlq(s, streamed["prefix"])
    expected = Counter(r.malformed for r in streamed["records"] if r.malformed)
    got = Counter(h["reason"] for h, _ in dead)
    for kind in MALFORMED_KINDS:
        assert got[kind] >= expected[kind] > 0, (kind, got, expected)
    # the source coordinates point at the very record, whose bytes the DLQ carries unchanged
    source = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "dlq-source", "enable.auto.commit": False})
    for h, value in dead[:: max(1, len(dead) // 40)]:
        assert h["source_topic"] in s.input_topics and h["detail"]
        source.assign([TopicPartition(h["source_topic"], int(h["source_partition"]), int(h["source_offset"]))])
        original = source.consume(1, timeout=10)[0]
        assert original.value() == value
    source.close()
    # DLQ counts are exposed as metrics
    for kind in MALFORMED_KINDS:
        assert f'churnstream_dlq_total{{reason="{kind}"}}' in streamed["metrics"]


def test_replay_from_earliest_changes_no_feature(stack: StackHandle, streamed: dict) -> None:
    s = stack.settings
    users = [u.user_id for u in streamed["users"]]
    before = redis_states(stack, users)
    client = clickhouse_db.connect(s.clickhouse_dsn)
    try:
        rows_before = client.query("SELECT count() FROM events FINAL").result_rows[0][0]
    finally:
        client.close()
    reset_group_to_earliest(stack)
    with stack.worker() as worker:
        time.sleep(5)
        stack.wait_consumed(worker=worker)
    assert redis_states(stack, users) == before
    client = clickhouse_db.connect(s.clickhouse_dsn)
    try:
        assert client.query("SELECT count() FROM events FINAL").result_rows[0][0] == rows_before
    finally:
        client.close()
