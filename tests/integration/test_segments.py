"""RFM segments, priority categories and recommendations for streamed users, on the real stack: Kafka, Redis,
embedded ClickHouse (a path of this module's own), the worker and the API in one ``churnstream run`` process.

Generated customers stream in two parts. After the first, the worker cuts the first RFM boundaries from ClickHouse
``events``; the second part moves every partition's watermark across more day ends, so users are segmented at
events and at time rescorings, and new boundaries are cut as days complete. Every figure is checked against the
pure functions on the generated history: each boundary version against the quintiles of the active population
recomputed from the events, each user's latest segment against ``features.rfm`` on the state as of its as-of, and
each user's priority categories against the state folded offline with the same half-life, each user's
recommendations against the job's candidates recomputed from the generated events and the blend of
``models.recommend``. Feedback is counted raw in ClickHouse, and the admin's settings change the next answers."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import httpx
import numpy as np
import orjson
import pytest
import redis

from core.days import DAY_MS, LAPSE_DAYS
from core.keys import RFM_BOUNDARIES, score_key
from features import offline
from features.compute import vector
from features.interest import KEPT, top
from features.rfm import Boundaries, of_vector
from features.state import UserState, apply
from infra import clickhouse_db
from infra.processes import free_port
from models.clusters import Clusters
from models.recommend import ItemModel, category_shares, interactions, rank
from models.recommend_store import current_version
from models.registry import Registry
from models.train import fit_clusters
from simulation.faults import TOPIC_OF, Record
from simulation.generator import make_users, simulate
from streams.produce import produce_records
from streams.segments import SEGMENT_FIELD
from tests.conftest import StackHandle
from tests.integration.support import new_key, own_clickhouse, promote_new

DAYS, SPLIT = 45, 30
START = (int(time.time() * 1000) // DAY_MS - DAYS - 5) * DAY_MS  # ends 5 days before today: no event in the future
HALF_LIFE = 7.0  # not the default: the setting reaches the worker and the API
SETTINGS = {
    "CHURNSTREAM_SEGMENTS_CHECK_S": "1",
    "CHURNSTREAM_CATEGORY_HALF_LIFE_DAYS": str(HALF_LIFE),
    "CHURNSTREAM_DAILY_JOBS_GAP_S": "0",  # the daily jobs after every cut: each is checked
}


def produce(stack: StackHandle, events: list[dict]) -> int:
    """A day of event time at a time, a quarter of a second apart, as a live stream would: in one burst, the
    producer's queues would reorder the topics by more than the worker's lateness (a day: here about 130 events),
    and a day would be complete before all its events are in (test_model_lifecycle.produce_days)."""
    sent = 0
    for day in sorted({e["ts"] // DAY_MS for e in events}):
        part = [e for e in events if e["ts"] // DAY_MS == day]
        records = [Record(TOPIC_OF[e["type"]], e["user_id"].encode(), orjson.dumps(e)) for e in part]
        sent += produce_records(stack.settings, records)
        time.sleep(0.25)
    return sent


def wait_for(what: str, check, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.5)


def recommendations(
    stack: StackHandle, api: httpx.Client, r: redis.Redis, ids: list[str], write: str, admin: str
) -> dict:
    """Ask for every user's recommendations once the job of the latest cut serves, then send feedback and change
    the admin settings, asking again after each change."""
    root = stack.settings.registry_dir() / "recommender"
    cut = lambda: Boundaries.from_json(r.get(RFM_BOUNDARIES)).version.removeprefix("rfm-")  # noqa: E731
    wait_for("the recommender job of the latest cut", lambda: current_version(root) == f"rec-{cut()}")
    out: dict = {"model": ItemModel.load(root / f"rec-{cut()}")}
    out["recs"] = {u: api.get(f"/v1/users/{u}/recommendations", params={"k": 10}).json() for u in ids}
    user = next(u for u in ids if len(out["recs"][u]["items"]) == 10)
    items = [i["item_id"] for i in out["recs"][user]["items"]]
    sent = [
        ("shown", items[0], "f1"),
        ("clicked", items[0], "f2"),
        ("bought", items[0], "f3"),
        ("shown", items[1], "f4"),
    ]
    codes = [
        api.post("/v1/recommendations/feedback", headers={"X-API-Key": write},
                 json={"user_id": user, "item_id": item, "action": action, "feedback_id": fid}).status_code
        for action, item, fid in [*sent, sent[1]]  # the click sent twice (a client's retry)
    ]  # fmt: skip
    out["feedback"] = {"user": user, "sent": sent, "codes": codes}
    out["after_bought"] = api.get(f"/v1/users/{user}/recommendations").json()
    admin_h = {"X-API-Key": admin}
    scores = [i["score"] for i in out["after_bought"]["items"]]
    threshold = round(sorted(scores)[len(scores) // 2], 6)
    out["put"] = api.put("/v1/admin/recommendations", headers=admin_h, json={"min_score": threshold}).json()
    out["threshold"] = (threshold, api.get(f"/v1/users/{user}/recommendations").json())
    api.put("/v1/admin/recommendations", headers=admin_h, json={"min_score": 0, "alpha": 0.0})
    out["content_only"] = api.get(f"/v1/users/{user}/recommendations").json()
    api.put("/v1/admin/recommendations", headers=admin_h, json={"popular_share": 1.0})
    out["holdout"] = api.get(f"/v1/users/{user}/recommendations").json()
    out["forbidden"] = api.put("/v1/admin/recommendations", json={"alpha": 0.5}).status_code  # a read key
    return out


def folded(events: list) -> UserState:
    """The state of all a user's events, in time order, with the module's half-life."""
    state = UserState()
    for ev in events:
        apply(state, ev, half_life_days=HALF_LIFE)
    return state


def expected_cut(accepted: dict[str, list], as_of_ms: int) -> tuple[list[float], list[float], list[float]]:
    """The active population's measures at ``as_of_ms`` from the generated events themselves."""
    recency, frequency, monetary = [], [], []
    for evs in accepted.values():
        seen = [e for e in evs if e.ts_ms <= as_of_ms]
        if not seen or seen[-1].ts_ms <= as_of_ms - LAPSE_DAYS * DAY_MS:
            continue
        buys = [e for e in seen if e.kind == "purchase"]
        recency.append((as_of_ms - seen[-1].ts_ms) / DAY_MS)
        frequency.append(float(len(buys)))
        monetary.append(sum(e.raw.amount for e in buys))
    return recency, frequency, monetary


