"""The one feature function: ``features(state, as_of) -> dict``. No I/O, never mutates its input.

The stream worker, the API and the offline builder all call it. Definitions are in ``docs/features.md``.

>>> from features.state import UserState, apply, DAY_MS
>>> from core.contracts import Event
>>> s = UserState()
>>> for i, kind in enumerate(["page_view", "page_view", "purchase"]):
...     _ = apply(s, Event(kind, f"e{i}", "u", 10 * DAY_MS + i * 1000, revenue_cents=2500 * (kind == "purchase")))
>>> f = features(s, s.last_ms)
>>> f["page_views_7d"], f["purchases_30d"], f["revenue_60d"], f["active_days_7d"], f["days_since_last_event"]
(2.0, 1.0, 25.0, 1.0, 0.0)
"""

from __future__ import annotations

from itertools import islice
from typing import NamedTuple

from features.categories import BUCKETS as CATEGORY_BUCKETS
from features.state import (
    BUCKET_SLOTS,
    CART_ADDS,
    CART_REMOVES,
    DAY_MS,
    LAST_PAGE_VIEW,
    PAGE_VIEWS,
    PRODUCT_VIEWS,
    PURCHASES,
    REVENUE_CENTS,
    SLOTS,
    UserState,
)

WINDOWS = (7, 14, 30, 60)
_COUNTS = ("page_views", "product_views", "cart_adds", "cart_removes", "purchases", "revenue", "active_days")

_SHARES = tuple(f"category_share_{b:02d}" for b in range(CATEGORY_BUCKETS))  # features.categories
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{name}_{w}d" for w in WINDOWS for name in _COUNTS),
    "days_since_last_event",
    "days_since_last_page_view",
    "days_since_last_cart",
    "days_since_last_purchase",
    "tenure_days",
    "lifetime_events",
    "lifetime_purchases",
    "lifetime_revenue",
    "avg_order_value",
    "trend_7d",
    "trend_30d",
    "cart_adds_per_product_view_30d",
    "purchases_per_cart_add_30d",
    *_SHARES,
)

NEVER = -1.0  # value of a days_since_* feature when the user never had that event


def _since(as_of_ms: int, ts_ms: int) -> float:
    return (as_of_ms - ts_ms) / DAY_MS if ts_ms else NEVER


def _trend(recent: float, before: float) -> float:
    """(recent - before) / (recent + before): -1 (stopped) .. 0 (flat) .. 1 (new); 0 with no activity."""
    total = recent + before
    return (recent - before) / total if total else 0.0


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


class AsOf(NamedTuple):
    """The lifetime part of a state as of a moment: what :func:`features` reads besides the day buckets."""

    events: int
    first_ms: int
    last_ms: int
    last_page_view_ms: int
    last_cart_ms: int
    last_purchase_ms: int
    life: list[int]
    mix: dict[int, int]  # category bucket -> count


def as_of_view(state: UserState, as_of_ms: int) -> AsOf:
    """The state's lifetime aggregates as of ``as_of_ms``.

    When the state holds no event after ``as_of_ms`` they are the state's own. Otherwise the day buckets after
    ``as_of``'s day are taken off and the latest event of each type comes from the buckets up to that day (their
    time of day) or the floors: exact when ``as_of_ms`` is the end of a UTC day within the horizon (the category
    mix: one of the last ``EXACT_DAYS`` days), which is where the worker rescores users (:mod:`core.days`).

    >>> from features.state import apply
    >>> from core.contracts import Event
    >>> s = UserState()
    >>> for i, day in enumerate([3, 4, 9]):
    ...     _ = apply(s, Event("page_view", f"e{i}", "u", day * DAY_MS + 3_600_000))
    >>> view = as_of_view(s, 5 * DAY_MS - 1)  # the end of day 4: the day-9 event is not in yet
    >>> view.events, view.last_ms == 4 * DAY_MS + 3_600_000, view.life[PAGE_VIEWS]
    (2, True, 2)
    """
    if state.last_ms <= as_of_ms:
        return AsOf(
            state.events,
            state.first_ms,
            state.last_ms,
            state.last_page_view_ms,
            state.last_cart_ms,
            state.last_purchase_ms,
            state.life,
            state.mix,
        )
    day = as_of_ms // DAY_MS
    life = list(state.life)
    mix = dict(state.mix)
    events = state.events
    lasts = list(state.floors)
    earlier = []
    for d, b in state.days.items():
        if d > day:
            for i in range(SLOTS):
                life[i] -= b[i]
            events -= b[PAGE_VIEWS] + b[CART_ADDS] + b[CART_REMOVES] + b[PURCHASES]
            for i in range(BUCKET_SLOTS, len(b), 2):
                mix[b[i]] -= b[i + 1]
        else:
            earlier.append(d)
    # each type's latest event up to ``day``: in the latest kept day that has one (any kept day is later than the
    # floors), so the days are walked back from ``day`` until all three types are found
    missing = {0, 1, 2}
    for d in sorted(earlier, reverse=True):
        b = state.days[d]
        for i in list(missing):
            if last := b[LAST_PAGE_VIEW + i]:
                lasts[i] = max(lasts[i], d * DAY_MS + last - 1)
                missing.discard(i)
        if not missing:
            break
    return AsOf(events, state.first_ms, max(lasts), lasts[0], lasts[1], lasts[2], life, mix)


