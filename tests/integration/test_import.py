"""`churnstream import` on the real stack: a CRM export of generated customers (columns named by the CRM, local
times of UTC+5:30 without a zone, no event ids) and a few broken rows goes through the CLI to Kafka, and the worker's
Redis states give the same features as the offline builder on the original events. The reject report names
exactly the broken rows. Importing the file a second time sends nothing and changes no state."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import orjson
import redis

from core.days import DAY_MS
from core.keys import state_key
from features import offline
from features.compute import features
from features.state import decode_state
from serving.app import create_app
from simulation.generator import make_users, simulate
from tests.conftest import StackHandle
from tests.integration.support import new_key, records_in_input_topics, served

DAYS = 40
START = (int(time.time() * 1000) // DAY_MS - DAYS - 3) * DAY_MS
ZONE = ZoneInfo("Asia/Kolkata")  # UTC+5:30, no daylight saving: a DST fold makes a local time ambiguous
COLUMNS = ["client_id", "created_at", "kind", "session", "page", "product", "category", "action", "quantity", "price",
           "order", "amount", "currency", "items"]  # fmt: skip
FIELDS = ["user_id", "ts", "type", "session_id", "page_type", "product_id", "category", "action", "quantity", "price",
          "order_id", "amount", "currency", "items"]  # fmt: skip
MAPPING = ",".join(f"{f}={c}" for f, c in zip(FIELDS, COLUMNS, strict=True) if f != c)


def local(ms: int) -> str:
    """Local wall-clock time, to the millisecond, without a zone: what a CRM export often holds."""
    return dt.datetime.fromtimestamp(ms / 1000, ZONE).strftime("%Y-%m-%d %H:%M:%S.%f")


def crm_row(e: dict) -> list[str]:
    values = {**e, "ts": local(e["ts"]), "items": orjson.dumps(e["items"]).decode() if "items" in e else ""}
    return ["" if values.get(f) is None else str(values.get(f, "")) for f in FIELDS]


def write_crm_export(path: Path, events: list[dict]) -> None:
    """The events as the CRM exports them, then 3 broken rows (line len(events) + 2 onwards): a time that is not
    one, a repeat of line 3, a row without a customer."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for e in events:
            w.writerow(crm_row(e))
        broken = [crm_row(events[0]), crm_row(events[1]), crm_row(events[2])]
        broken[0][1] = "31/02/2026"  # not a time
        broken[2][0] = ""  # no customer
        w.writerows(broken)


def expected_report(events: list[dict]) -> list[tuple[int, str, str]]:
    n = len(events) + 2
    return [(n, "ts", "invalid_ts"), (n + 1, "event_id", "duplicate_row"), (n + 2, "user_id", "missing_user_id")]


def assert_features_equal_offline(stack: StackHandle, events: list[dict]) -> dict[str, bytes]:
    """Every user's Redis state gives the offline builder's features on the original events; returns the states."""
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in events)
    as_of = offline.latest(accepted)
    expected = dict(zip(as_of, offline.build(accepted, as_of.items()), strict=True))
    blobs = states(stack, list(as_of))
    assert len(expected) > 40
    for user, blob in blobs.items():
        state = decode_state(blob)
        assert state.last_ms == as_of[user] and state.events == len(accepted[user]), user
        assert features(state, state.last_ms) == expected[user], user
    return blobs


def states(stack: StackHandle, users: list[str]) -> dict[str, bytes]:
    r = redis.Redis.from_url(stack.settings.redis_url)
    try:
        return dict(zip(users, r.mget([state_key(u) for u in users]), strict=True))
    finally:
        r.close()


