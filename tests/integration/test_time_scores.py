"""Scores that follow time, on the real stack: a user who goes quiet is rescored once a day, their churn score
rises and they lapse after 60 days; the same topics consumed live and as a backlog give the same rows."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import orjson
import pytest
import redis

from core.days import DAY_MS, LAPSE_DAYS, day_end, lapsed
from core.keys import rescoring_key, score_key
from core.tasks import TASKS, label
from features import offline
from features.compute import FEATURE_NAMES
from features.schedule import due
from features.state import UserState, apply, encode_state
from features.store import RedisStateStore
from infra import clickhouse_db
from infra import stack as infra_stack
from models.champions import Champions
from models.pretrained import create
from models.registry import Registry
from simulation.generator import arrivals, make_users, simulate
from streams.produce import produce_records
from streams.rescore import Rescorer, time_rows_lookup
from streams.retry import EffectFailed
from streams.scoring import PREDICTION_COLUMNS, Scorer
from streams.sinks import ClickHouseSink
from tests.conftest import StackHandle, _redis_databases
from tests.integration.endstate import stop_merges
from tests.integration.support import promote_new

START = 1_785_000_000_000 // DAY_MS * DAY_MS  # a day boundary in 2026


def promote_silence_champion(stack: StackHandle, events: list[dict]) -> None:
    """A champion for both tasks trained, as the real ones are, on rows at day ends of the generated history
    (features as of the day end, churn labels from what follows), so it has learned what silence means."""
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in events)
    end = max(e["ts"] for e in events) - LAPSE_DAYS * DAY_MS
    queries = [
        (u, day_end(d))
        for u, evs in accepted.items()
        for d in range(evs[0].ts_ms // DAY_MS, min(evs[-1].ts_ms // DAY_MS + LAPSE_DAYS, end // DAY_MS), 3)
    ]
    X = np.array([[f[n] for n in FEATURE_NAMES] for f in offline.build(accepted, queries)])
    y = np.array([label("churn", accepted[u], t) for u, t in queries], dtype=np.int8)
    assert 0.1 < y.mean() < 0.9, y.mean()
    registry = Registry(stack.settings.registry_dir())
    for task in TASKS:
        registry.promote(registry.save(task, create("logreg", 3).fit(X, y), {"metrics": {"roc_auc": 0.5}}))  # type: ignore[arg-type]


def time_rows(dsn: str, user: str) -> list[tuple[int, float, int]]:
    """(as_of ms, score, last event ms) of the user's pretrained churn time rows, raw, by as_of."""
    client = clickhouse_db.connect(dsn)
    try:
        return [
            (int(a), float(s), int(e))
            for a, s, e in client.query(
                "SELECT toUnixTimestamp64Milli(as_of), score, toUnixTimestamp64Milli(event_ts) FROM predictions "
                "WHERE user_id = {u:String} AND trigger = 'time' AND task = 'churn' AND model_kind = 'pretrained' "
                "ORDER BY as_of, score",
                parameters={"u": user},
            ).result_rows
        ]
    finally:
        client.close()


