"""Per-event scoring on the real stack: one prediction per (event, task, model kind), hot reload of a promoted
champion, refusal of a tampered one, no duplicates on replay, and the Redis cache of latest scores."""

from __future__ import annotations

import json
import time

import orjson
import redis

from core.keys import score_key
from infra import clickhouse_db
from models.registry import Registry
from simulation.generator import arrivals, make_users, simulate
from streams.produce import produce_records
from streams.segments import SEGMENT_FIELD
from tests.conftest import StackHandle
from tests.integration.support import fit, promote_new, reset_group_to_earliest


def produce_batch(stack: StackHandle, prefix: str, seed: int) -> None:
    users = make_users(150, 20, seed, prefix=prefix, start_ms=1_790_000_000_000)
    events = simulate(users, 20, seed, start_ms=1_790_000_000_000)
    produce_records(stack.settings, arrivals(events, seed, duplicates=0.02))


def predictions(stack: StackHandle, prefix: str) -> list[tuple]:
    client = clickhouse_db.connect(stack.settings.clickhouse_dsn)
    try:
        return client.query(
            # raw rows (no FINAL; merges are stopped on the test stack): a row written twice is counted twice
            "SELECT task, model_kind, model, model_version, count(), uniqExact(event_id), "
            "  (SELECT count() FROM events WHERE startsWith(user_id, {p:String})) "
            "FROM predictions WHERE startsWith(user_id, {p:String}) AND trigger = 'event' "
            "GROUP BY task, model_kind, model, model_version ORDER BY task, model_kind, model, model_version",
            parameters={"p": prefix},
        ).result_rows
    finally:
        client.close()


def time_rows(stack: StackHandle, prefix: str) -> int:
    client = clickhouse_db.connect(stack.settings.clickhouse_dsn)
    try:
        query = "SELECT count() FROM predictions WHERE startsWith(user_id, {p:String}) AND trigger = 'time'"
        return int(client.query(query, parameters={"p": prefix}).result_rows[0][0])
    finally:
        client.close()


def test_scoring_hot_reload_refusal_and_replay(module_stack: StackHandle) -> None:
    # embedded chDB: one process per data path, so ClickHouse is read only while no worker runs
    registry = Registry(module_stack.settings.registry_dir())
    first = promote_new(registry, "logreg", 1)
    run = f"sc{int(time.time()) % 100000}"
    with module_stack.worker() as worker:
        produce_batch(module_stack, f"{run}a-", 1)
        module_stack.wait_consumed(worker=worker)
    rows = predictions(module_stack, f"{run}a-")
    # every applied event has exactly one row per (task, model kind): the champion and the online model
    assert {(r[0], r[1], r[2], r[3]) for r in rows if r[1] == "pretrained"} == {
        ("churn", "pretrained", "logreg", first["churn"].version),
        ("purchase", "pretrained", "logreg", first["purchase"].version),
    }
    per_kind: dict[tuple[str, str], list[int]] = {}
    for task, kind, _model, _version, n, distinct, n_events in rows:
        assert n == distinct
        per_kind.setdefault((task, kind), [0, n_events])[0] += n
    assert set(per_kind) == {(t, k) for t in ("churn", "purchase") for k in ("pretrained", "online")}
    assert all(n == n_events > 0 for n, n_events in per_kind.values())

    with module_stack.worker() as worker:
        time.sleep(3)
        # promote a new champion while the worker runs: later rows carry the new version
        second = promote_new(registry, "xgboost", 2)
        time.sleep(module_stack.settings.model_reload_s + 1)
        produce_batch(module_stack, f"{run}b-", 2)
        module_stack.wait_consumed(worker=worker)

        # a tampered champion is refused; the running one keeps scoring
        bad = registry.save("churn", fit("logreg", 3), {"metrics": {"roc_auc": 0.5}})  # type: ignore[arg-type]
        artifact = registry.root / "churn" / "logreg" / bad.version / "model.skops"
        artifact.write_bytes(artifact.read_bytes()[:-10] + b"tampered!!")
        (registry.root / "churn" / "champion.json").write_text(json.dumps({"model": "logreg", "version": bad.version}))
        time.sleep(module_stack.settings.model_reload_s + 1)
        produce_batch(module_stack, f"{run}c-", 3)
        module_stack.wait_consumed(worker=worker)
        assert worker.running()
    assert "checksum mismatch" in module_stack.worker_log()
    assert {(r[0], r[2], r[3]) for r in predictions(module_stack, f"{run}b-") if r[1] == "pretrained"} == {
        ("churn", "xgboost", second["churn"].version),
        ("purchase", "xgboost", second["purchase"].version),
    }
    assert ("churn", "xgboost", second["churn"].version) in {
        (r[0], r[2], r[3]) for r in predictions(module_stack, f"{run}c-")
    }

    # latest scores are cached in Redis for the API
    r = redis.Redis.from_url(module_stack.settings.redis_url)
    keys = r.keys(score_key(f"{run}c-*"))
    assert keys
    cached = r.hgetall(keys[0])
    scores = {k.decode() for k in cached} - {SEGMENT_FIELD}  # the RFM segment beside them, once boundaries exist
    assert scores == {f"{t}:{k}" for t in ("churn", "purchase") for k in ("pretrained", "online")}
    assert 0.0 <= orjson.loads(cached[b"purchase:pretrained"])["score"] <= 1.0

    # replaying the topics adds no prediction rows, of either trigger
    times = time_rows(module_stack, run)
    assert times > 0
    before = {p: predictions(module_stack, p) for p in (f"{run}a-", f"{run}b-", f"{run}c-")}
    reset_group_to_earliest(module_stack)
    with module_stack.worker() as worker:
        time.sleep(5)
        module_stack.wait_consumed(worker=worker)
    assert {p: predictions(module_stack, p) for p in before} == before
    assert time_rows(module_stack, run) == times