def test_an_imported_crm_export_gives_the_offline_builders_features(module_stack: StackHandle, tmp_path: Path) -> None:
    stack = module_stack.isolated("import")
    prefix = f"im{time.time_ns() % 10**6}"
    events = simulate(make_users(60, int(DAYS / 0.7), 23, start_ms=START, prefix=prefix), DAYS, 23, start_ms=START)
    path = tmp_path / "crm.csv"
    write_crm_export(path, events)
    out = stack.cli(
        "import", str(path), "--map", MAPPING, "--ts-format", "%Y-%m-%d %H:%M:%S.%f", "--tz", "Asia/Kolkata"
    ).stdout
    assert f"{len(events) + 3:,} rows: {len(events):,} valid, 3 rejected" in out, out
    report = list(csv.DictReader(path.with_name("crm.csv.rejects.csv").read_text().splitlines()))
    assert [(int(r["line"]), r["field"], r["reason"]) for r in report] == expected_report(events)
    with stack.worker("import") as worker:
        stack.wait_consumed(worker=worker)
    blobs = assert_features_equal_offline(stack, events)

    # a second import of the same file: nothing is sent, no state changes, ClickHouse gets no event
    produced = records_in_input_topics(stack)
    again = stack.cli(
        "import", str(path), "--map", MAPPING, "--ts-format", "%Y-%m-%d %H:%M:%S.%f", "--tz", "Asia/Kolkata"
    ).stdout
    assert f"{len(events):,} already imported, 0 new" in again, again
    assert records_in_input_topics(stack) == produced
    with stack.worker("import-again") as worker:
        stack.wait_consumed(worker=worker)
    assert states(stack, list(blobs)) == blobs


@contextlib.contextmanager
def api(stack: StackHandle) -> Iterator[httpx.Client]:
    """The API in a thread of this process, with a write key."""
    headers = {"X-API-Key": new_key(stack, "write")}
    with (
        served(create_app(stack.settings)) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client,
    ):
        yield client


def import_through_api(client: httpx.Client, path: Path) -> dict:
    form = {"map": MAPPING, "ts_format": "%Y-%m-%d %H:%M:%S.%f", "tz": "Asia/Kolkata"}
    with open(path, "rb") as f:
        created = client.post("/v1/imports", files={"file": (path.name, f, "text/csv")}, data=form)
    assert created.status_code == 202, created.text
    job = created.json()["job_id"]
    deadline = time.monotonic() + 120
    while (status := client.get(f"/v1/imports/{job}").json())["phase"] not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["phase"] == "done", status
    rejects = client.get(f"/v1/imports/{job}/rejects")
    status["report"] = [(int(r["line"]), r["field"], r["reason"]) for r in csv.DictReader(rejects.text.splitlines())]
    return status


def test_an_import_through_the_api_is_the_same_import_and_twice_changes_nothing(
    module_stack: StackHandle, tmp_path: Path
) -> None:
    stack = module_stack.isolated("apiimport")
    prefix = f"ia{time.time_ns() % 10**6}"
    events = simulate(make_users(60, int(DAYS / 0.7), 29, start_ms=START, prefix=prefix), DAYS, 29, start_ms=START)
    path = tmp_path / "export.csv"
    write_crm_export(path, events)
    with api(stack) as client:
        first = import_through_api(client, path)
        counts = (first["rows"], first["valid"], first["rejected"], first["new"], first["sent"])
        assert counts == (len(events) + 3, len(events), 3, len(events), len(events)), first
        assert first["report"] == expected_report(events)
        with stack.worker("apiimport") as worker:
            stack.wait_consumed(worker=worker)
        blobs = assert_features_equal_offline(stack, events)
        produced = records_in_input_topics(stack)
        again = import_through_api(client, path)
        assert (again["already_imported"], again["new"], again["sent"]) == (len(events), 0, 0), again
        assert records_in_input_topics(stack) == produced
        bad = client.post("/v1/imports", files={"file": ("x.csv", b"a\n1\n", "text/csv")}, data={"tz": "Mars/Base"})
        assert bad.status_code == 422 and "tz" in bad.text, bad.text
        assert client.get("/v1/imports/0123456789abcdef").status_code == 404
    assert states(stack, list(blobs)) == blobs