def test_a_quiet_user_is_rescored_daily_grows_riskier_and_lapses(module_stack: StackHandle) -> None:
    prefix = f"quiet{int(time.time()) % 100000}-"
    users = make_users(150, 100, 41, prefix=prefix, start_ms=START)
    events = simulate(users, 100, 41, start_ms=START)
    promote_silence_champion(module_stack, events)
    early = [e for e in events if e["ts"] < START + 25 * DAY_MS]
    quiet = max({e["user_id"] for e in early}, key=lambda u: sum(e["user_id"] == u for e in early))
    events = [e for e in events if e["user_id"] != quiet or e["ts"] < START + 25 * DAY_MS]  # quiet after day 25
    last = max(e["ts"] for e in events if e["user_id"] == quiet)
    first = min(e["ts"] for e in events if e["user_id"] == quiet)
    assert max(e["ts"] for e in events) > last + (LAPSE_DAYS + 5) * DAY_MS  # the others go on past the lapse
    produce_records(module_stack.settings, arrivals(events, 41, out_of_order=0.05))
    with module_stack.worker(CHURNSTREAM_ONLINE_MODEL="off") as worker:
        module_stack.wait_consumed(worker=worker)
        cached = redis.Redis.from_url(module_stack.settings.redis_url).hgetall(score_key(quiet))

    rows = time_rows(module_stack.settings.clickhouse_dsn, quiet)
    as_of = [a for a, _, _ in rows]
    # one row per day end, from the first day to the lapse row 60 days after the last event, and none after
    want = [day_end(d) for d in range(first // DAY_MS, last // DAY_MS + LAPSE_DAYS + 1)]
    assert as_of == want, (len(as_of), len(want), sorted(set(as_of) ^ set(want))[:5])
    assert lapsed(as_of[-1], last) and not lapsed(as_of[-2], last)
    quiet_scores = [s for a, s, e in rows if a > last]
    assert all(e == last for a, _, e in rows if a > last)  # each time row names the latest event it saw
    assert quiet_scores[-1] > quiet_scores[0] + 0.3, quiet_scores
    rises = sum(b >= a - 1e-9 for a, b in itertools.pairwise(quiet_scores))
    assert rises >= 0.9 * (len(quiet_scores) - 1), quiet_scores
    # the API's cache holds the lapse row as the user's latest churn score
    latest = orjson.loads(cached[b"churn:pretrained"])
    assert (latest["trigger"], latest["as_of_ms"], latest["last_event_ms"]) == ("time", as_of[-1], last)


def replica(stack: StackHandle, name: str) -> StackHandle:
    """The same topics read by another consumer group into a Redis database and a ClickHouse of its own."""
    dsn = infra_stack.clickhouse_beside(stack.settings, f"{name}{time.time_ns() % 10**7}")
    if dsn != stack.settings.clickhouse_dsn:
        stop_merges(dsn)
    overrides = {
        "app_id": f"{stack.settings.app_id}-{name}",
        "redis_url": f"redis://127.0.0.1:{stack.settings.redis_port}/{next(_redis_databases)}",
        "clickhouse_dsn": dsn,
    }
    env = stack.env | {f"CHURNSTREAM_{k.upper()}": v for k, v in overrides.items()}
    return StackHandle(stack.settings.model_copy(update=overrides), env)


ROWS = (
    "SELECT user_id, task, model_kind, trigger, toUnixTimestamp64Milli(as_of), event_id, "
    "toUnixTimestamp64Milli(event_ts), model, model_version, score FROM predictions "
    "WHERE startsWith(user_id, {p:String}) ORDER BY ALL"
)


def all_rows(dsn: str, prefix: str) -> list[tuple]:
    client = clickhouse_db.connect(dsn)
    try:
        return [tuple(r) for r in client.query(ROWS, parameters={"p": prefix}).result_rows]
    finally:
        client.close()


def test_live_and_backlog_give_the_same_rows_time_rows_included(module_stack: StackHandle) -> None:
    live = module_stack.isolated("live")
    promote_new(Registry(live.settings.registry_dir()), "xgboost", 5)
    prefix = f"lvb{int(time.time()) % 100000}-"
    users = make_users(300, 70, 43, prefix=prefix, start_ms=START, activity=1.4)
    records = arrivals(simulate(users, 70, 43, start_ms=START), 43, out_of_order=0.05, duplicates=0.01)
    assert len(records) > 20_000
    # Here 70 days of events stream in about 30 s, so a day of event time passes in under half a second: the
    # lateness (5 days: 2 s here) must cover how far the worker's fetches of the three topics drift apart, as a
    # day covers it in real time. Events later than that are late by definition and may be scored differently.
    # The aligner must not release out of order because a topic's first fetch is slow (the default lets an idle
    # partition hold the others for 2 s): such releases are counted and logged, and would change events' rows.
    slack = {
        "CHURNSTREAM_ONLINE_MODEL": "off",
        "CHURNSTREAM_LABEL_LATENESS_S": "432000",
        "CHURNSTREAM_ALIGN_MAX_WAIT_S": "60",
        "CHURNSTREAM_ALIGN_GRACE_S": "1.0",
    }
    live.settings = live.settings.model_copy(update={"label_lateness_s": 432_000})
    with live.worker("live", **slack) as worker:
        produce_records(live.settings, records, rate=1000)  # live: small batches as the events come
        live.wait_consumed(worker=worker)
    backlog = replica(live, "backlog")
    with backlog.worker("backlog", **slack) as worker:  # everything waits in Kafka
        backlog.wait_consumed(worker=worker)
    for run in ("live", "backlog"):
        assert "without waiting for a partition" not in live.worker_log(run)
    a, b = all_rows(live.settings.clickhouse_dsn, prefix), all_rows(backlog.settings.clickhouse_dsn, prefix)
    n_time = sum(r[3] == "time" for r in a)
    differ = set(a) ^ set(b)
    print(
        f"live {len(a)} rows ({n_time} time), backlog {len(b)} rows; differing: {len(differ)}, of which time rows "
        f"{sum(r[3] == 'time' for r in differ)}"
    )
    assert n_time > 1000 and len(a) - n_time > 2 * len(records) * 0.9
    assert a == b, sorted(set(a) ^ set(b))[:5]


def folded(prefix: str, users: int, days: int, seed: int) -> tuple[offline.Accepted, dict[str, UserState], int]:
    """Generated users' accepted events, their states folded by :func:`features.state.apply`, and the latest event
    time."""
    generated = make_users(users, days, seed, prefix=prefix, start_ms=START)
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in simulate(generated, days, seed, start_ms=START))
    states = {u: UserState() for u in accepted}
    for u, events in accepted.items():
        for ev in events:
            apply(states[u], ev)
    return accepted, states, max(s.last_ms for s in states.values())


async def time_path(
    own: StackHandle, states: dict[str, UserState]
) -> tuple[RedisStateStore, ClickHouseSink, Callable[..., Rescorer]]:
    """The states written to the stack's Redis, the real ``predictions`` sink, and a maker of rescorers over both
    (pass ``predictions=``)."""
    store = RedisStateStore.from_url(own.settings.redis_url)
    sink = ClickHouseSink(own.settings.clickhouse_dsn, "predictions", PREDICTION_COLUMNS)
    champions = Champions(own.settings.registry_dir())
    champions.refresh(force=True)
    await store.write_many({u: encode_state(s) for u, s in states.items()})
    make = partial(Rescorer, store.redis, store, Scorer(champions), lookup=time_rows_lookup(sink), batch=100_000)
    return store, sink, make


class WritesThenFails:
    """The real ClickHouse sink, but the worker "dies" right after the insert: before the states are written."""

    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink

    async def write(self, rows: Any, token: str | None = None) -> int:
        await self.sink.write(rows, token)
        raise ConnectionError("killed after the insert")


def test_a_step_that_died_after_its_insert_writes_no_time_row_twice(module_stack: StackHandle) -> None:
    """The in-flight set: a step whose rows reached ClickHouse but whose states did not is done again (the users
    are still due) and must find its rows rather than write them a second time. Counted raw. Without the lookup of
    the in-flight users this fails: every row of the first step is written twice."""
    own = module_stack.isolated("inflight")
    promote_new(Registry(own.settings.registry_dir()), "logreg", 9)
    prefix = f"infl{int(time.time()) % 100000}-"
    accepted, states, clock = folded(prefix, users=40, days=30, seed=44)

    async def run() -> tuple[list[str], int, int]:
        store, sink, make = await time_path(own, states)
        first = make(predictions=WritesThenFails(sink))
        await first.record({0: states}, {0: clock})
        watermark = first.watermark(0)
        with pytest.raises(EffectFailed):
            await first.step(0)
        in_flight = sorted(m.decode() for m in await store.redis.smembers(rescoring_key(0)))
        again = make(predictions=sink)
        await again.restore([0])
        # meanwhile the partition's clock moved on: the step covers more day ends, so its insert is not the same
        # block again (which the insert deduplication would drop) and only the in-flight set can save the day
        await again.record({}, {0: clock + 2 * DAY_MS})
        looked = await again.step(0)
        sink.close()
        await store.close()
        return in_flight, looked, watermark

    in_flight, looked, watermark = asyncio.run(run())
    due_then = sorted(u for u, s in states.items() if due(s, watermark))  # not users who began after it
    assert len(due_then) > 0.8 * len(accepted) and in_flight == due_then and looked == len(accepted)
    client = clickhouse_db.connect(own.settings.clickhouse_dsn)
    try:
        counts = client.query(
            "SELECT user_id, as_of, task, count() FROM predictions WHERE startsWith(user_id, {p:String}) "
            "AND trigger = 'time' GROUP BY user_id, as_of, task",
            parameters={"p": prefix},
        ).result_rows
    finally:
        client.close()
    assert len(counts) > 10 * len(accepted)
    assert {n for *_, n in counts} == {1}, Counter(n for *_, n in counts)


class FailsLeavingItsToken:
    """The real ClickHouse sink, but the insert fails after its token reached the table's deduplication log with
    none of its rows committed, as embedded chDB sometimes does (``bench/dedup_after_failure.py``). The token is
    put there for real: one stand-in row, of a user outside the test's prefix, is inserted under it."""

    def __init__(self, sink: ClickHouseSink, stand_in: str) -> None:
        self.sink, self.stand_in = sink, stand_in

    async def write(self, rows: Any, token: str | None = None) -> int:
        first = list(rows[0])
        first[PREDICTION_COLUMNS.index("user_id")] = self.stand_in
        await self.sink.write([first], token)
        raise ConnectionError("insert failed")


def test_a_step_redone_after_an_insert_that_left_its_token_loses_no_time_row(module_stack: StackHandle) -> None:
    """The redo of a failed step finds none of its rows in ClickHouse and writes them all again: under the failed
    insert's token, ClickHouse would drop them as a duplicate and the rows would be lost for good."""
    own = module_stack.isolated("lefttoken")
    promote_new(Registry(own.settings.registry_dir()), "logreg", 9)
    prefix = f"ltok{time.time_ns() % 10**8}-"
    accepted, states, clock = folded(prefix, users=30, days=20, seed=45)

    async def run() -> int:
        store, sink, make = await time_path(own, states)
        first = make(predictions=FailsLeavingItsToken(sink, "stand-in-" + prefix))
        await first.record({0: states}, {0: clock})
        with pytest.raises(EffectFailed):
            await first.step(0)
        again = make(predictions=sink)
        await again.restore([0])
        looked = await again.step(0)
        sink.close()
        await store.close()
        return looked

    assert asyncio.run(run()) == len(accepted)
    expected = sum(len(due(s, clock - DAY_MS)) for s in states.values())
    client = clickhouse_db.connect(own.settings.clickhouse_dsn)
    try:
        rows = client.query(
            "SELECT count(), uniqExact(user_id, as_of) FROM predictions WHERE startsWith(user_id, {p:String}) "
            "AND trigger = 'time' AND task = 'churn' AND model_kind = 'pretrained'",
            parameters={"p": prefix},
        ).result_rows[0]
    finally:
        client.close()
    assert expected > 5 * len(accepted)
    assert rows == (expected, expected), (rows, expected)  # raw: every due (user, day end) once, none lost
