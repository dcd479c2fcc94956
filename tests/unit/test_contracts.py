"""Every DLQ reason, and the valid shapes, straight through the decoder."""

from __future__ import annotations

import orjson
import pytest

from core.contracts import REASONS, Event, Rejection, decode
from simulation.generator import MALFORMED_KINDS, malformed_record

BROKER_TS = 1_767_225_600_000
PV = {"event_id": "e1", "user_id": "u1", "ts": BROKER_TS, "page_type": "home"}
CART = {
    "event_id": "e2",
    "user_id": "u1",
    "ts": BROKER_TS,
    "action": "add",
    "product_id": "p1",
    "category": "books",
    "quantity": 2,
    "price": 9.99,
}
BUY = {
    "event_id": "e3",
    "user_id": "u1",
    "ts": "2026-01-01T00:00:00Z",
    "order_id": "o1",
    "amount": 19.98,
    "currency": "EUR",
    "items": [{"product_id": "p1", "category": "books", "quantity": 2, "price": 9.99}],
}


def reject(kind: str, event: dict | bytes) -> Rejection:
    raw = event if isinstance(event, bytes) else orjson.dumps(event)
    out = decode(kind, raw, BROKER_TS)
    assert isinstance(out, Rejection), out
    return out


def test_valid_events() -> None:
    pv = decode("page_view", orjson.dumps(PV | {"product_id": "p1", "session_id": "s"}), BROKER_TS)
    assert isinstance(pv, Event) and pv.product_view
    c = decode("cart", orjson.dumps(CART), BROKER_TS)
    assert isinstance(c, Event) and c.cart_add and not c.cart_remove
    b = decode("purchase", orjson.dumps(BUY), BROKER_TS)
    assert isinstance(b, Event) and b.revenue_cents == 1998 and b.ts_ms == BROKER_TS
    # unknown extra fields are ignored (forward compatible)
    assert isinstance(decode("page_view", orjson.dumps(PV | {"experiment": [1, 2]})), Event)


def test_iso_ts_with_milliseconds_is_exact() -> None:
    ev = decode("page_view", orjson.dumps(PV | {"ts": "2026-11-01T10:00:00.123+00:00"}))
    assert isinstance(ev, Event) and ev.ts_ms % 1000 == 123


@pytest.mark.parametrize(
    ("kind", "event", "reason", "names"),
    [
        ("page_view", b"{nope", "invalid_json", ""),
        ("page_view", b"[1, 2]", "invalid_type", "object"),
        ("page_view", PV | {"user_id": 7}, "invalid_type", "user_id"),
        ("cart", CART | {"quantity": "2"}, "invalid_type", "quantity"),
        (
            "purchase",
            BUY | {"items": [{"product_id": "p", "category": "c", "quantity": 1}]},
            "missing_field",
            "items[0].price",
        ),
        ("page_view", {k: v for k, v in PV.items() if k != "user_id"}, "missing_user_id", "user_id"),
        ("page_view", PV | {"user_id": ""}, "missing_user_id", "user_id"),
        ("page_view", PV | {"user_id": "x" * 257}, "invalid_user_id", "user_id"),
        ("page_view", PV | {"user_id": "a b"}, "invalid_user_id", "user_id"),
        ("page_view", {k: v for k, v in PV.items() if k != "ts"}, "missing_ts", "ts"),
        ("page_view", PV | {"ts": "2026-01-01T00:00:00"}, "invalid_ts", "ts"),
        ("page_view", PV | {"ts": "tomorrow"}, "invalid_ts", "ts"),
        ("page_view", PV | {"ts": 1.5}, "invalid_ts", "ts"),
        ("page_view", PV | {"ts": BROKER_TS + 86_400_001}, "ts_in_future", "ts"),
        ("purchase", BUY | {"amount": -1}, "invalid_amount", "amount"),
        ("cart", CART | {"price": -0.01}, "invalid_amount", "price"),
        (
            "purchase",
            BUY | {"items": [{"product_id": "p", "category": "c", "quantity": 1, "price": -2}]},
            "invalid_amount",
            "items[0].price",
        ),
        ("page_view", b'{"event_id":"e","user_id":"u","ts":1,"page_type":"x","n":1}', None, None),
        ("purchase", orjson.dumps(BUY)[:-1] + b',"amount":1e999}', "invalid_amount", "amount"),
        ("cart", CART | {"quantity": 0}, "invalid_quantity", "quantity"),
        ("cart", CART | {"action": "wishlist"}, "unknown_action", "action"),
        ("page_view", PV | {"pad": "x" * 70_000}, "payload_too_large", "limit 65536"),
        ("page_view", PV | {"event_id": ""}, "missing_field", "event_id"),
        ("page_view", PV | {"type": "purchase"}, "invalid_type", "type"),
    ],
)
def test_rejections_name_reason_and_field(kind: str, event: dict | bytes, reason: str | None, names: str) -> None:
    if reason is None:
        assert isinstance(decode(kind, event if isinstance(event, bytes) else orjson.dumps(event)), Event)
        return
    out = reject(kind, event)
    assert out.reason == reason
    assert out.reason in REASONS
    assert names in out.detail


@pytest.mark.parametrize("kind", [k for k in MALFORMED_KINDS if k != "too_late"])  # too_late needs state
def test_generator_malformed_records_hit_their_reason(kind: str) -> None:
    template = {"type": "page_view"} | PV
    rec = malformed_record(kind, template, BROKER_TS)
    decoded_kind = {"page_views": "page_view", "cart_events": "cart", "purchases": "purchase"}[rec.topic]
    assert reject(decoded_kind, rec.value).reason == kind
