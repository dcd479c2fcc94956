"""Security on the real stack: keys hashed at rest, nothing secret in INFO logs, injection strings as user ids
refused by validation or carried verbatim as bound parameters, body size limits."""

from __future__ import annotations

import hashlib
import time
import urllib.parse
import uuid

import httpx
import redis

from core.keys import API_KEYS
from infra import clickhouse_db
from infra.processes import free_port
from streams.produce import produce_events
from tests.conftest import StackHandle
from tests.integration.support import new_key

# refused by the user-id rules (quotes, spaces, semicolons, parentheses, control characters, too long)
REFUSED_IDS = [
    "x' OR '1'='1",
    "1; DROP TABLE events",
    "a) UNION SELECT * FROM system.users --",
    "u\x00",
    "u\n1",
    "{u}",
    "a" * 300,
]
# allowed characters that mean something in SQL or Redis patterns: they must arrive verbatim, as data
ODD_BUT_VALID = ["inj--/*!*/|#~$%&=+:@.x", "inj*", "inj%s"]


def test_keys_logs_injection_and_limits(module_stack: StackHandle) -> None:
    read_key, write_key = new_key(module_stack, "read"), new_key(module_stack, "write")
    # 1. keys are stored as SHA-256 only
    r = redis.Redis.from_url(module_stack.settings.redis_url)
    stored = b" ".join(k + b"=" + v for k, v in r.hgetall(API_KEYS).items())
    for key in (read_key, write_key):
        _key_id, secret = key.split("_", 2)[1:]  # cs_<id>_<secret>: the id names the record, the secret is hashed
        assert secret.encode() not in stored
        assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored

    marker = f"payload-{uuid.uuid4().hex}"
    run = f"sec{int(time.time()) % 100000}-"
    port = free_port()
    with module_stack.worker(
        "security", command="run", CHURNSTREAM_API_PORT=str(port), CHURNSTREAM_LOG_LEVEL="INFO"
    ) as p:
        p.wait_http(f"http://127.0.0.1:{port}/healthz", 60, module_stack.settings.dir("logs") / "security.log")
        c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        read, write = {"X-API-Key": read_key}, {"Authorization": f"Bearer {write_key}"}
        ts = 1_793_000_000_000
        valid = [
            {"type": "page_view", "event_id": f"{run}{i}", "user_id": uid, "ts": ts + i, "page_type": "product",
             "product_id": marker, "session_id": marker}
            for i, uid in enumerate([f"{run}ok", *(f"{run}{u}" for u in ODD_BUT_VALID)])
        ]  # fmt: skip
        assert c.post("/v1/events", headers=write, json=valid).status_code == 202
        # malformed events: a 422 naming the field, and through Kafka to the DLQ
        bad = {"type": "cart", "event_id": marker, "user_id": f"{run}ok", "ts": ts, "action": marker}
        bad |= {"product_id": marker, "category": marker, "quantity": 1, "price": 1.0}
        resp = c.post("/v1/events", headers=write, json=[bad])
        assert resp.status_code == 422 and "action" in resp.text, resp.text
        produce_events(module_stack.settings, [bad])
        # wrong and missing keys
        assert c.get(f"/v1/users/{run}ok/scores", headers={"X-API-Key": f"cs_{marker}"}).status_code == 401
        assert c.get(f"/v1/users/{run}ok/scores").status_code == 401
        # 2. injection strings as user ids: refused with a 4xx naming the field, never a 5xx
        for uid in REFUSED_IDS:
            quoted = urllib.parse.quote(uid, safe="")
            for path in (f"/v1/users/{quoted}/scores", f"/v1/users/{quoted}/features"):
                resp = c.get(path, headers=read)
                assert resp.status_code in (404, 422), (uid, path, resp.status_code)
            resp = c.post("/v1/score", headers=read, json={"user_id": uid})
            assert resp.status_code == 422 and "user_id" in resp.text, (uid, resp.text)
            event = {**valid[0], "user_id": uid, "event_id": f"{run}x"}
            resp = c.post("/v1/events", headers=write, json=[event])
            assert resp.status_code == 422 and "user_id" in resp.text, (uid, resp.text)
        resp = c.get("/v1/at-risk", headers=read, params={"task": "churn' OR 1=1 --", "min_score": 0})
        assert resp.status_code == 422
        # 3. body size limits
        big = b"[" + b" " * (module_stack.settings.api_max_body_bytes + 1) + b"]"
        resp = c.post("/v1/events", headers=write | {"Content-Type": "application/json"}, content=big)
        assert resp.status_code == 413
        module_stack.wait_consumed(worker=p)
        c.close()

    # odd but valid ids were stored verbatim, and read back through a bound parameter
    client = clickhouse_db.connect(module_stack.settings.clickhouse_dsn)
    try:
        stored_ids = {
            row[0]
            for row in client.query(
                "SELECT user_id FROM events WHERE startsWith(user_id, {p:String})", parameters={"p": run}
            ).result_rows
        }
    finally:
        client.close()
    assert stored_ids == {f"{run}ok", *(f"{run}{u}" for u in ODD_BUT_VALID)}
    # 4. nothing secret in the INFO log of the worker and the API
    log = (module_stack.settings.dir("logs") / "security.log").read_text(errors="replace")
    assert " INFO " in log or "[INFO]" in log, log[-2000:]
    for secret in (read_key, write_key, marker):
        assert secret not in log, secret
