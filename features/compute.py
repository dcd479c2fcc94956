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
    for d, b in state.days.items():
        if d > day:
            for i in range(SLOTS):
                life[i] -= b[i]
            events -= b[PAGE_VIEWS] + b[CART_ADDS] + b[CART_REMOVES] + b[PURCHASES]
            for i in range(BUCKET_SLOTS, len(b), 2):
                mix[b[i]] -= b[i + 1]
        else:
            for i, last in enumerate(b[LAST_PAGE_VIEW:BUCKET_SLOTS]):
                if last:
                    lasts[i] = max(lasts[i], d * DAY_MS + last - 1)
    return AsOf(events, state.first_ms, max(lasts), lasts[0], lasts[1], lasts[2], life, mix)


def features(state: UserState, as_of_ms: int) -> dict[str, float]:
    """The feature vector of ``state`` at event time ``as_of_ms`` (epoch ms, UTC).

    A window of ``w`` days holds the UTC days ``as_of_day - w + 1 .. as_of_day``; buckets after ``as_of``'s day
    are ignored, and the lifetime aggregates come from :func:`as_of_view`, so the function is point in time: at
    the end of a UTC day, a state that has already folded later events gives the features of the state that had
    not.
    """
    as_of_day = as_of_ms // DAY_MS
    # sums[w][slot] with an extra slot for active days; events per age range for trends
    sums = {w: [0] * 7 for w in WINDOWS}
    events_by_range = [0, 0, 0, 0]  # age 0-6, 7-13, 0-29, 30-59
    for day, b in state.days.items():
        age = as_of_day - day
        if age < 0 or age >= 60:
            continue
        n_events = b[PAGE_VIEWS] + b[CART_ADDS] + b[CART_REMOVES] + b[PURCHASES]
        for w in WINDOWS:
            if age < w:
                acc = sums[w]
                for i in range(6):
                    acc[i] += b[i]
                if n_events:
                    acc[6] += 1
        if age < 7:
            events_by_range[0] += n_events
        elif age < 14:
            events_by_range[1] += n_events
        if age < 30:
            events_by_range[2] += n_events
        else:
            events_by_range[3] += n_events

    out: dict[str, float] = {}
    for w in WINDOWS:
        acc = sums[w]
        out[f"page_views_{w}d"] = float(acc[PAGE_VIEWS])
        out[f"product_views_{w}d"] = float(acc[PRODUCT_VIEWS])
        out[f"cart_adds_{w}d"] = float(acc[CART_ADDS])
        out[f"cart_removes_{w}d"] = float(acc[CART_REMOVES])
        out[f"purchases_{w}d"] = float(acc[PURCHASES])
        out[f"revenue_{w}d"] = acc[REVENUE_CENTS] / 100
        out[f"active_days_{w}d"] = float(acc[6])
    at = as_of_view(state, as_of_ms)
    out["days_since_last_event"] = _since(as_of_ms, at.last_ms) if at.events else NEVER
    out["days_since_last_page_view"] = _since(as_of_ms, at.last_page_view_ms)
    out["days_since_last_cart"] = _since(as_of_ms, at.last_cart_ms)
    out["days_since_last_purchase"] = _since(as_of_ms, at.last_purchase_ms)
    out["tenure_days"] = (as_of_ms - at.first_ms) / DAY_MS if at.events else 0.0
    out["lifetime_events"] = float(at.events)
    out["lifetime_purchases"] = float(at.life[PURCHASES])
    out["lifetime_revenue"] = at.life[REVENUE_CENTS] / 100
    out["avg_order_value"] = _ratio(at.life[REVENUE_CENTS] / 100, at.life[PURCHASES])
    out["trend_7d"] = _trend(events_by_range[0], events_by_range[1])
    out["trend_30d"] = _trend(events_by_range[2], events_by_range[3])
    out["cart_adds_per_product_view_30d"] = _ratio(sums[30][CART_ADDS], sums[30][PRODUCT_VIEWS])
    out["purchases_per_cart_add_30d"] = _ratio(sums[30][PURCHASES], sums[30][CART_ADDS])
    tagged = sum(at.mix.values())
    for k, name in enumerate(_SHARES):
        out[name] = at.mix.get(k, 0) / tagged if tagged else 0.0
    return out


def vector(state: UserState, as_of_ms: int) -> list[float]:
    """:func:`features` as a list in ``FEATURE_NAMES`` order, what the models take."""
    f = features(state, as_of_ms)
    return [f[n] for n in FEATURE_NAMES]
