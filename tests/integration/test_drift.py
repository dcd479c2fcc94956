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
from features import offline
from features.compute import FEATURE_NAMES, vector
from features.schedule import due
from features.state import UserState, apply, encode_state
from features.store import RedisStateStore
from infra import clickhouse_db
from infra import stack as infra_stack
from models import drift, population
from models.champions import Champions
from models.registry import Registry
from simulation.generator import make_users, simulate
from streams.rescore import Rescorer, time_rows_lookup
from streams.scoring import PREDICTION_COLUMNS, Scorer
from streams.sinks import ClickHouseSink
from tests.conftest import StackHandle
from tests.integration.support import promote_new

START = 1_785_000_000_000 // DAY_MS * DAY_MS
SAMPLE = 0.5


def own_clickhouse(stack: StackHandle, name: str) -> StackHandle:
    dsn = infra_stack.clickhouse_beside(stack.settings, f"{name}{time.time_ns() % 10**7}")
    return StackHandle(stack.settings.model_copy(update={"clickhouse_dsn": dsn}), stack.env)


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
