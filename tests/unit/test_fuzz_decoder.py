"""Property-based fuzzing of the event decoder and of the batch processor: no input crashes them, every
rejection carries a known reason and a detail, and every record of a batch ends with exactly one outcome."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.contracts import (
    KINDS,
    MAX_TS_MS,
    MAX_USER_ID_LEN,
    MIN_TS_MS,
    REASONS,
    USER_ID_RE,
    CartEvent,
    Event,
    PageView,
    Purchase,
    Rejection,
    decode,
)
from features.compute import features
from features.state import decode_state
from features.store import MemoryStateStore
from streams.dlq import ListDeadLetters
from streams.processor import FeatureProcessor
from streams.records import RawRecord
from streams.sinks import ListSink

TOPICS = ("page_views", "cart_events", "purchases")
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = sorted({f.name for cls in (PageView, CartEvent, Purchase) for f in msgspec.structs.fields(cls)})
# records shaped like events, with each field missing, of the wrong type, or plausible
plausible = {
    "type": st.sampled_from(KINDS),
    "event_id": st.text(min_size=0, max_size=12),
    "user_id": st.text(max_size=20) | st.sampled_from(["u1", "user@example.com", "a" * 200, "", " ", "x'; DROP"]),
    "ts": st.integers(min_value=-(2**63), max_value=2**63) | st.sampled_from(["2026-11-20T10:00:00Z", "nope", ""]),
    "action": st.sampled_from(["add", "remove", "buy", ""]),
    "quantity": st.integers(min_value=-5, max_value=10**12),
    "price": st.floats(allow_nan=True, allow_infinity=True),
    "amount": st.floats(allow_nan=True, allow_infinity=True),
    "items": st.lists(
        st.fixed_dictionaries(
            {"product_id": st.text(max_size=5), "quantity": st.integers(-2, 5), "price": st.floats(allow_nan=True)}
        ),
        max_size=3,
    ),
}
shaped = st.fixed_dictionaries(
    {},
    optional={f: plausible.get(f, json_values) for f in FIELDS},  # type: ignore[arg-type]
)


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


payloads = st.binary(max_size=300) | json_values.map(encode) | shaped.map(encode)


def check(result: Event | Rejection) -> None:
    if isinstance(result, Rejection):
        assert result.reason in REASONS and result.detail, result
    else:
        assert isinstance(result, Event)
        assert USER_ID_RE.match(result.user_id) and len(result.user_id) <= MAX_USER_ID_LEN
        assert MIN_TS_MS <= result.ts_ms <= MAX_TS_MS
        assert result.event_id


@FUZZ
@given(kind=st.sampled_from((*KINDS, "bogus")), payload=payloads, broker_ts=st.none() | st.integers(0, 2**62))
def test_decode_never_raises_and_every_rejection_has_a_reason(kind: str, payload: bytes, broker_ts: int | None) -> None:
    check(decode(kind, payload, broker_ts))


@FUZZ
@given(
    batch=st.lists(
        st.tuples(st.sampled_from(TOPICS), st.integers(0, 3), payloads, st.binary(max_size=8) | st.none()),
        max_size=30,
    )
)
def test_the_processor_survives_any_batch_and_accounts_for_every_record(batch: list[Any]) -> None:
    dlq, store, bronze = ListDeadLetters(), MemoryStateStore(), ListSink()
    processor = FeatureProcessor(TOPICS, store, bronze, dlq)
    records = [
        RawRecord(topic, partition, offset, 1_790_000_000_000, key, value)
        for offset, (topic, partition, value, key) in enumerate(batch)
    ]
    result = asyncio.run(processor.process(records))
    outcomes = sum(n for o, n in result.outcomes.items() if o != "too_late")
    assert outcomes + sum(n for r, n in result.rejected.items() if r != "too_late") + result.outcomes.get(
        "too_late", 0
    ) == len(records)
    assert all(reason in REASONS and detail for _, reason, detail in dlq.sent)
    # NaN or infinite prices and amounts never reach a feature or an `events` row
    for blob in store.data.values():
        state = decode_state(blob)
        assert all(math.isfinite(x) for x in features(state, state.last_ms).values())
    assert all(math.isfinite(x) for row in bronze.rows for x in row if isinstance(x, float))


money = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1e12, 1e12 + 1, 1e300, 1.7e308])


@FUZZ
@given(amount=money, price=money, item_price=money)
def test_money_of_any_magnitude_in_otherwise_valid_events_never_stops_the_processor(
    amount: float, price: float, item_price: float
) -> None:
    """Valid events but for their money: rejected as `invalid_amount`, or applied with finite features and rows.
    (A purchase of 1e308 once overflowed while decoding: the batch raised and was retried for ever.)"""
    ts = 1_790_000_000_000
    purchase = {"type": "purchase", "event_id": "p1", "user_id": "u1", "ts": ts, "order_id": "o1", "amount": amount}
    purchase |= {
        "currency": "EUR",
        "items": [{"product_id": "x", "category": "toys", "quantity": 1, "price": item_price}],
    }
    cart = {"type": "cart", "event_id": "c1", "user_id": "u1", "ts": ts, "product_id": "x", "category": "toys"}
    cart |= {"action": "add", "quantity": 1, "price": price}
    records = [
        RawRecord("purchases", 0, 0, ts, b"u1", json.dumps(purchase).encode()),
        RawRecord("cart_events", 0, 0, ts, b"u1", json.dumps(cart).encode()),
    ]
    dlq, store, bronze = ListDeadLetters(), MemoryStateStore(), ListSink()
    result = asyncio.run(FeatureProcessor(TOPICS, store, bronze, dlq).process(records))
    assert sum(result.outcomes.values()) + sum(result.rejected.values()) == 2
    assert set(result.rejected) <= {"invalid_amount", "invalid_json"}  # NaN and Infinity are not JSON
    for blob in store.data.values():
        state = decode_state(blob)
        assert all(math.isfinite(x) for x in features(state, state.last_ms).values())
    assert all(math.isfinite(x) for row in bronze.rows for x in row if isinstance(x, float))