@pytest.fixture(scope="module")
def streamed(module_stack: StackHandle) -> dict:
    own = own_clickhouse(module_stack.isolated("segments"), "segments")
    stack = StackHandle(own.settings, own.env | {"CHURNSTREAM_CLICKHOUSE_DSN": own.settings.clickhouse_dsn})
    prefix = f"sg{time.time_ns() % 10**6}"
    users = make_users(150, int(DAYS / 0.7), 17, start_ms=START, prefix=prefix)
    events = simulate(users, DAYS, 17, start_ms=START)
    key = new_key(stack, "read")
    port = free_port()
    # behavioural clusters as `churnstream train` leaves them, fitted on the first part's users
    first = offline.accept((e["type"], orjson.dumps(e)) for e in events if e["ts"] < START + SPLIT * DAY_MS)
    out_clusters = fit_clusters(first, Registry(stack.settings.registry_dir()))
    promote_new(Registry(stack.settings.registry_dir()), "logreg", 3)  # champions: scores for demand by category
    r = redis.Redis.from_url(stack.settings.redis_url)
    out: dict = {"events": events, "stack": stack, "clusters": out_clusters}
    with stack.worker("segments", command="run", CHURNSTREAM_API_PORT=str(port), **SETTINGS) as worker:
        worker.wait_http(f"http://127.0.0.1:{port}/healthz", 60, stack.settings.home / "logs" / "segments.log")
        produce(stack, [e for e in events if e["ts"] < START + SPLIT * DAY_MS])
        stack.wait_consumed(worker=worker)
        wait_for("the first RFM cut", lambda: r.exists(RFM_BOUNDARIES))
        produce(stack, [e for e in events if e["ts"] >= START + SPLIT * DAY_MS])
        stack.wait_consumed(worker=worker)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"X-API-Key": key})
        ids = sorted({e["user_id"] for e in events})
        out["api_segments"] = {u: api.get(f"/v1/users/{u}/segment").json() for u in ids}
        out["api_categories"] = {u: api.get(f"/v1/users/{u}/categories", params={"k": KEPT}).json() for u in ids}
        out["unknown"] = api.get(f"/v1/users/{prefix}-nobody/segment").status_code
        out["redis"] = {u: r.hget(score_key(u), SEGMENT_FIELD) for u in ids}
        out |= recommendations(stack, api, r, ids, new_key(stack, "write"), new_key(stack, "admin"))
    r.close()
    client = clickhouse_db.connect(stack.settings.clickhouse_dsn)
    try:
        out["boundaries"] = client.query(
            "SELECT version, toUnixTimestamp64Milli(as_of), users, recency, frequency, monetary FROM rfm_boundaries"
        ).result_rows
        out["rows"] = client.query(
            "SELECT user_id, toUnixTimestamp64Milli(as_of), trigger, segment, rfm_version FROM user_segments"
        ).result_rows
        out["latest"] = client.query("SELECT user_id, segment, toUnixTimestamp64Milli(as_of) FROM user_segments_latest")
        out["demand"] = client.query(
            "SELECT day, toUnixTimestamp64Milli(as_of), category, expected, users FROM category_demand"
        ).result_rows
        out["demand_check"] = client.query(
            "SELECT day, category, expected, realised FROM category_demand_check"
        ).result_rows
        out["purchase_scores"] = client.query(
            "SELECT user_id, toUnixTimestamp64Milli(as_of), score FROM predictions"
            " WHERE task = 'purchase' AND model_kind = 'pretrained'"
        ).result_rows
        out["feedback_rows"] = client.query(
            "SELECT feedback_id, user_id, item_id, action, variant FROM recommendation_feedback"
        ).result_rows
    finally:
        client.close()
    out["latest"] = out["latest"].result_rows
    return out


