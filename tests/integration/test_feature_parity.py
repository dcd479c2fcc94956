"""The feature path on the real stack: Kafka -> Faust -> Redis equals the offline builder, replays change nothing,
and every malformed kind reaches the DLQ with its reason, its source offset and the original bytes."""

from __future__ import annotations

import math
import time
import urllib.request
from collections import Counter

import numpy as np
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from core.keys import state_key
from features import offline
from features.compute import FEATURE_NAMES, features
from features.state import decode_state
from infra import clickhouse_db
from models.registry import Registry
from simulation.generator import MALFORMED_KINDS, TOPIC_OF, arrivals, make_users, simulate
from streams.produce import produce_records
from tests.conftest import StackHandle
from tests.integration.endstate import delivered, expected_dead_letters, read_dlq
from tests.integration.support import promote_new, reset_group_to_earliest

KIND_OF = {v: k for k, v in TOPIC_OF.items()}
USERS, DAYS, SEED = 2300, 90, 11


@pytest.fixture(scope="module")
def streamed(module_stack: StackHandle) -> dict:
    prefix = f"par{int(time.time()) % 100000}"
    users = make_users(USERS, DAYS, SEED, prefix=prefix, activity=0.5)  # about 120k events
    events = simulate(users, DAYS, SEED)
    produced_at = int(time.time() * 1000)
    records = arrivals(events, SEED, out_of_order=0.1, duplicates=0.01, malformed=0.01, now_ms=produced_at)
    assert len(events) >= 50_000 and len({e["user_id"] for e in events}) >= 1800
    assert (events[-1]["ts"] - events[0]["ts"]) >= 89 * 86_400_000
    produce_records(module_stack.settings, records)
    promote_new(Registry(module_stack.settings.registry_dir()), "logreg", 11)  # time rows are checked by score
    with module_stack.worker() as worker:
        module_stack.wait_consumed(worker=worker)
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{module_stack.metrics_port}/metrics", timeout=5).read().decode()
        )
        assert worker.running(), "the worker must survive malformed input"
    # in the order the worker applied the records, which decides which old events are too late
    accepted = offline.accept(
        (KIND_OF[r.topic], r.value, produced_at) for r in delivered(module_stack.settings, prefix)
    )
    return {
        "prefix": prefix,
        "users": users,
        "events": events,
        "records": records,
        "accepted": accepted,
        "metrics": metrics,
        "produced_at": produced_at,
    }


def redis_states(stack: StackHandle, user_ids: list[str]) -> dict[str, bytes]:
    r = redis.Redis.from_url(stack.settings.redis_url)
    return {u: b for u, b in zip(user_ids, r.mget([state_key(u) for u in user_ids]), strict=True) if b is not None}


