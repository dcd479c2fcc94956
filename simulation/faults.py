"""The records a broker would see for generated events: some delayed (out of order), some sent twice (producer
retries), and some malformed, one of each dead-letter reason in turn.

>>> events = [{"type": "page_view", "event_id": "e1", "user_id": "u", "ts": 5, "session_id": "s"}]
>>> [(r.topic, r.malformed) for r in arrivals(events, duplicates=1.0, malformed=1.0, now_ms=10)]
[('page_views', ''), ('page_views', ''), ('page_views', 'invalid_json')]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from core.days import DAY_MS

TOPIC_OF = {"page_view": "page_views", "cart": "cart_events", "purchase": "purchases"}


@dataclass(frozen=True)
class Record:
    """One record as the broker sees it."""

    topic: str
    key: bytes
    value: bytes
    malformed: str = ""  # the DLQ reason this record was built to trigger, if any


MALFORMED_KINDS = (
    "invalid_json",
    "invalid_type",
    "missing_user_id",
    "invalid_user_id",
    "missing_ts",
    "invalid_ts",
    "ts_in_future",
    "invalid_amount",
    "invalid_quantity",
    "unknown_action",
    "payload_too_large",
    "too_late",
)


def malformed_record(kind: str, template: dict, now_ms: int) -> Record:
    """A record that the worker must send to the DLQ with reason ``kind``."""
    e = dict(template)
    e["event_id"] = f"bad-{kind}-{template['event_id']}"
    topic = TOPIC_OF[e["type"]]
    if kind == "invalid_json":
        return Record(topic, e["user_id"].encode(), b'{"event_id": "x", "user_id": ', kind)
    if kind == "invalid_type":
        e["user_id"] = 12345
    elif kind == "missing_user_id":
        e["user_id"] = ""
    elif kind == "invalid_user_id":
        e["user_id"] = "u" * 300
    elif kind == "missing_ts":
        del e["ts"]
    elif kind == "invalid_ts":
        e["ts"] = "yesterday at noon"
    elif kind == "ts_in_future":
        e["ts"] = now_ms + 3 * DAY_MS
    elif kind == "too_late":  # valid, but 70 days older than the event just sent for this user
        e["ts"] = max(0, template["ts"] - 70 * DAY_MS)
    elif kind == "payload_too_large":
        e["padding"] = "x" * (65 * 1024)
    elif kind in ("invalid_amount", "invalid_quantity", "unknown_action"):
        topic = "cart_events"
        e = {
            "type": "cart",
            "event_id": e["event_id"],
            "user_id": template["user_id"],
            "ts": template["ts"],
            "action": "add",
            "product_id": "p1",
            "category": "books",
            "quantity": 1,
            "price": 9.5,
        }
        if kind == "invalid_amount":
            e["price"] = -3.0
        elif kind == "invalid_quantity":
            e["quantity"] = 0
        else:
            e["action"] = "wishlist"
    return Record(topic, str(template["user_id"]).encode(), orjson.dumps(e), kind)


def arrivals(
    events: list[dict],
    seed: int = 0,
    out_of_order: float = 0.0,
    max_delay_ms: int = 6 * 3_600_000,
    duplicates: float = 0.0,
    malformed: float = 0.0,
    now_ms: int | None = None,
) -> list[Record]:
    """The records in the order a broker receives them, with the requested fault rates."""
    rng = np.random.default_rng(seed + 2)
    n = len(events)
    delay = np.where(rng.random(n) < out_of_order, rng.integers(1, max_delay_ms, n), 0)
    order = np.argsort(np.array([e["ts"] for e in events], dtype=np.int64) + delay, kind="stable")
    # "the future" is relative to the broker's clock when the records are produced: the wall clock
    now_ms = now_ms if now_ms is not None else max(int(time.time() * 1000), events[-1]["ts"] if events else 0)
    dup = rng.random(n) < duplicates
    bad = rng.random(n) < malformed
    out: list[Record] = []
    bad_i = 0
    for i in order:
        e = events[i]
        rec = Record(TOPIC_OF[e["type"]], e["user_id"].encode(), orjson.dumps(e))
        out.append(rec)
        if dup[i]:
            out.append(rec)
        if bad[i]:
            out.append(malformed_record(MALFORMED_KINDS[bad_i % len(MALFORMED_KINDS)], e, now_ms))
            bad_i += 1
    return out


def write_jsonl(records: list[Record], path: Path) -> None:
    """Records as JSONL, one value per line (malformed ones as they are, newlines escaped)."""
    with open(path, "wb") as f:
        for r in records:
            f.write(r.value.replace(b"\n", b"\\n") + b"\n")