def test_every_boundary_version_is_the_quintiles_of_the_active_population(streamed: dict) -> None:
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in streamed["events"])
    versions = streamed["boundaries"]
    assert len(versions) >= 2, "one cut after the first part, more as the second part's days completed"
    assert len({v[0] for v in versions}) == len(versions), "a version written twice"
    for version, as_of, users, recency, frequency, monetary in versions:
        expected = Boundaries.fit(*expected_cut(accepted, as_of), version=version, as_of_ms=as_of)
        assert users == expected.users
        for got, want in ((recency, expected.recency), (frequency, expected.frequency), (monetary, expected.monetary)):
            assert np.allclose(got, want, rtol=0, atol=1e-6), (version, got, want)


def test_every_streamed_user_has_the_segment_its_state_and_boundaries_give(streamed: dict) -> None:
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in streamed["events"])
    clusters = Clusters.load_current(streamed["stack"].settings.registry_dir() / "clusters")
    assert clusters is not None and clusters.version == streamed["clusters"]["version"]
    cuts = {v[0]: Boundaries(v[0], v[1], v[2], tuple(v[3]), tuple(v[4]), tuple(v[5])) for v in streamed["boundaries"]}
    segmented, triggers = 0, Counter()
    for user, answer in streamed["api_segments"].items():
        assert answer["segment"] is not None, (user, answer)
        assert orjson.loads(streamed["redis"][user])["segment"] == answer["segment"]
        state = offline.state_at(accepted[user], answer["as_of_ms"])
        want = of_vector(cuts[answer["version"]], vector(state, answer["as_of_ms"]), answer["as_of_ms"], "")
        assert (answer["segment"], answer["r"], answer["f"], answer["m"]) == (want.segment, want.r, want.f, want.m)
        assert answer["cluster"] == clusters.assign_one(vector(state, answer["as_of_ms"]))
        assert answer["clusters_version"] == clusters.version
        segmented, triggers = segmented + 1, triggers + Counter([answer["trigger"]])
    assert segmented == len(accepted) > 100  # every user with an event (some sign up too late to have one)
    assert triggers["time"] > 0 and triggers["event"] > 0, triggers
    assert len({a["cluster"] for a in streamed["api_segments"].values()}) > 1
    assert streamed["unknown"] == 404