def features(state: UserState, as_of_ms: int) -> dict[str, float]:
    """The feature vector of ``state`` at event time ``as_of_ms`` (epoch ms, UTC), by name.

    A window of ``w`` days holds the UTC days ``as_of_day - w + 1 .. as_of_day``; buckets after ``as_of``'s day
    are ignored, and the lifetime aggregates come from :func:`as_of_view`, so the function is point in time: at
    the end of a UTC day, a state that has already folded later events gives the features of the state that had
    not.
    """
    return dict(zip(FEATURE_NAMES, vector(state, as_of_ms), strict=True))


def vector(state: UserState, as_of_ms: int) -> list[float]:
    """:func:`features` as a list in ``FEATURE_NAMES`` order, what the models take (the stream's hot path).

    The day buckets are summed once per band of ages (0-6, 7-13, 14-29, 30-59 days), column by column; the
    windows nest, so each window is a running total of the bands. Integer sums: the same values as summing each
    window on its own.
    """
    as_of_day = as_of_ms // DAY_MS
    bands: tuple[list[list[int]], ...] = ([], [], [], [])
    b7, b14, b30, b60 = bands
    for day, b in state.days.items():  # the band test inlined: this loop runs for every scored event
        age = as_of_day - day
        if age < 7:
            if age >= 0:
                b7.append(b)
        elif age < 14:
            b14.append(b)
        elif age < 30:
            b30.append(b)
        elif age < 60:
            b60.append(b)
    out: list[float] = []
    acc = [0] * 7  # the six count slots and active days, running over the nested windows
    band_events = [0, 0, 0, 0]
    sums30 = acc
    for k, band in enumerate(bands):
        if band:
            sums = list(map(sum, islice(zip(*band, strict=False), SLOTS)))  # the count slots' columns only
            for i in range(SLOTS):
                acc[i] += sums[i]
            band_events[k] = sums[PAGE_VIEWS] + sums[CART_ADDS] + sums[CART_REMOVES] + sums[PURCHASES]
            acc[6] += sum(1 for b in band if b[PAGE_VIEWS] + b[CART_ADDS] + b[CART_REMOVES] + b[PURCHASES])
        out += (
            float(acc[PAGE_VIEWS]),
            float(acc[PRODUCT_VIEWS]),
            float(acc[CART_ADDS]),
            float(acc[CART_REMOVES]),
            float(acc[PURCHASES]),
            acc[REVENUE_CENTS] / 100,
            float(acc[6]),
        )
        if k == 2:
            sums30 = list(acc)
    at = as_of_view(state, as_of_ms)
    life = at.life
    tagged = sum(at.mix.values())
    out += (
        _since(as_of_ms, at.last_ms) if at.events else NEVER,
        _since(as_of_ms, at.last_page_view_ms),
        _since(as_of_ms, at.last_cart_ms),
        _since(as_of_ms, at.last_purchase_ms),
        (as_of_ms - at.first_ms) / DAY_MS if at.events else 0.0,
        float(at.events),
        float(life[PURCHASES]),
        life[REVENUE_CENTS] / 100,
        _ratio(life[REVENUE_CENTS] / 100, life[PURCHASES]),
        _trend(band_events[0], band_events[1]),
        _trend(band_events[0] + band_events[1] + band_events[2], band_events[3]),
        _ratio(sums30[CART_ADDS], sums30[PRODUCT_VIEWS]),
        _ratio(sums30[PURCHASES], sums30[CART_ADDS]),
    )
    mix = at.mix
    out += [mix.get(k, 0) / tagged if tagged else 0.0 for k in range(CATEGORY_BUCKETS)]
    return out
