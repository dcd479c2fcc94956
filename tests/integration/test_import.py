"""`churnstream import` on the real stack: a CRM export of generated customers (columns named by the CRM, local
times of UTC+5:30 without a zone, no event ids) and a few broken rows goes through the CLI to Kafka, and the worker's
Redis states give the same features as the offline builder on the original events. The reject report names
exactly the broken rows."""

from __future__ import annotations

import csv
import datetime as dt
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import redis

from core.days import DAY_MS
from core.keys import state_key
from features import offline
from features.compute import features
from features.state import decode_state
from simulation.generator import make_users, simulate
from tests.conftest import StackHandle

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


def test_an_imported_crm_export_gives_the_offline_builders_features(module_stack: StackHandle, tmp_path: Path) -> None:
    stack = module_stack.isolated("import")
    prefix = f"im{time.time_ns() % 10**6}"
    events = simulate(make_users(60, int(DAYS / 0.7), 23, start_ms=START, prefix=prefix), DAYS, 23, start_ms=START)
    path = tmp_path / "crm.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for e in events:
            w.writerow(crm_row(e))
        broken = [crm_row(events[0]), crm_row(events[1]), crm_row(events[2])]
        broken[0][1] = "31/02/2026"  # not a time
        broken[2][0] = ""  # no customer
        w.writerows(broken)  # line len(events) + 2 onwards; the second is a repeat of line 3
    out = stack.cli(
        "import", str(path), "--map", MAPPING, "--ts-format", "%Y-%m-%d %H:%M:%S.%f", "--tz", "Asia/Kolkata"
    ).stdout
    assert f"{len(events) + 3:,} rows: {len(events):,} valid, 3 rejected" in out, out
    report = list(csv.DictReader(path.with_name("crm.csv.rejects.csv").read_text().splitlines()))
    n = len(events) + 2
    assert [(int(r["line"]), r["field"], r["reason"]) for r in report] == [
        (n, "ts", "invalid_ts"), (n + 1, "event_id", "duplicate_row"), (n + 2, "user_id", "missing_user_id"),
    ]  # fmt: skip
    with stack.worker("import") as worker:
        stack.wait_consumed(worker=worker)
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in events)
    as_of = offline.latest(accepted)
    expected = dict(zip(as_of, offline.build(accepted, as_of.items()), strict=True))
    r = redis.Redis.from_url(stack.settings.redis_url)
    try:
        blobs = dict(zip(as_of, r.mget([state_key(u) for u in as_of]), strict=True))
    finally:
        r.close()
    assert len(expected) > 40
    for user, blob in blobs.items():
        state = decode_state(blob)
        assert state.last_ms == as_of[user] and state.events == len(accepted[user]), user
        assert features(state, state.last_ms) == expected[user], user
