"""Retraining from the ClickHouse history (a ClickHouse of this module's own, its ``events`` table filled with the rows
the worker writes): ``churnstream retrain`` replaces a weak champion, a candidate that fails the guardrails becomes a
challenger in an experiment, a retraining that fails halfway leaves the champion serving, and every one is
recorded."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from core.contracts import Event, decode
from features import offline
from features.store import RedisStateStore
from infra import clickhouse_db
from models.experiments import Experiments
from models.registry import Registry
from models.retrain import Guardrails, retrain, retrainings
from simulation.generator import make_users, simulate
from streams.bronze import BRONZE_COLUMNS, bronze_row
from streams.records import RawRecord
from streams.retrain_schedule import RetrainSchedule
from streams.sinks import ClickHouseSink
from tests.conftest import StackHandle
from tests.integration.support import own_clickhouse, promote_new

START = 1_760_000_000_000


@pytest.fixture(scope="module")
def history(module_stack: StackHandle) -> StackHandle:
    own = own_clickhouse(module_stack.isolated("retrain"), "retrain")
    prefix = f"rt{time.time_ns() % 10**6}-"
    events = simulate(make_users(800, 160, 17, prefix=prefix, start_ms=START), 160, 17, start_ms=START)
    rows = []
    for i, e in enumerate(events):
        ev = decode(e["type"], orjson.dumps(e), None)
        assert isinstance(ev, Event)
        rows.append(bronze_row(ev, RawRecord("page_views", 0, i, None, None, b"")))
    client = clickhouse_db.connect(own.settings.clickhouse_dsn)
    try:
        client.insert("events", rows, column_names=list(BRONZE_COLUMNS))
    finally:
        client.close()
    env = own.env | {"CHURNSTREAM_CLICKHOUSE_DSN": own.settings.clickhouse_dsn}
    return StackHandle(own.settings, env)


def history_of(stack: StackHandle) -> offline.Accepted:
    client = clickhouse_db.connect(stack.settings.clickhouse_dsn)
    try:
        return offline.read_clickhouse(client)
    finally:
        client.close()


def test_retrain_from_clickhouse_replaces_a_weak_champion_and_records_it(history: StackHandle) -> None:
    registry = Registry(history.settings.registry_dir())
    weak = promote_new(registry, "logreg", 3)  # fitted on random features
    out = history.cli("retrain", "--task", "churn", timeout=900)
    assert "churn: finished, champion" in out.stdout, out.stdout
    champion = registry.champion("churn")
    assert champion is not None and champion != weak["churn"]
    assert registry.champion("purchase") == weak["purchase"]  # not retrained
    (entry,) = [r for r in retrainings(registry.root) if r["task"] == "churn"]
    assert entry["status"] == "finished" and entry["decision"] == "champion" and entry["candidate"] == str(champion)
    assert entry["source"].startswith("ClickHouse events") and entry["fingerprint"] and entry["window"]["to_ms"]
    assert entry["holdout"]["auc_diff"]["low"] > 0 and set(entry["metrics"]) == {
        "logreg",
        "svm",
        "random_forest",
        "xgboost",
    }


def test_a_candidate_that_fails_the_guardrails_becomes_a_challenger(history: StackHandle) -> None:
    registry = Registry(history.settings.registry_dir() / "challenger")
    weak = promote_new(registry, "logreg", 4)
    accepted = history_of(history)
    (entry,) = retrain(registry, accepted, "test", Guardrails(auc_margin=1.0, share=0.2), ("purchase",), ("logreg",))
    assert entry["decision"] == "challenger" and "not better by 1.0" in entry["reason"], entry
    assert registry.champion("purchase") == weak["purchase"]  # the champion keeps serving
    exp = Experiments(registry.root).running("purchase")
    assert exp is not None and str(exp.challenger) == entry["candidate"] and exp.share == 0.2
    assert exp.experiment_id == entry["experiment_id"]


def test_a_retraining_that_fails_halfway_leaves_the_champion_serving(history: StackHandle) -> None:
    registry = Registry(history.settings.registry_dir() / "failing")
    weak = promote_new(registry, "logreg", 5)
    accepted = history_of(history)
    # the second model cannot be built: logreg is trained and registered, then the run fails
    (entry,) = retrain(registry, accepted, "test", tasks=("churn",), models=("logreg", "no-such-model"))
    assert entry["status"] == "failed" and "no-such-model" in entry["reason"], entry
    assert registry.champion("churn") == weak["churn"]
    assert len(registry.versions("churn", "logreg")) == 2  # the half-done run's model is registered, not served
    assert Experiments(registry.root).running("churn") is None
    lines = (registry.root / "retrainings.jsonl").read_text().splitlines()
    assert [orjson.loads(line)["status"] for line in lines] == ["started", "failed"]


def test_the_worker_s_schedule_starts_a_retraining_in_a_child_process(history: StackHandle) -> None:
    """Due on its schedule (or when an alert asked), the drift lease holder exports the history (embedded
    ClickHouse: the child cannot open the data path) and starts ``churnstream retrain``; one at a time."""
    models_dir = history.settings.registry_dir() / "scheduled"
    settings = history.settings.model_copy(update={"retrain_every_s": 3600, "models_dir": models_dir})
    env = history.env | {"CHURNSTREAM_MODELS_DIR": str(models_dir)}
    promote_new(Registry(models_dir), "logreg", 6)

    async def run() -> tuple[bool, bool, int, bool]:
        store = RedisStateStore.from_url(settings.redis_url)
        reader = ClickHouseSink(settings.clickhouse_dsn, "events", ())
        schedule = RetrainSchedule(settings, store.redis, reader, env)
        started = await schedule.tick()
        again = await schedule.tick()  # one at a time
        assert schedule.proc is not None
        code = await asyncio.wait_for(schedule.proc.wait(), 900)
        not_due = await schedule.due() is None  # the next is an hour away
        reader.close()
        await store.close()
        return started, again, code, not_due

    started, again, code, not_due = asyncio.run(run())
    log = (settings.dir("logs") / "retrain.log").read_text()[-3000:]
    assert (started, again, code, not_due) == (True, False, 0, True), log
    done = retrainings(models_dir)
    assert {r["task"] for r in done} == {"churn", "purchase"} and all(r["status"] == "finished" for r in done), done