def test_user_segments_history_has_each_row_once_and_its_latest_is_served(streamed: dict) -> None:
    rows = streamed["rows"]
    counts = Counter((u, as_of, trigger) for u, as_of, trigger, _, _ in rows)
    assert counts and max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    per_user = defaultdict(set)
    for u, _, trigger, _, _ in rows:
        per_user[u].add(trigger)
    assert len(per_user) == len(streamed["api_segments"])
    assert sum("time" in t for t in per_user.values()) > 0.8 * len(per_user), "users rescored at day ends"
    served = {u: (a["segment"], a["as_of_ms"]) for u, a in streamed["api_segments"].items()}
    assert {u: (s, ms) for u, s, ms in streamed["latest"]} == served


def test_priority_categories_are_those_of_the_state_folded_offline(streamed: dict) -> None:
    """Exact (to the floats' last bits) for users who touched at most KEPT categories. Beyond that, which weak
    category is kept depends on the order events arrive in (features.interest): there the top category and the
    order of the served ones are checked."""
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in streamed["events"])
    exact = 0
    for user, answer in streamed["api_categories"].items():
        state = folded(accepted[user])
        want = top(state.interest, state.interest_ms, state.interest_ms, KEPT, HALF_LIFE)
        got = [(c["category"], c["interest"]) for c in answer["categories"]]
        assert answer["half_life_days"] == HALF_LIFE and answer["as_of_ms"] == state.interest_ms
        assert got and [v for _, v in got] == sorted((v for _, v in got), reverse=True)
        touched = {c for ev in accepted[user] for c in ev.categories}
        if len(touched) <= KEPT:
            assert [n for n, _ in got] == [n for n, _ in want], user
            assert np.allclose([v for _, v in got], [v for _, v in want], rtol=1e-9, atol=1e-6), user
            exact += 1
        else:
            assert got[0][0] == want[0][0], user
    assert exact > 0.3 * len(streamed["api_categories"]), exact


def test_every_streamed_user_gets_the_recommendations_the_job_and_the_blend_give(streamed: dict) -> None:
    """The job's candidates recomputed from the generated events of its 90-day window (the ClickHouse read is
    what is checked: the fit is the same code), blended with each user's final category affinity."""
    from streams.recommend_job import WINDOW_DAYS, build

    model: ItemModel = streamed["model"]
    as_of = int(model.meta["as_of_ms"])
    window = [e for e in streamed["events"] if as_of - WINDOW_DAYS * DAY_MS < e["ts"] <= as_of]
    _, candidates = build(interactions(window), as_of)
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in streamed["events"])
    served = 0
    for user, answer in streamed["recs"].items():
        state = folded(accepted[user])
        c = candidates.get(user)
        cf, bought = (dict(c.items), set(c.bought)) if c else ({}, set())
        want = rank(cf, model.content_scores(category_shares(state, HALF_LIFE)), 0.95, bought, 10)
        assert [(i["item_id"], i["score"]) for i in answer["items"]] == [(i, round(s, 6)) for i, s in want], user
        assert not bought & {i["item_id"] for i in answer["items"]}
        assert answer["variant"] == "hybrid" and answer["model_version"] == model.version
        served += bool(answer["items"])
    assert served == len(streamed["recs"]) > 100


def test_feedback_lands_in_clickhouse_once_and_a_bought_item_is_not_recommended_again(streamed: dict) -> None:
    fb = streamed["feedback"]
    assert fb["codes"] == [202] * 5
    rows = [r for r in streamed["feedback_rows"] if r[1] == fb["user"]]
    assert sorted((fid, item, action) for fid, _, item, action, _ in rows) == sorted(
        (fid, item, action) for action, item, fid in fb["sent"]
    )  # raw rows: the retried click counted once
    bought = fb["sent"][2][1]
    assert bought not in {i["item_id"] for i in streamed["after_bought"]["items"]}


