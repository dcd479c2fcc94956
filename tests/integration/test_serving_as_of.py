"""Serving scores as of a time, on the real stack: the API served by uvicorn over loopback (in a thread of this
process, which then holds the embedded chDB path: one process per path), real Redis and the session's ClickHouse.
The test writes what the worker would write: users' states and score cache entries through the state store, and
``predictions`` rows (time-triggered ones included) into ClickHouse, whose materialized views fill
``latest_scores`` and ``user_scores_daily``. Nothing is mocked."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from core.contracts import Event
from core.days import DAY_MS, day_end
from core.tasks import TASKS
from features.compute import FEATURE_NAMES, features
from features.offline import state_at
from features.state import encode_state
from features.store import RedisStateStore
from models.pretrained import create
from models.registry import Registry
from serving.app import create_app
from serving.services import Services
from tests.conftest import StackHandle
from tests.integration.endstate import UNMERGED
from tests.integration.support import new_key, served

DAYS_SINCE = FEATURE_NAMES.index("days_since_last_event")
# far after any other module's rows in the shared ClickHouse, so this module's rows hold the latest as-of
BASE_DAY = 1_900_000_000_000 // DAY_MS  # 2030-03-17
PREDICTION_COLUMNS = (
    "user_id", "task", "model_kind", "as_of", "event_id", "trigger", "event_ts", "scored_at", "model",
    "model_version", "score",
)  # fmt: skip


@dataclass
class Api:
    client: httpx.Client
    headers: dict[str, str]
    services: Services
    prefix: str
    champions: dict[str, Any]

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, headers=self.headers, params=params)


def champion_on_silence(seed: int) -> Any:
    """A champion that reads silence: its score rises with ``days_since_last_event`` (above 5 days: high)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, len(FEATURE_NAMES)))
    X[:, DAYS_SINCE] = rng.uniform(0, 30, 600)
    return create("xgboost", seed).fit(X, (X[:, DAYS_SINCE] > 5).astype(np.int8))


