"""Event contracts and validation: raw bytes in, a normalized :class:`Event` or a :class:`Rejection` out.

The stream worker, the API's ingest endpoint and the offline builder all validate through :func:`decode`, so a
record is either valid everywhere or rejected everywhere with the same reason code (see ``docs/events.md``).

>>> ev = decode("page_view", b'{"event_id":"e1","user_id":"u1","ts":"2026-11-01T10:00:00Z","page_type":"product",'
...             b'"product_id":"p9"}')
>>> ev.kind, ev.user_id, ev.ts_ms, ev.product_view
('page_view', 'u1', 1793527200000, True)
>>> decode("cart", b'{"event_id":"e2","user_id":"u1","ts":1,"action":"wishlist","product_id":"p","category":"c",'
...        b'"quantity":1,"price":2}')
Rejection(reason='unknown_action', detail="action must be 'add' or 'remove', got 'wishlist'", field='action')
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Literal

import msgspec

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_USER_ID_LEN = 256
MAX_MONEY = 1e12  # largest amount or price: kept in integer cents, summed over 60 days without overflow
MAX_FUTURE_MS = 86_400_000  # ts may be at most one day ahead of the broker timestamp
MIN_TS_MS = 0
MAX_TS_MS = 32_503_680_000_000  # year 3000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
USER_ID_RE = re.compile(r"^[\w.@:+\-=/|#~$%&*!]+$")

Kind = Literal["page_view", "cart", "purchase"]
KINDS: tuple[Kind, ...] = ("page_view", "cart", "purchase")

REASONS = (
    "payload_too_large",
    "invalid_json",
    "invalid_type",
    "missing_field",
    "missing_user_id",
    "invalid_user_id",
    "missing_ts",
    "invalid_ts",
    "ts_in_future",
    "too_late",
    "invalid_amount",
    "invalid_quantity",
    "unknown_action",
    "unknown_type",
)


class _Common(msgspec.Struct, kw_only=True):
    event_id: str
    user_id: str
    ts: int | str
    session_id: str | None = None
    type: str | None = None  # optional; needed only in files that mix event types


class PageView(_Common, kw_only=True):
    page_type: str
    product_id: str | None = None
    category: str | None = None


class CartEvent(_Common, kw_only=True):
    action: str
    product_id: str
    category: str
    quantity: int
    price: float


class Item(msgspec.Struct, kw_only=True):
    product_id: str
    category: str
    quantity: int
    price: float


class Purchase(_Common, kw_only=True):
    order_id: str
    amount: float
    currency: str
    items: list[Item]


_DECODERS: dict[
    str, msgspec.json.Decoder[PageView] | msgspec.json.Decoder[CartEvent] | msgspec.json.Decoder[Purchase]
] = {
    "page_view": msgspec.json.Decoder(PageView),
    "cart": msgspec.json.Decoder(CartEvent),
    "purchase": msgspec.json.Decoder(Purchase),
}


class Event(msgspec.Struct, frozen=True, array_like=True):
    """A valid event, normalized for the feature path and the bronze table."""

    kind: Kind
    event_id: str
    user_id: str
    ts_ms: int
    product_view: bool = False  # page view of a product
    cart_add: bool = False
    cart_remove: bool = False
    revenue_cents: int = 0
    raw: PageView | CartEvent | Purchase | None = None
    categories: tuple[str, ...] = ()  # the product categories it names (a purchase: one per item)


class Rejection(msgspec.Struct, frozen=True):
    reason: str
    detail: str
    field: str = ""  # the offending field's path (``ts``, ``items[0].price``), empty for the whole record


_PATH = re.compile(r"at `\$\.?([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def _field_error(message: str) -> Rejection:
    """Map a msgspec validation message to a reason code naming the field."""
    missing = _MISSING.search(message)
    if missing:
        name = missing.group(1)
        parent = _PATH.search(message)
        where = f"{parent.group(1)}.{name}" if parent and parent.group(1) else name
        if where == "user_id":
            return Rejection("missing_user_id", "user_id is required", "user_id")
        if where == "ts":
            return Rejection("missing_ts", "ts is required", "ts")
        return Rejection("missing_field", f"{where} is required", where)
    path_match = _PATH.search(message)
    path = path_match.group(1) if path_match else ""
    leaf = path.rsplit(".", 1)[-1]
    if leaf == "ts":
        return Rejection("invalid_ts", f"ts must be epoch milliseconds or ISO-8601 with a zone: {message}", "ts")
    if "out of range" in message and leaf in ("amount", "price"):
        return Rejection("invalid_amount", f"{path} is not a finite number", path)
    if not path:
        return Rejection("invalid_type", f"event must be a JSON object: {message}")
    return Rejection("invalid_type", f"{path}: {message.split(' - at ')[0]}", path)


def parse_ts(value: int | str) -> int | Rejection:
    """Epoch milliseconds from an int or an ISO-8601 string with a zone.

    >>> parse_ts("2026-01-01T00:00:00+01:00")
    1767222000000
    >>> parse_ts("2026-01-01T00:00:00").reason
    'invalid_ts'
    """
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return Rejection("invalid_ts", f"ts is not ISO-8601: {value[:64]!r}", "ts")
        if parsed.tzinfo is None:
            return Rejection("invalid_ts", "ts has no time zone (use Z or an offset)", "ts")
        ts_ms = (parsed - EPOCH) // dt.timedelta(milliseconds=1)  # exact, no float rounding
    else:
        ts_ms = value
    if not MIN_TS_MS <= ts_ms <= MAX_TS_MS:
        return Rejection("invalid_ts", f"ts out of range: {ts_ms}", "ts")
    return ts_ms


def validate_user_id(user_id: str) -> Rejection | None:
    if not user_id:
        return Rejection("missing_user_id", "user_id is empty", "user_id")
    if len(user_id) > MAX_USER_ID_LEN:
        return Rejection("invalid_user_id", f"user_id is longer than {MAX_USER_ID_LEN} characters", "user_id")
    if not USER_ID_RE.match(user_id):
        return Rejection(
            "invalid_user_id", "user_id may hold letters, digits and . @ : + - = / | # ~ $ % & * ! _", "user_id"
        )
    return None


def _money(value: float, field: str) -> Rejection | None:
    if not math.isfinite(value) or not 0 <= value <= MAX_MONEY:
        return Rejection(
            "invalid_amount", f"{field} must be a finite number from 0 to {MAX_MONEY:.0e}, got {value}", field
        )
    return None


def decode(kind: str, payload: bytes, broker_ts_ms: int | None = None) -> Event | Rejection:
    """Validate one raw record of ``kind`` (``page_view``, ``cart`` or ``purchase``)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejection("payload_too_large", f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return Rejection("unknown_type", f"unknown event type {kind!r}", "type")
    try:
        raw = decoder.decode(payload)
    except msgspec.ValidationError as exc:
        return _field_error(str(exc))
    except msgspec.DecodeError as exc:
        return Rejection("invalid_json", str(exc))
    return _check(kind, raw, broker_ts_ms)


def _check(kind: str, raw: PageView | CartEvent | Purchase, broker_ts_ms: int | None) -> Event | Rejection:
    bad_user = validate_user_id(raw.user_id)
    if bad_user:
        return bad_user
    if not raw.event_id:
        return Rejection("missing_field", "event_id is empty", "event_id")
    if raw.type is not None and raw.type != kind:
        return Rejection("invalid_type", f"type is {raw.type!r} but the record is a {kind}", "type")
    ts_ms = parse_ts(raw.ts)
    if isinstance(ts_ms, Rejection):
        return ts_ms
    if broker_ts_ms is not None and ts_ms > broker_ts_ms + MAX_FUTURE_MS:
        return Rejection("ts_in_future", f"ts is {(ts_ms - broker_ts_ms) / 3.6e6:.1f} h ahead of the broker time", "ts")
    if isinstance(raw, PageView):
        return Event(
            "page_view",
            raw.event_id,
            raw.user_id,
            ts_ms,
            product_view=bool(raw.product_id),
            raw=raw,
            categories=(raw.category,) if raw.category else (),
        )
    if isinstance(raw, CartEvent):
        if raw.action not in ("add", "remove"):
            return Rejection("unknown_action", f"action must be 'add' or 'remove', got {raw.action[:32]!r}", "action")
        if raw.quantity <= 0:
            return Rejection("invalid_quantity", f"quantity must be > 0, got {raw.quantity}", "quantity")
        bad = _money(raw.price, "price")
        if bad:
            return bad
        return Event(
            "cart",
            raw.event_id,
            raw.user_id,
            ts_ms,
            cart_add=raw.action == "add",
            cart_remove=raw.action == "remove",
            raw=raw,
            categories=(raw.category,) if raw.category else (),
        )
    bad = _money(raw.amount, "amount")
    if bad:
        return bad
    for i, item in enumerate(raw.items):
        if item.quantity <= 0:
            return Rejection(
                "invalid_quantity", f"items[{i}].quantity must be > 0, got {item.quantity}", f"items[{i}].quantity"
            )
        bad = _money(item.price, f"items[{i}].price")
        if bad:
            return bad
    categories = tuple(item.category for item in raw.items if item.category)
    return Event(
        "purchase",
        raw.event_id,
        raw.user_id,
        ts_ms,
        revenue_cents=round(raw.amount * 100),
        raw=raw,
        categories=categories,
    )
