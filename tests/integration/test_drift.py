"""Drift on the real stack (Redis and an embedded ClickHouse of this module's own): the rescorer writes its sampled
users' day ends to ``daily_features`` once each, ClickHouse bins them exactly as numpy does, and the PSI report
flags a shifted population and only that one."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from typing import Any

import numpy as np
import orjson

from core.days import DAY_MS
from core.keys import DRIFT_SENDING, DRIFT_THRESHOLDS, WATERMARKS, due_key
from features import offline
from features.compute import FEATURE_NAMES, vector
from features.schedule import due
from features.state import UserState, apply, encode_state
from features.store import RedisStateStore
from infra import clickhouse_db
from models import drift, population
from models.alerts import Thresholds
from models.champions import Champions
from models.registry import Registry
from simulation.generator import make_users, simulate
from streams.drift_watch import DriftWatch
from streams.rescore import Rescorer, time_rows_lookup
from streams.scoring import PREDICTION_COLUMNS, Scorer
from streams.sinks import ClickHouseSink
from tests.conftest import StackHandle
from tests.integration.endstate import read_all
from tests.integration.support import fit, own_clickhouse, promote_new

START = 1_785_000_000_000 // DAY_MS * DAY_MS
SAMPLE = 0.5


def test_the_rescorer_writes_each_sampled_day_end_once_and_clickhouse_bins_it_as_numpy(
    module_stack: StackHandle,
) -> None:
    own = own_clickhouse(module_stack.isolated("drift"), "drift")
    promote_new(Registry(own.settings.registry_dir()), "logreg", 9)
    prefix = f"drift{int(time.time()) % 100000}-"
    generated = make_users(60, 40, 61, prefix=prefix, start_ms=START)
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in simulate(generated, 40, 61, start_ms=START))
    states = {u: UserState() for u in accepted}
    for u, events in accepted.items():
        for ev in events:
            apply(states[u], ev)
    clock = max(s.last_ms for s in states.values())

    async def run() -> int:
        store = RedisStateStore.from_url(own.settings.redis_url)
        predictions = ClickHouseSink(own.settings.clickhouse_dsn, "predictions", PREDICTION_COLUMNS)
        sample = ClickHouseSink(own.settings.clickhouse_dsn, "daily_features", drift.POPULATION_COLUMNS)
        champions = Champions(own.settings.registry_dir())
        champions.refresh(force=True)
        await store.write_many({u: encode_state(s) for u, s in states.items()})
        rescorer = Rescorer(
            store.redis, store, Scorer(champions), predictions, time_rows_lookup(predictions),
            batch=100_000, population=sample, sample=SAMPLE,
        )  # fmt: skip
        await rescorer.record({0: states}, {0: clock})
        watermark = rescorer.watermark(0)
        while await rescorer.step(0):
            pass
        predictions.close()
        sample.close()
        await store.close()
        return watermark

    watermark = asyncio.run(run())
    expected = {  # (user, as_of) -> the features as of that day end, for the sampled users
        (u, point): vector(s, point)
        for u, s in states.items()
        if drift.in_sample(u, SAMPLE)
        for point in due(s, watermark)
    }
    assert 5 < len({u for u, _ in expected}) < len(states) and len(expected) > 200
    client = clickhouse_db.connect(own.settings.clickhouse_dsn)
    try:
        raw = client.query(
            "SELECT user_id, toUnixTimestamp64Milli(as_of), x FROM daily_features"
            " WHERE startsWith(user_id, {p:String})",
            parameters={"p": prefix},
        ).result_rows
        counted = Counter((u, int(a)) for u, a, _ in raw)
        assert counted.keys() == expected.keys() and set(counted.values()) == {1}, "one row per sampled day end, raw"
        assert all(list(x) == expected[(u, int(a))] for u, a, x in raw)

        # binning in ClickHouse equals numpy's, bin by bin, for a profile of the same rows
        day = max(a for _, a in expected) // DAY_MS
        X = np.array([x for (_, a), x in expected.items() if a // DAY_MS == day])
        prof = drift.profile(np.array(list(expected.values())), FEATURE_NAMES)
        got = population.feature_counts(client, dt.date(1970, 1, 1) + dt.timedelta(days=day), prof)
        want = drift.bin_counts(prof, X)
        assert all(got[n].tolist() == want[n].tolist() for n in prof.features), "ClickHouse bins as numpy does"
        assert sum(int(c.sum()) for c in got.values()) == len(X) * len(prof.features)
    finally:
        client.close()


def test_a_shifted_population_is_flagged_and_an_unchanged_one_is_not(module_stack: StackHandle) -> None:
    """Two days of rows written directly: the first drawn as the training rows were, the second with one feature
    moved by one standard deviation and the scores pushed up. Only the moved feature and the score alert."""
    own = own_clickhouse(module_stack, "psi")
    rng = np.random.default_rng(7)
    names = ["a", "b", "c"]
    prof = drift.profile(rng.normal(size=(20_000, 3)), names, scores=rng.uniform(size=20_000))
    same, moved = dt.date(2030, 1, 1), dt.date(2030, 1, 2)
    client = clickhouse_db.connect(own.settings.clickhouse_dsn)
    try:
        for day, shift, power in ((same, 0.0, 1.0), (moved, 1.0, 0.3)):
            as_of = dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=dt.UTC)
            X = rng.normal(size=(4000, 3)) + np.array([shift, 0.0, 0.0])
            rows = [(f"u{i}", as_of, [float(v) for v in x]) for i, x in enumerate(X)]
            client.insert("daily_features", rows, column_names=drift.POPULATION_COLUMNS)
            scores = rng.uniform(size=4000) ** power  # power < 1 pushes the scores up
            pred: dict[str, Any] = dict.fromkeys(PREDICTION_COLUMNS, "")
            preds = []
            for i, s in enumerate(scores):
                pred |= {"user_id": f"u{i}", "event_ts": as_of, "scored_at": as_of, "as_of": as_of, "task": "churn"}
                pred |= {"model_kind": "pretrained", "model": "m", "model_version": "v1", "score": float(s)}
                preds.append([pred[c] if c != "trigger" else "time" for c in PREDICTION_COLUMNS])
            client.insert("predictions", preds, column_names=PREDICTION_COLUMNS)
        levels = {
            day: {d.feature or "score": d.level for d in population.report(client, day, prof, "churn", "m", "v1")}
            for day in (same, moved)
        }
        assert population.latest_day(client) == moved
    finally:
        client.close()
    assert levels[same] == {"score": "ok", "a": "ok", "b": "ok", "c": "ok"}, levels
    assert levels[moved] == {"score": "alert", "a": "alert", "b": "ok", "c": "ok"}, levels


def test_the_daily_drift_job_runs_each_complete_day_once_and_alerts_only_the_shifted_one(
    module_stack: StackHandle,
) -> None:
    """The job on the real Redis, ClickHouse and Kafka: a day is computed only once every partition's rescoring
    passed it, a new champion starts with the days of the live sample so far, thresholds set in Redis apply at the
    next tick, a day redone writes no row twice (raw counts) and sends no alert twice, and only the day whose
    population moved raises alerts."""
    own = own_clickhouse(module_stack.isolated("driftjob"), "driftjob")
    rng = np.random.default_rng(11)
    width = len(FEATURE_NAMES)
    train = rng.normal(size=(20_000, width))
    registry = Registry(own.settings.registry_dir())
    promote_new(registry, "logreg", 3)
    ref = registry.save("churn", fit("logreg", 3), {"drift": drift.profile(train, FEATURE_NAMES).to_json()})  # type: ignore[arg-type]
    registry.promote(ref)  # the purchase champion has no profile: the job skips it
    days = [dt.date(2031, 3, d) for d in (1, 2, 3, 4)]
    client = clickhouse_db.connect(own.settings.clickhouse_dsn)
    for day in days:
        shift = np.zeros(width)
        shift[FEATURE_NAMES.index("page_views_7d")] = 1.0 if day == days[-1] else 0.0
        as_of = dt.datetime.combine(day, dt.time(23, 59, 59, 999000), tzinfo=dt.UTC)  # the sample of that day end
        X = rng.normal(size=(3000, width)) + shift
        client.insert("daily_features", [(f"j{i}", as_of, list(map(float, x))) for i, x in enumerate(X)],
                      column_names=drift.POPULATION_COLUMNS)  # fmt: skip
    grid = {d: (d.toordinal() - dt.date(1970, 1, 1).toordinal() + 1) * DAY_MS - 1 for d in days}  # day ends

    async def run() -> list[int]:
        from aiokafka import AIOKafkaProducer

        store = RedisStateStore.from_url(own.settings.redis_url)
        producer = AIOKafkaProducer(bootstrap_servers=own.settings.kafka_bootstrap)
        await producer.start()
        champions = Champions(own.settings.registry_dir())
        champions.refresh(force=True)
        watch = DriftWatch.from_settings(
            own.settings, store.redis, champions, lambda k, v: producer.send(own.settings.topic_alerts, v, key=k)
        )
        r = store.redis
        started_ms = int(time.time() * 1000)
        lateness = int(own.settings.label_lateness_s * 1000)
        # every partition has passed day 4, but partition 1 still has a user due at day 3's end, and partition 3
        # has applied no event yet
        passed = grid[days[3]] + lateness
        await r.zadd(WATERMARKS, {str(p): passed for p in range(own.settings.partitions) if p != 3})
        await r.zadd(due_key(1), {"late-user": grid[days[2]]})
        assert await watch.tick() == 0  # partition 3 may still bring users of any day
        await r.zadd(WATERMARKS, {"3": passed})
        runs = [await watch.tick()]  # complete through day 2: a new champion starts 30 days back (at day 1 here)
        await r.hset(DRIFT_THRESHOLDS, mapping=Thresholds(psi_warn=0.1, psi_alert=50.0).to_fields())
        await r.zrem(due_key(1), "late-user")
        runs.append(await watch.tick())  # days 3 and 4, with the thresholds just set
        runs.append(await watch.tick())  # nothing new
        profile = watch.profile(ref)
        assert profile is not None
        # a job that died after sending day 4's alerts, before its mark: redone, it reads the topic back
        await r.hset(DRIFT_SENDING, str(ref), f"{days[3]}|{started_ms}")
        await watch.run_day(ref, profile, days[3])
        watch.close()
        await producer.stop()
        await store.close()
        return runs

    try:
        assert asyncio.run(run()) == [2, 2, 0]
        rows = client.query(
            "SELECT day, feature, psi, level FROM drift WHERE model = {m:String} AND version = {v:String}",
            parameters={"m": ref.model, "v": ref.version},
        ).result_rows
        alerts = client.query("SELECT alert_id, feature, level, threshold, statistic FROM alerts").result_rows
    finally:
        client.close()
    per_day = Counter(d for d, *_ in rows)
    assert per_day == dict.fromkeys(days, width), "each complete day once, raw"
    moved = {f: lvl for d, f, _, lvl in rows if d == days[3] and lvl not in ("ok", "trend")}
    assert moved == {"page_views_7d": "warn"}, moved  # psi_alert was raised to 50: the shift only warns
    assert all(lvl in ("ok", "trend") for d, _, _, lvl in rows if d != days[3])
    assert [(f, lvl, t, s) for _, f, lvl, t, s in alerts] == [("page_views_7d", "warn", 0.1, "psi")], "one alert, raw"
    sent = [m for batch in read_all(own.settings, [own.settings.topic_alerts]) for m in batch if m.error() is None]
    assert [m.key().decode() for m in sent] == [alerts[0][0]], "sent once, also by a job redone after a crash"
    assert orjson.loads(sent[0].value())["feature"] == "page_views_7d"