def test_the_admin_settings_change_the_next_answers(streamed: dict) -> None:
    threshold, answer = streamed["threshold"]
    assert streamed["put"]["min_score"] == threshold and answer["min_score"] == threshold
    assert answer["items"] and all(i["score"] >= threshold for i in answer["items"])
    assert len(answer["items"]) < len(streamed["after_bought"]["items"])
    content_only = streamed["content_only"]
    assert content_only["alpha"] == 0.0 and all(i["score"] == i["content"] for i in content_only["items"])
    assert streamed["holdout"]["variant"] == "popularity"
    got = [i["item_id"] for i in streamed["holdout"]["items"]]
    ranked = [i for i, _ in streamed["model"].popular(len(streamed["model"].items))]
    assert len(got) == 10 and [i for i in ranked if i in got] == got  # the most popular, in order, but bought ones
    assert streamed["feedback"]["sent"][2][1] not in got
    assert streamed["forbidden"] == 403


def test_demand_by_category_is_purchase_probability_times_category_share_summed(streamed: dict) -> None:
    """Each cut's ``category_demand`` rows recomputed from the generated events and the raw ``predictions`` rows:
    each active customer's latest purchase score as of the cut times their share of decayed category interest."""
    from streams.demand_job import WINDOW_DAYS

    rows = streamed["demand"]
    assert rows and len({(day, c) for day, _, c, _, _ in rows}) == len(rows), "a (day, category) written twice"
    scores: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for user, as_of, score in streamed["purchase_scores"]:
        scores[user].append((as_of, score))
    weights = {"page_view": 1.0, "cart": 3.0, "purchase": 5.0}
    for as_of in sorted({r[1] for r in rows}):
        expected: dict[str, float] = defaultdict(float)
        users: Counter[str] = Counter()
        for user in {e["user_id"] for e in streamed["events"]}:
            mine = [e for e in streamed["events"] if e["user_id"] == user and e["ts"] <= as_of]
            seen = [(t, s) for t, s in scores[user] if t <= as_of]
            if not mine or mine[-1]["ts"] <= as_of - LAPSE_DAYS * DAY_MS or not seen:
                continue
            p = max(seen)[1]
            interest: dict[str, float] = defaultdict(float)
            for e in mine:
                if e["ts"] <= as_of - WINDOW_DAYS * DAY_MS:
                    continue
                decay = 2 ** (-(as_of - e["ts"]) / (HALF_LIFE * DAY_MS))
                cats = [i["category"] for i in e["items"]] if e["type"] == "purchase" else [e.get("category") or ""]
                for c in cats:
                    if c:
                        interest[c] += weights[e["type"]] * decay
            total = sum(interest.values())
            for c, v in interest.items():
                expected[c] += p * v / total
                users[c] += 1
        got = {c: (x, n) for _, t, c, x, n in rows if t == as_of}
        assert set(got) == set(expected), as_of
        for c, (x, n) in got.items():
            assert n == users[c] and abs(x - expected[c]) < 1e-5, (as_of, c, x, expected[c])
    # what happened: the buyers of the 30 days after each cut, each split across categories by the items they bought
    checked = {(day, c): realised for day, c, _, realised in streamed["demand_check"]}
    assert len(checked) == len(rows)
    for day, as_of in {(r[0], r[1]) for r in rows}:
        items: dict[str, Counter[str]] = defaultdict(Counter)
        for e in streamed["events"]:
            if e["type"] == "purchase" and as_of < e["ts"] <= as_of + 30 * DAY_MS:
                items[e["user_id"]].update(i["category"] for i in e["items"])
        realised: dict[str, float] = defaultdict(float)
        for bought in items.values():
            for c, n in bought.items():
                realised[c] += n / sum(bought.values())
        for (d, c), got in checked.items():
            if d == day:
                assert abs((got or 0.0) - realised.get(c, 0.0)) < 1e-9, (day, c, got, realised.get(c))
    assert any(checked.values())
