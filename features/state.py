"""Per-user state: UTC-day buckets over the last 67 days plus today, lifetime aggregates, and replay guards.

Each day bucket also keeps the time of day of its latest page view, cart event and purchase, and ``floors`` keep
those of the days that left the horizon, so the state answers "as of the end of day d" exactly even after it has
folded events of later days (:func:`features.compute.features`): the worker rescores users at day ends once the
event-time watermark has passed them, when later events may already be in.

``apply`` folds one event into a state. The stream worker and the offline builder both fold events through it,
so both arrive at the same state. Bucket aggregates are sums, minima and maxima, so events that arrive out of
order within the horizon give the same state as events in time order.

The state is stored as one compact msgpack value per user (:func:`core.keys.state_key`). Because it holds the last
applied offset per (topic, partition), a single SET updates the features and the replay guard atomically.

>>> s = UserState()
>>> apply(s, Event("purchase", "e1", "u1", 3 * DAY_MS + 5, revenue_cents=1999))
'applied'
>>> apply(s, Event("purchase", "e1", "u1", 3 * DAY_MS + 5, revenue_cents=1999))  # producer retry
'duplicate'
>>> s.days, s.life
({3: [0, 0, 0, 0, 1, 1999, 0, 0, 6]}, [0, 0, 0, 0, 1, 1999])
>>> decode_state(encode_state(s)) == s
True
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

from core.contracts import Event
from core.days import DAY_MS
from features.categories import bucket as category_bucket
from features.interest import HALF_LIFE_DAYS, note

HORIZON_DAYS = 60  # the longest window: an event more than this many days before the user's latest is too late
# buckets kept: the latest event's day and the 67 days before it, so the features as of the end of any of the last
# 7 days are exact (the worker rescores at day ends once the watermark, which trails by the lateness, passes them)
EXACT_DAYS = 7
KEPT_DAYS = HORIZON_DAYS + EXACT_DAYS
RECENT_IDS = 16  # event ids remembered per user to drop producer retries
ID_HASH_BYTES = 6  # 48-bit hashes: a false "duplicate" needs a collision among 16 ids (p ~ 6e-14 per event)

# bucket / lifetime slots
PAGE_VIEWS, PRODUCT_VIEWS, CART_ADDS, CART_REMOVES, PURCHASES, REVENUE_CENTS = range(6)
SLOTS = 6
# bucket only: the latest event of each type that day, as milliseconds into the day + 1 (0: none that day)
LAST_PAGE_VIEW, LAST_CART, LAST_PURCHASE = range(6, 9)
BUCKET_SLOTS = 9
# then, in days with category-tagged events within EXACT_DAYS of the latest event's day, (category bucket, count)
# pairs: what to take off the lifetime category mix for an as-of view of one of the last EXACT_DAYS day ends
LAST_SLOT = {"page_view": LAST_PAGE_VIEW, "cart": LAST_CART, "purchase": LAST_PURCHASE}

Outcome = Literal["applied", "replayed", "duplicate", "too_late"]


class UserState(msgspec.Struct, array_like=True):
    events: int = 0  # lifetime applied events
    first_ms: int = 0
    last_ms: int = 0  # latest event time of any type: the user's event-time clock
    last_page_view_ms: int = 0  # 0 = never
    last_cart_ms: int = 0
    last_purchase_ms: int = 0
    life: list[int] = msgspec.field(default_factory=lambda: [0] * SLOTS)
    days: dict[int, list[int]] = msgspec.field(default_factory=dict)  # UTC day number -> slots
    offsets: dict[int, int] = msgspec.field(default_factory=dict)  # topic-partition code -> last applied offset
    recent: bytes = b""  # hashes of the latest event ids, ID_HASH_BYTES each, oldest first
    # latest page view, cart event and purchase (epoch ms, 0 = none) on days that left the horizon
    floors: list[int] = msgspec.field(default_factory=lambda: [0, 0, 0])
    rescored_ms: int = 0  # the latest day end the user was scored at by time (0 = never)
    mix: dict[int, int] = msgspec.field(default_factory=dict)  # category bucket -> lifetime count (features.categories)
    interest: dict[str, float] = msgspec.field(default_factory=dict)  # priority categories (features.interest)
    interest_ms: int = 0  # the time ``interest`` is decayed to


class _Stored(msgspec.Struct, array_like=True):
    """Wire form: day buckets keyed by age relative to the latest event's day (0..60: one byte each)."""

    events: int
    first_ms: int
    last_ms: int
    last_page_view_ms: int
    last_cart_ms: int
    last_purchase_ms: int
    life: list[int]
    ages: dict[int, list[int]]
    offsets: dict[int, int]
    recent: bytes
    floors: list[int] = msgspec.field(default_factory=lambda: [0, 0, 0])  # absent in states written before them
    rescored_ms: int = 0
    mix: dict[int, int] = msgspec.field(default_factory=dict)
    interest: dict[str, float] = msgspec.field(default_factory=dict)
    interest_ms: int = 0


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Stored)