def assert_close(got: dict[str, float], want: dict[str, float], user: str) -> None:
    assert list(got) == list(want) == list(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        assert math.isclose(got[name], want[name], rel_tol=0, abs_tol=1e-9), (user, name, got[name], want[name])


def test_redis_features_equal_offline_builder(module_stack: StackHandle, streamed: dict) -> None:
    accepted = streamed["accepted"]
    as_of = offline.latest(accepted)
    states = redis_states(module_stack, [u.user_id for u in streamed["users"]])
    assert set(states) == set(as_of) and len(states) >= 1800
    expected = dict(zip(as_of, offline.build(accepted, as_of.items()), strict=True))
    for user, blob in states.items():
        state = decode_state(blob)
        assert state.last_ms == as_of[user]
        assert_close(features(state, state.last_ms), expected[user], user)


def test_time_rows_score_the_offline_builders_features_bit_for_bit(module_stack: StackHandle, streamed: dict) -> None:
    """A time row scores the features as of a day end, computed by the worker from a state that may already hold
    later events; the offline builder folds only the events up to that moment. The champion (a logistic regression:
    every feature moves its score) must give the offline features the stored score, to 1e-9 (a matrix product may
    round differently with the batch's size; one feature off by a page view moves the score by far more)."""
    registry = Registry(module_stack.settings.registry_dir())
    client = clickhouse_db.connect(module_stack.settings.clickhouse_dsn)
    try:
        rows = client.query(
            "SELECT task, user_id, toUnixTimestamp64Milli(as_of), model_version, score FROM predictions "
            "WHERE startsWith(user_id, {p:String}) AND trigger = 'time' AND model_kind = 'pretrained' "
            "ORDER BY task, user_id, as_of",
            parameters={"p": streamed["prefix"]},
        ).result_rows
    finally:
        client.close()
    accepted = streamed["accepted"]
    checked = 0
    for task in ("churn", "purchase"):
        ref = registry.champion(task)
        assert ref is not None
        model = registry.load(ref)
        mine = [r for r in rows if r[0] == task][::7]  # every 7th row: all users, all ages of silence
        assert len(mine) > 2000 and {r[3] for r in mine} == {ref.version}
        queries = [(user, as_of) for _, user, as_of, _, _ in mine]
        X = np.array([[f[n] for n in FEATURE_NAMES] for f in offline.build(accepted, queries)])
        want = model.predict_proba_many(X)
        got = np.array([r[4] for r in mine])
        wrong = np.flatnonzero(np.abs(got - want) > 1e-9)
        assert not len(wrong), [(mine[i][1], mine[i][2], got[i], want[i]) for i in wrong[:5]]
        checked += len(mine)
    print(f"{checked} time rows scored as the offline builder's features")


def test_clickhouse_events_table_rebuilds_the_same_features(module_stack: StackHandle, streamed: dict) -> None:
    users = [u.user_id for u in streamed["users"]]
    client = clickhouse_db.connect(module_stack.settings.clickhouse_dsn)
    try:
        from_bronze = offline.read_clickhouse(client, users)
    finally:
        client.close()
    accepted = streamed["accepted"]
    # the same events per user (multisets: an event read twice would count twice)
    assert {u: Counter(e.event_id for e in v) for u, v in from_bronze.items()} == {
        u: Counter(e.event_id for e in v) for u, v in accepted.items()
    }
    # and the table holds each of them once, raw (no FINAL; merges are stopped on the test stack)
    client = clickhouse_db.connect(module_stack.settings.clickhouse_dsn)
    try:
        raw = Counter(
            r[0]
            for r in client.query(
                "SELECT event_id FROM events WHERE startsWith(user_id, {p:String})",
                parameters={"p": streamed["prefix"]},
            ).result_rows
        )
    finally:
        client.close()
    assert raw == Counter(e.event_id for v in accepted.values() for e in v)
    states = redis_states(module_stack, users)
    as_of = offline.latest(from_bronze)
    for user, f in zip(as_of, offline.build(from_bronze, as_of.items()), strict=True):
        state = decode_state(states[user])
        assert_close(features(state, state.last_ms), f, user)


def test_every_malformed_kind_is_in_the_dlq_with_reason_offset_and_bytes(
    module_stack: StackHandle, streamed: dict
) -> None:
    s = module_stack.settings
    dead = read_dlq(s, streamed["prefix"])
    expected = expected_dead_letters(delivered(s, streamed["prefix"]), streamed["produced_at"])
    assert sum(expected.values()) >= sum(1 for r in streamed["records"] if r.malformed)
    assert all(expected[kind] > 0 for kind in MALFORMED_KINDS), expected
    assert Counter(h["reason"] for h, _ in dead) == expected  # each record once, with its reason
    coordinates = Counter((h["source_topic"], h["source_partition"], h["source_offset"]) for h, _ in dead)
    assert max(coordinates.values()) == 1
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


def test_replay_from_earliest_changes_no_feature(module_stack: StackHandle, streamed: dict) -> None:
    s = module_stack.settings
    users = [u.user_id for u in streamed["users"]]
    before = redis_states(module_stack, users)
    raw_count = "SELECT count() FROM events WHERE startsWith(user_id, {p:String})"  # raw: a replayed row counts
    client = clickhouse_db.connect(s.clickhouse_dsn)
    try:
        rows_before = client.query(raw_count, parameters={"p": streamed["prefix"]}).result_rows[0][0]
    finally:
        client.close()
    reset_group_to_earliest(module_stack)
    with module_stack.worker() as worker:
        time.sleep(5)
        module_stack.wait_consumed(worker=worker)
    assert redis_states(module_stack, users) == before
    client = clickhouse_db.connect(s.clickhouse_dsn)
    try:
        assert client.query(raw_count, parameters={"p": streamed["prefix"]}).result_rows[0][0] == rows_before
    finally:
        client.close()
