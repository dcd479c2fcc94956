"""The ``events`` (bronze) and ``dead_letters`` rows of a batch, in the tables' column order."""

from __future__ import annotations

from typing import Any

import msgspec

from core.contracts import CartEvent, Event, PageView, Purchase
from streams.records import RawRecord

DEAD_LETTER_COLUMNS = ("topic", "partition", "offset", "reason", "detail")
BRONZE_COLUMNS = (
    "event_id",
    "user_id",
    "event_type",
    "ts",
    "session_id",
    "page_type",
    "product_id",
    "category",
    "action",
    "quantity",
    "price",
    "order_id",
    "amount",
    "currency",
    "items",
    "topic",
    "partition",
    "offset",
)
_items_encoder = msgspec.json.Encoder()


def bronze_row(ev: Event, rec: RawRecord) -> tuple[Any, ...]:
    """The ``events`` row of an applied event, in ``BRONZE_COLUMNS`` order; fields of other types stay empty.

    ``ts`` is epoch milliseconds: the ``DateTime64(3)`` column takes the integer as is (no datetime objects to
    build and convert back, which cost about 6 us per event in the insert).
    """
    raw = ev.raw
    session = (raw.session_id if raw else None) or ""
    head = (ev.event_id, ev.user_id, ev.kind, ev.ts_ms, session)
    tail = (rec.topic, rec.partition, rec.offset)
    if isinstance(raw, PageView):
        body: tuple[Any, ...] = (raw.page_type, raw.product_id or "", raw.category or "", "", 0, 0.0, "", 0.0, "", "")
    elif isinstance(raw, CartEvent):
        body = ("", raw.product_id, raw.category, raw.action, raw.quantity, raw.price, "", 0.0, "", "")
    elif isinstance(raw, Purchase):
        items = _items_encoder.encode(raw.items).decode()
        body = ("", "", "", "", 0, 0.0, raw.order_id, raw.amount, raw.currency, items)
    else:
        body = ("", "", "", "", 0, 0.0, "", 0.0, "", "")
    return head + body + tail
