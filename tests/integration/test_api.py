"""The HTTP API against the real stack: `churnstream run` (worker and API in one process, as embedded chDB
requires), real Kafka, Redis and ClickHouse, real models in the registry. Nothing is mocked."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import orjson
import pytest

from core.tasks import TASKS
from features.compute import FEATURE_NAMES, features
from features.offline import accept, state_at
from infra.processes import free_port
from models.experiments import Experiment
from models.pretrained import MODEL_NAMES
from models.registry import Registry
from simulation.generator import make_users, simulate
from tests.conftest import StackHandle
from tests.integration.support import fit, new_key

START_MS = 1_792_000_000_000


@dataclass
class Api:
    client: httpx.Client
    keys: dict[str, str]
    users: list[str]
    events: list[dict]
    stack: StackHandle
    proc: object

    def get(self, path: str, scope: str | None = "read", **kw: object) -> httpx.Response:
        headers = {"X-API-Key": self.keys[scope]} if scope else {}
        return self.client.get(path, headers=headers, **kw)  # type: ignore[arg-type]

    def post(self, path: str, scope: str | None = "read", **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return self.client.post(path, headers=headers | kw.pop("headers", {}), **kw)  # type: ignore[arg-type,operator]

    def put(self, path: str, scope: str, **kw: object) -> httpx.Response:
        return self.client.put(path, headers={"X-API-Key": self.keys[scope]}, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def api(module_stack: StackHandle) -> Iterator[Api]:
    registry = Registry(module_stack.settings.registry_dir())
    for task in TASKS:
        for i, name in enumerate(MODEL_NAMES):
            ref = registry.save(task, fit(name, i), {"metrics": {"roc_auc": 0.6 + i / 100}})  # type: ignore[arg-type]
            if name == "xgboost":
                registry.promote(ref)
    keys = {scope: new_key(module_stack, scope) for scope in ("read", "write", "admin")}
    prefix = f"api{int(time.time()) % 100000}-"
    users = make_users(60, 20, 5, prefix=prefix, start_ms=START_MS)
    events = simulate(users, 20, 5, start_ms=START_MS)
    port = free_port()
    with module_stack.worker(
        "api", command="run", CHURNSTREAM_API_PORT=str(port), CHURNSTREAM_API_KEY_CACHE_S="0"
    ) as proc:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", 60, module_stack.settings.home / "logs" / "api.log")
        handle = Api(client, keys, sorted({e["user_id"] for e in events}), events, module_stack, proc)
        for i in range(0, len(events), 500):  # events arrive over HTTP, through Kafka, into the worker
            r = handle.post("/v1/events", "write", json=events[i : i + 500])
            assert r.status_code == 202, r.text
        module_stack.wait_consumed(worker=proc)  # type: ignore[arg-type]
        yield handle
        client.close()
    for task in TASKS:  # leave the registry without a champion, as the other tests expect
        (registry.root / task / "champion.json").unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def baseline_champions(api: Api) -> None:
    """Every test starts with xgboost as each task's champion: the property-based test calls the admin endpoints
    with whatever the schema allows, promotions included, and tests run in random order."""
    for task in TASKS:
        for exp in api.get(f"/v1/models/{task}/experiments").json():  # nor any experiment left running
            if not exp["ended_ms"]:
                api.post(f"/v1/models/{task}/experiments/{exp['experiment_id']}/stop", "admin")
        r = api.post(f"/v1/models/{task}/champion", "admin", json={"model": "xgboost"})
        assert r.status_code == 200 and r.json()["champion"] == "xgboost", r.text


def test_events_accepted_over_http_are_scored(api: Api) -> None:
    # the user with the latest event: no day end after it is behind the watermark yet, so no time row is newer
    user = max(api.users, key=lambda u: max(e["ts"] for e in api.events if e["user_id"] == u))
    r = api.get(f"/v1/users/{user}/scores")
    assert r.status_code == 200, r.text
    body = r.json()
    last = max(e["ts"] for e in api.events if e["user_id"] == user)
    for task in TASKS:
        kinds = {s["model_kind"]: s for s in body["scores"][task]}
        assert set(kinds) == {"pretrained", "online"}
        assert kinds["pretrained"]["model"] == "xgboost"
        assert kinds["pretrained"]["as_of_ms"] == last
        assert kinds["pretrained"]["risk"] in ("low", "medium", "high")
        assert (kinds["pretrained"]["trigger"], kinds["pretrained"]["last_event_ms"]) == ("event", last)
        assert kinds["pretrained"]["status"] in ("active", "at_risk")  # scored at an event: never lapsed


def test_features_equal_the_offline_builder(api: Api) -> None:
    accepted = accept((e["type"], orjson.dumps(e)) for e in api.events)
    for user in api.users[:10]:
        r = api.get(f"/v1/users/{user}/features")
        assert r.status_code == 200, r.text
        body = r.json()
        expected = features(state_at(accepted[user], body["as_of_ms"]), body["as_of_ms"])
        assert body["features"] == pytest.approx(expected, abs=1e-9)
    later = api.get(f"/v1/users/{api.users[0]}/features", params={"as_of_ms": body["as_of_ms"] + 10 * 86_400_000})
    assert later.status_code == 200
    early = api.get(f"/v1/users/{api.users[0]}/features", params={"as_of_ms": 0})
    assert early.status_code == 422 and early.json()["detail"][0]["loc"] == ["query", "as_of_ms"]


def test_auth_401_403_and_revocation(api: Api) -> None:
    user = api.users[0]
    assert api.get(f"/v1/users/{user}/scores", scope=None).status_code == 401
    assert api.client.get(f"/v1/users/{user}/scores", headers={"X-API-Key": "cs_nope_nope"}).status_code == 401
    assert api.get(f"/v1/users/{user}/scores", scope="write").status_code == 403
    assert api.post("/v1/events", "read", json=api.events[0]).status_code == 403
    assert api.post("/v1/models/churn/champion", "write", json={"model": "logreg"}).status_code == 403
    assert api.get(f"/v1/users/{user}/scores", scope="admin").status_code == 200  # admin implies read
    doomed = new_key(api.stack, "read")
    assert api.client.get("/v1/models", headers={"X-API-Key": doomed}).status_code == 200
    api.stack.cli("keys", "revoke", doomed)
    assert api.client.get("/v1/models", headers={"X-API-Key": doomed}).status_code == 401
    listed = api.stack.cli("keys", "list").stdout
    secret = doomed.split("_", 2)[2]  # `cs_<id>_<secret>`; the secret is URL-safe base64 and may hold "_"
    assert "test-admin" in listed and secret not in listed  # ids and names, never secrets


def test_404_and_422_name_the_field(api: Api) -> None:
    r = api.get("/v1/users/nobody-at-all/scores")
    assert r.status_code == 404 and "nobody-at-all" in r.json()["detail"]
    assert api.get("/v1/users/nobody-at-all/features").status_code == 404
    r = api.get("/v1/users/bad%20id/scores")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "user_id"]
    good = dict(api.events[0])
    bad_ts = good | {"event_id": "x1", "ts": "yesterday"}
    bad_price = {**good, "type": "cart", "event_id": "x2", "action": "add", "product_id": "p", "category": "c"}
    bad_price |= {"quantity": 1, "price": -5}
    r = api.post("/v1/events", "write", json=[good, bad_ts, bad_price])
    assert r.status_code == 422
    errors = {(tuple(e["loc"]), e["type"]) for e in r.json()["detail"]}
    assert errors == {(("body", 1, "ts"), "invalid_ts"), (("body", 2, "price"), "invalid_amount")}
    assert api.post("/v1/events", "write", content=b"{not json").json()["detail"][0]["type"] == "invalid_json"
    big = [good] * 1001
    assert api.post("/v1/events", "write", json=big).status_code == 413
    r = api.post("/v1/events", "write", content=b"[" + b" " * 2_000_000 + b"]")
    assert r.status_code == 413
    r = api.post("/v1/score", json={"features": {"page_views_7d": 1.0}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "features"]
    r = api.post("/v1/score", json={"user_id": api.users[0], "model": "deep_net"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"]


def test_on_demand_scoring_with_model_choice_and_cost(api: Api) -> None:
    user = api.users[1]
    prices = api.stack.settings.api_prices
    for model in (*MODEL_NAMES, "online", None):
        r = api.post("/v1/score", json={"user_id": user} | ({"model": model} if model else {}))
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["task"] for x in results] == ["churn", "purchase"]
        for x in results:
            expected = model or "xgboost"
            assert x["model"].startswith(expected if expected != "online" else "online:")
            assert x["cost"] == prices[expected]
            assert 0 <= x["score"] <= 1 and x["took_ms"] >= 0
    vector = api.get(f"/v1/users/{user}/features").json()["features"]
    by_vector = api.post("/v1/score", json={"features": vector, "model": "logreg", "tasks": ["churn"]}).json()
    by_user = api.post("/v1/score", json={"user_id": user, "model": "logreg", "tasks": ["churn"]}).json()
    assert by_vector["results"][0]["score"] == pytest.approx(by_user["results"][0]["score"])
    cached = api.get(f"/v1/users/{user}/scores").json()["scores"]["churn"]
    champion = next(s for s in cached if s["model_kind"] == "pretrained")
    # on demand, as of the cached score's as_of (a day end if the stream last rescored the user by time), equals
    # what the stream scored
    query = {"user_id": user, "tasks": ["churn"], "as_of_ms": champion["as_of_ms"]}
    by_champion = api.post("/v1/score", json=query).json()["results"][0]
    assert by_champion["score"] == pytest.approx(champion["score"])


def test_models_list_and_admin_promotion(api: Api) -> None:
    body = api.get("/v1/models").json()
    for task in TASKS:
        names = {m["name"] for m in body[task]["models"]}
        assert set(MODEL_NAMES) <= names and "online:logreg" in names
        assert body[task]["champion"] == "xgboost"
        assert all("cost" in m and "version" in m for m in body[task]["models"])
    r = api.post("/v1/models/churn/champion", "admin", json={"model": "logreg"})
    assert r.status_code == 200 and r.json()["champion"] == "logreg"
    r = api.post("/v1/models/churn/champion", "admin", json={"model": "xgboost", "version": "nope"})
    assert r.status_code == 404
    assert api.post("/v1/models/churn/champion", "admin", json={"model": "xgboost"}).json()["champion"] == "xgboost"


def test_at_risk_export_streams_csv_and_json(api: Api) -> None:
    expected = {}
    for user in api.users:
        for s in api.get(f"/v1/users/{user}/scores").json()["scores"]["churn"]:
            if s["model_kind"] == "pretrained":
                expected[user] = s["score"]
    threshold = float(np.median(list(expected.values())))
    r = api.get("/v1/at-risk", params={"task": "churn", "min_score": threshold, "format": "csv", "limit": 10**6})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = [row for row in csv.DictReader(io.StringIO(r.text)) if row["user_id"] in expected]
    assert {row["user_id"] for row in rows} == {u for u, s in expected.items() if s >= threshold}
    scores = [float(row["score"]) for row in csv.DictReader(io.StringIO(r.text))]
    assert scores == sorted(scores, reverse=True) and min(scores) >= threshold
    every = api.get("/v1/at-risk", params={"task": "churn", "min_score": 0, "limit": 10**7})  # the whole table
    latest = max(int(row["as_of_ms"]) for row in csv.DictReader(io.StringIO(every.text)))
    assert r.headers["x-scores-as-of-ms"] == every.headers["x-scores-as-of-ms"] == str(latest)  # the list's as-of
    j = api.get("/v1/at-risk", params={"task": "churn", "min_score": threshold, "format": "json", "limit": 3})
    assert j.status_code == 200 and len(j.json()) == 3 and j.json()[0]["score"] == scores[0]


def test_batch_score_csv_of_ids_and_of_feature_rows(api: Api) -> None:
    ids = "user_id\n" + "\n".join([*api.users[:5], "nobody-x", "bad id"]) + "\n"
    r = api.post("/v1/batch-score", params={"model": "random_forest", "task": "purchase"}, content=ids.encode())
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["status"] for row in rows] == ["ok"] * 5 + ["unknown_user", "invalid_user_id"]
    assert all(row["model"] == "random_forest" and row["task"] == "purchase" for row in rows)
    single = api.post("/v1/score", json={"user_id": api.users[0], "model": "random_forest", "tasks": ["purchase"]})
    assert float(rows[0]["score"]) == pytest.approx(single.json()["results"][0]["score"])
    vector = api.get(f"/v1/users/{api.users[0]}/features").json()["features"]
    table = ",".join(FEATURE_NAMES) + "\n" + ",".join(str(vector[n]) for n in FEATURE_NAMES) + "\n"
    r = api.post("/v1/batch-score", params={"model": "random_forest", "task": "purchase"}, content=table.encode())
    assert float(next(csv.DictReader(io.StringIO(r.text)))["score"]) == pytest.approx(float(rows[0]["score"]))
    assert api.post("/v1/batch-score", content=b"name\nx\n").status_code == 422


def test_health_readiness_and_metrics(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "kafka": "ok", "redis": "ok", "clickhouse": "ok"}
    assert api.get(f"/v1/users/{api.users[0]}/scores").status_code == 200  # this test's own request, in any order
    text = api.client.get("/metrics").text
    for name in (
        "churnstream_api_request_seconds_bucket",
        "churnstream_events_total",
        "churnstream_consumer_lag",
        "churnstream_scoring_seconds_bucket",
        "churnstream_event_to_score_seconds_bucket",
    ):
        assert name in text, name
    assert 'route="/v1/users/{user_id}/scores"' in text


def test_drift_thresholds_are_set_by_an_admin_and_applied_by_the_worker(api: Api) -> None:
    path = "/v1/admin/drift-thresholds"
    assert api.get(path, "read").status_code == 403
    assert api.put(path, "write", json={"psi_warn": 0.2}).status_code == 403
    wanted = {"psi_warn": 0.15, "psi_alert": 0.4, "adwin_delta": 0.01 + time.time() % 1 / 1000, "adwin_rise": 0.3}
    assert api.put(path, "admin", json=wanted).json() == wanted
    assert api.get(path, "admin").json() == wanted
    refused = ({"psi_warn": 0.5, "psi_alert": 0.3}, "psi_warn"), ({"adwin_delta": 2}, "adwin_delta")
    for bad, field in (*refused, ({"adwin_rise": -0.1}, "adwin_rise")):
        r = api.put(path, "admin", json=bad)
        assert r.status_code == 422 and field in r.text, r.text
    assert api.get(path, "admin").json() == wanted  # a refused change changes nothing
    deadline, applied = time.monotonic() + 30, ""
    while time.monotonic() < deadline:  # the worker in the same process reads them at its next drift tick
        text = api.client.get("/metrics").text
        applied = [line for line in text.splitlines() if line.startswith("churnstream_drift_threshold{")]
        if f'churnstream_drift_threshold{{name="adwin_delta"}} {wanted["adwin_delta"]}' in applied:
            break
        time.sleep(0.5)
    assert f'churnstream_drift_threshold{{name="psi_warn"}} {wanted["psi_warn"]}' in applied, applied
    assert f'churnstream_drift_threshold{{name="adwin_delta"}} {wanted["adwin_delta"]}' in applied, applied
    assert 'churnstream_drift_threshold{name="adwin_rise"} 0.3' in applied, applied
    assert api.get("/v1/alerts").status_code == 200 and isinstance(api.get("/v1/alerts").json(), list)


def test_an_experiment_serves_each_user_their_variant_and_its_promotion_switches_the_champion(api: Api) -> None:
    path = "/v1/models/churn/experiments"
    assert api.post(path, "read", json={"model": "logreg", "share": 0.5}).status_code == 403
    assert api.post(path, "admin", json={"model": "logreg", "share": 1.5}).status_code == 422
    r = api.post(path, "admin", json={"model": "logreg", "share": 0.5, "mode": "served"})
    assert r.status_code == 201, r.text
    exp = Experiment.from_json(r.json())
    assert api.post(path, "admin", json={"model": "svm", "share": 0.2}).status_code == 409  # one at a time
    time.sleep(3)  # CHURNSTREAM_MODEL_RELOAD_S: the worker picks the experiment up
    last = max(e["ts"] for e in api.events)
    tag = f"x{time.time_ns() % 10**6}"
    fresh = [
        {"type": "page_view", "event_id": f"{tag}-{i}", "user_id": f"{tag}-u{i}", "ts": last + i, "page_type": "home"}
        for i in range(40)
    ]
    r = api.post("/v1/events", "write", json=fresh)
    assert r.status_code == 202, r.text
    served: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len(served) < len(fresh) and time.monotonic() < deadline:
        for e in fresh:
            got = api.get(f"/v1/users/{e['user_id']}/scores")
            if e["user_id"] not in served and got.status_code == 200:
                served[e["user_id"]] = {s["model_kind"]: s for s in got.json()["scores"]["churn"]}["pretrained"][
                    "model"
                ]
        time.sleep(0.5)
    want = {u: "logreg" if exp.variant(u) == "challenger" else "xgboost" for u in served}
    assert len(served) == len(fresh) and served == want, "each user is served their variant's score"
    assert 5 < sum(m == "logreg" for m in want.values()) < 35
    report = api.get(f"{path}/{exp.experiment_id}/report")
    assert report.status_code == 200 and report.json()["experiment"]["experiment_id"] == exp.experiment_id
    r = api.post(f"{path}/{exp.experiment_id}/promote", "admin")
    assert r.status_code == 200 and r.json()["outcome"] == "promoted"
    assert api.get("/v1/models").json()["churn"]["champion"] == "logreg"
    assert api.post(f"{path}/{exp.experiment_id}/stop", "admin").status_code == 409  # ended
    listed = api.get(path).json()
    assert listed[0]["experiment_id"] == exp.experiment_id and listed[0]["ended_ms"] > 0


def test_openapi_has_no_5xx_under_property_based_calls(api: Api) -> None:
    """Schemathesis generates requests from the OpenAPI schema (valid and invalid); none may get a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(str(api.client.base_url) + "/openapi.json")
    headers = {"X-API-Key": api.keys["admin"]}
    failures: list[str] = []
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers=headers, timeout=30)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        check()
    assert not failures, "\n".join(failures[:10])
    assert len(statuses) >= 100 and any(s == 422 for s in statuses) and any(s < 300 for s in statuses)
    assert api.proc.running()  # type: ignore[attr-defined]