def ts(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


def prediction(user: str, task: str, as_of: int, score: float, last_event: int, event_id: str = "") -> list[Any]:
    """A ``predictions`` row as the worker writes it: an event row (event_id set, event_ts = as_of) or a time row
    (no event, event_ts = the user's latest event at as_of)."""
    trigger = "event" if event_id else "time"
    return [user, task, "pretrained", ts(as_of), event_id, trigger, ts(last_event), ts(as_of + 1), "xgboost", "v1",
            score]  # fmt: skip


def cache_entry(score: float, as_of: int, trigger: str | None = None, last_event: int | None = None) -> bytes:
    entry = {"score": score, "model": "xgboost", "version": "v1", "as_of_ms": as_of}
    if trigger is not None:  # entries written before scores followed time have neither field
        entry |= {"trigger": trigger, "last_event_ms": last_event}
    return orjson.dumps(entry)


@pytest.fixture(scope="module")
def api(module_stack: StackHandle) -> Iterator[Api]:
    settings = module_stack.settings
    registry = Registry(settings.registry_dir())
    champions = {}
    for i, task in enumerate(TASKS):
        ref = registry.save(task, champion_on_silence(i), {"metrics": {"roc_auc": 0.7}})  # type: ignore[arg-type]
        registry.promote(ref)
        champions[task] = registry.load(ref)
    headers = {"X-API-Key": new_key(module_stack, "read")}
    services = Services.create(settings)
    settings_sql = ", ".join(f"{k} = {v}" for k, v in UNMERGED.items())
    services.clickhouse().command(f"ALTER TABLE user_scores_daily MODIFY SETTING {settings_sql}")  # as stop_merges
    with (
        served(create_app(settings, services)) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        yield Api(client, headers, services, f"asof{time.time_ns() % 10**7}-", champions)


def write_users(api: Api, users: dict[str, tuple[list[int], dict[str, bytes]]]) -> None:
    """Each user's state (from events at the given times) and score cache entries, as the worker writes them."""
    states, scores = {}, {}
    for user, (times, cache) in users.items():
        events = [Event("page_view", f"{user}-{i}", user, t) for i, t in enumerate(times)]
        states[user] = encode_state(state_at(events, max(times)))
        scores[user] = cache

    async def write() -> None:
        store = RedisStateStore.from_url(api.services.settings.redis_url)
        try:
            assert await store.write_many(states, scores) == set()
        finally:
            await store.close()

    asyncio.run(write())


def insert(api: Api, rows: list[list[Any]]) -> None:
    api.services.clickhouse().insert("predictions", rows, column_names=list(PREDICTION_COLUMNS))


def test_scores_say_their_as_of_trigger_and_status(api: Api) -> None:
    last = BASE_DAY * DAY_MS + 3_600_000
    lapse_row = day_end(BASE_DAY + 60)  # the first day end 60 days after the last event
    u = {name: api.prefix + name for name in ("lapsed", "risk", "active", "old")}
    write_users(
        api,
        {
            u["lapsed"]: ([last], {"churn:pretrained": cache_entry(0.1, lapse_row, "time", last),
                                   "purchase:pretrained": cache_entry(0.1, lapse_row, "time", last)}),
            u["risk"]: ([last], {"churn:pretrained": cache_entry(0.7, last, "event", last),
                                 "purchase:pretrained": cache_entry(0.1, last, "event", last)}),
            u["active"]: ([last], {"churn:pretrained": cache_entry(0.69, lapse_row - DAY_MS, "time", last)}),
            u["old"]: ([last], {"churn:pretrained": cache_entry(0.9, last)}),
        },
    )  # fmt: skip
    got = {}
    for name, user in u.items():
        r = api.get(f"/v1/users/{user}/scores")
        assert r.status_code == 200, r.text
        got[name] = {(t, s["trigger"], s["as_of_ms"], s["last_event_ms"], s["status"]) for t in TASKS
                     for s in r.json()["scores"][t]}  # fmt: skip
    assert got == {
        "lapsed": {("churn", "time", lapse_row, last, "lapsed"), ("purchase", "time", lapse_row, last, "lapsed")},
        "risk": {("churn", "event", last, last, "at_risk"), ("purchase", "event", last, last, "at_risk")},
        "active": {("churn", "time", lapse_row - DAY_MS, last, "active")},
        "old": {("churn", "event", last, last, "at_risk")},
    }
    assert (
        api.get(f"/v1/users/{u['lapsed']}/scores").json()["scores"]["churn"][0]["as_of"] == "2030-05-16T23:59:59.999Z"
    )


def test_as_of_now_scores_the_state_at_the_wall_clock(api: Api) -> None:
    user = api.prefix + "now"
    last = int(time.time() * 1000) - 10 * DAY_MS  # quiet for ten days
    write_users(api, {user: ([last - 3 * DAY_MS, last], {"churn:pretrained": cache_entry(0.01, last, "event", last)})})
    before = int(time.time() * 1000)
    r = api.get(f"/v1/users/{user}/scores", as_of="now")
    after = int(time.time() * 1000)
    assert r.status_code == 200, r.text
    state = state_at([Event("page_view", "a", user, last - 3 * DAY_MS), Event("page_view", "b", user, last)], last)
    for task in TASKS:
        (s,) = r.json()["scores"][task]
        assert (s["trigger"], s["model_kind"], s["last_event_ms"]) == ("on_demand", "pretrained", last)
        assert before <= s["as_of_ms"] <= after
        f = features(state, s["as_of_ms"])
        assert f["days_since_last_event"] == pytest.approx(10, abs=0.01)  # silence grew since the last event
        assert features(state, last)["days_since_last_event"] == 0
        x = np.array([[f[n] for n in FEATURE_NAMES]])
        assert s["score"] == pytest.approx(float(api.champions[task].predict_proba_many(x)[0]), abs=1e-9)
        assert s["score"] > 0.9 and s["status"] == "at_risk"  # the cached score (0.01, at the event) said active
    cached = api.get(f"/v1/users/{user}/scores").json()["scores"]["churn"][0]
    assert (cached["trigger"], cached["status"]) == ("event", "active")
    gone = api.prefix + "gone"  # quiet for 61 days: lapsed as of now, whatever the last cached score said
    quiet = int(time.time() * 1000) - 61 * DAY_MS
    write_users(api, {gone: ([quiet], {"churn:pretrained": cache_entry(0.01, quiet, "event", quiet)})})
    on_demand = api.get(f"/v1/users/{gone}/scores", as_of="now").json()["scores"]
    assert {(t, s["trigger"], s["status"]) for t in TASKS for s in on_demand[t]} == {
        ("churn", "on_demand", "lapsed"),
        ("purchase", "on_demand", "lapsed"),
    }


def test_bad_as_of_is_a_422_naming_the_field(api: Api) -> None:
    user = api.prefix + "risk"
    for value in ("yesterday", "NOW", ""):
        r = api.get(f"/v1/users/{user}/scores", as_of=value)
        assert r.status_code == 422, (value, r.text)
        assert r.json()["detail"][0]["loc"] == ["query", "as_of"]
    assert api.get("/v1/users/nobody-asof/scores", as_of="now").status_code == 404


def test_at_risk_ranks_by_the_latest_as_of_and_says_the_lists_as_of(api: Api) -> None:
    p = api.prefix + "rank-"
    last = BASE_DAY * DAY_MS + 1000
    scored = {  # user: (as_of, latest event, event id or "" for a time row, churn, purchase), both tasks at once
        "a": [(last, last, "ea1", 0.95, 0.6), (day_end(BASE_DAY + 1), last, "", 0.4, 0.1)],  # the later as-of counts
        "b": [(last, last, "eb1", 0.2, 0.7), (day_end(BASE_DAY + 60), last, "", 0.9, 0.3)],  # its lapse row
        "c": [(last + 5, last + 5, "ec1", 0.8, 0.2)],
        "d": [(last, last, "ed1", 0.5, 0.4)],
    }
    insert(api, [prediction(p + u, task, as_of, score, latest, event)
                 for u, rows in scored.items() for as_of, latest, event, *scores in rows
                 for task, score in zip(TASKS, scores, strict=True)])  # fmt: skip
    insert(api, [prediction(p + "a", "churn", last - 1, 0.99, last - 1, "ea0")])  # written last, but older
    r = api.get("/v1/at-risk", task="churn", min_score=0, limit=10**6)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    mine = [row for row in csv.DictReader(io.StringIO(r.text)) if row["user_id"].startswith(p)]
    assert [(row["user_id"][-1], float(row["score"]), row["trigger"], row["status"]) for row in mine] == [
        ("b", 0.9, "time", "lapsed"),
        ("c", 0.8, "event", "at_risk"),
        ("d", 0.5, "event", "active"),
        ("a", 0.4, "time", "active"),
    ]  # raw rows: one per user, in score order
    assert mine[0]["as_of"] == "2030-05-16T23:59:59.999Z" and mine[0]["last_event_ms"] == str(last)
    assert r.headers["x-scores-as-of"] == "2030-05-16T23:59:59.999Z"  # the latest as-of of the list
    assert r.headers["x-scores-as-of-ms"] == str(day_end(BASE_DAY + 60))
    j = api.get("/v1/at-risk", task="purchase", min_score=0, limit=10**6, format="json")
    assert j.headers["x-scores-as-of"] == r.headers["x-scores-as-of"]
    by_user = {row["user_id"][-1]: row for row in j.json() if row["user_id"].startswith(p)}
    assert [(u, row["score"], row["status"]) for u, row in by_user.items()] == [
        ("d", 0.4, "active"),
        ("b", 0.3, "lapsed"),
        ("c", 0.2, "at_risk"),  # by the user's churn score, 0.8
        ("a", 0.1, "active"),
    ]


def test_history_by_day(api: Api) -> None:
    user = api.prefix + "hist"
    first = BASE_DAY * DAY_MS + 1000
    rows = [
        prediction(user, "churn", first, 0.2, first, "h1"),
        prediction(user, "churn", first + 5000, 0.3, first + 5000, "h2"),  # the day's latest
        prediction(user, "churn", day_end(BASE_DAY), 0.35, first + 5000),  # the time rescoring at the day's end
        prediction(user, "churn", day_end(BASE_DAY + 1), 0.5, first + 5000),
        prediction(user, "churn", day_end(BASE_DAY + 2), 0.75, first + 5000),
        prediction(user, "churn", day_end(BASE_DAY + 60), 0.9, first + 5000),  # lapse row
        prediction(user, "purchase", day_end(BASE_DAY + 1), 0.05, first + 5000),
    ]
    for row in rows:  # one insert each, as the worker's batches write them: a day's rows meet only at read or merge
        insert(api, [row])
    r = api.get(f"/v1/users/{user}/history", task="churn")
    assert r.status_code == 200, r.text
    days = [(d["day"], d["score"], d["trigger"], d["status"]) for d in r.json()["days"]]
    assert days == [
        ("2030-03-17", 0.35, "time", "active"),
        ("2030-03-18", 0.5, "time", "active"),
        ("2030-03-19", 0.75, "time", "at_risk"),
        ("2030-05-16", 0.9, "time", "lapsed"),
    ]  # one row per day: the day's latest score
    assert {d["last_event_ms"] for d in r.json()["days"]} == {first + 5000}
    r = api.get(f"/v1/users/{user}/history", task="purchase", since="2030-03-18", until="2030-03-18")
    assert [(d["day"], d["score"], d["status"]) for d in r.json()["days"]] == [("2030-03-18", 0.05, "active")]
    assert api.get(f"/v1/users/{user}/history", since="2030-03-20", until="2030-03-21").json()["days"] == []
    assert api.get(f"/v1/users/{user}/history", since="2030-03-20", until="2030-03-19").status_code == 422
    for since, until in (("0001-01-01", "9999-12-31"), ("2200-01-01", "9999-12-31"), ("0001-01-01", "1900-01-01")):
        r = api.get(f"/v1/users/{user}/history", since=since, until=until)  # beyond ClickHouse's Date range
        assert r.status_code == 200 and len(r.json()["days"]) == (4 if since < "2030" < until else 0), (since, r.text)
    assert api.get("/v1/users/nobody-asof/history").status_code == 404