def encode_state(state: UserState) -> bytes:
    last_day = state.last_ms // DAY_MS
    return _encoder.encode(
        _Stored(
            state.events,
            state.first_ms,
            state.last_ms,
            state.last_page_view_ms,
            state.last_cart_ms,
            state.last_purchase_ms,
            state.life,
            {last_day - d: b for d, b in state.days.items()},
            state.offsets,
            state.recent,
            state.floors,
            state.rescored_ms,
            state.mix,
            state.interest,
            state.interest_ms,
        )
    )


def decode_state(blob: bytes | None) -> UserState:
    if blob is None:
        return UserState()
    s = _decoder.decode(blob)
    last_day = s.last_ms // DAY_MS
    return UserState(
        s.events,
        s.first_ms,
        s.last_ms,
        s.last_page_view_ms,
        s.last_cart_ms,
        s.last_purchase_ms,
        s.life,
        {last_day - a: b if len(b) >= BUCKET_SLOTS else [*b, 0, 0, 0] for a, b in s.ages.items()},
        s.offsets,
        s.recent,
        s.floors,
        s.rescored_ms,
        s.mix,
        s.interest,
        s.interest_ms,
    )


def partition_code(topic_index: int, partition: int) -> int:
    """A compact integer for (input topic, partition), used as the offset key inside the state."""
    return topic_index << 16 | partition


def id_hash(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=ID_HASH_BYTES).digest()


def _seen(recent: bytes, h: bytes) -> bool:
    """Is ``h`` one of the aligned hashes in ``recent``?"""
    i = recent.find(h)
    while i != -1:
        if i % ID_HASH_BYTES == 0:
            return True
        i = recent.find(h, i + 1)
    return False


def _count_categories(mix: dict[int, int], bucket: list[int], categories: tuple[str, ...]) -> None:
    """Count ``categories`` into the lifetime mix and into the day bucket's (category bucket, count) pairs."""
    for name in categories:
        b = category_bucket(name)
        mix[b] = mix.get(b, 0) + 1
        for i in range(BUCKET_SLOTS, len(bucket), 2):
            if bucket[i] == b:
                bucket[i + 1] += 1
                break
        else:
            bucket += (b, 1)


def apply(
    state: UserState,
    ev: Event,
    tp: int | None = None,
    offset: int | None = None,
    half_life_days: float = HALF_LIFE_DAYS,
) -> Outcome:
    """Fold ``ev`` into ``state`` (in place) and say what happened.

    ``replayed``: the record's offset was already applied (redelivery after a crash or rebalance);
    ``duplicate``: the event id was seen recently (producer retry); ``too_late``: the event's day is older than
    the horizon relative to the user's latest event. Only ``applied`` changes features.
    """
    if tp is not None and offset is not None:
        if offset <= state.offsets.get(tp, -1):
            return "replayed"
        state.offsets[tp] = offset
    h = id_hash(ev.event_id)
    if _seen(state.recent, h):
        return "duplicate"
    day = ev.ts_ms // DAY_MS
    if state.events and day < state.last_ms // DAY_MS - HORIZON_DAYS:
        return "too_late"
    state.recent = (state.recent + h)[-RECENT_IDS * ID_HASH_BYTES :]

    bucket = state.days.get(day)
    if bucket is None:
        bucket = state.days[day] = [0] * BUCKET_SLOTS
    life = state.life
    ts = ev.ts_ms
    slot = LAST_SLOT[ev.kind]
    bucket[slot] = max(bucket[slot], ts - day * DAY_MS + 1)
    if ev.kind == "page_view":
        bucket[PAGE_VIEWS] += 1
        life[PAGE_VIEWS] += 1
        if ev.product_view:
            bucket[PRODUCT_VIEWS] += 1
            life[PRODUCT_VIEWS] += 1
        state.last_page_view_ms = max(state.last_page_view_ms, ts)
    elif ev.kind == "cart":
        count = CART_ADDS if ev.cart_add else CART_REMOVES
        bucket[count] += 1
        life[count] += 1
        state.last_cart_ms = max(state.last_cart_ms, ts)
    else:
        bucket[PURCHASES] += 1
        bucket[REVENUE_CENTS] += ev.revenue_cents
        life[PURCHASES] += 1
        life[REVENUE_CENTS] += ev.revenue_cents
        state.last_purchase_ms = max(state.last_purchase_ms, ts)
    if ev.categories:
        _count_categories(state.mix, bucket, ev.categories)
        for name in ev.categories:  # priority categories, recency-weighted
            state.interest_ms = note(state.interest, state.interest_ms, name, ev.kind, ts, half_life_days)

    if state.events == 0:
        state.first_ms = state.last_ms = ts
    else:
        state.first_ms = min(state.first_ms, ts)
        if ts > state.last_ms:
            old_day = state.last_ms // DAY_MS
            state.last_ms = ts
            if day != old_day:
                for d, b in list(state.days.items()):
                    if d < day - KEPT_DAYS:
                        del state.days[d]
                        for i, last in enumerate(b[LAST_PAGE_VIEW:BUCKET_SLOTS]):
                            if last:
                                state.floors[i] = max(state.floors[i], d * DAY_MS + last - 1)
                    elif d < day - EXACT_DAYS and len(b) > BUCKET_SLOTS:
                        del b[BUCKET_SLOTS:]  # a day's categories matter only for the last EXACT_DAYS day ends
    state.events += 1
    return "applied"
