"""The feature definitions written the plain way, one window at a time, as ``features.compute`` had them before the
hot path summed nested bands (issue 13): ``test_features.py`` checks the fast ``vector`` against them."""

from __future__ import annotations

from features.categories import BUCKETS as CATEGORY_BUCKETS
from features.compute import NEVER, WINDOWS, _ratio, _since, _trend, as_of_view
from features.state import (
    CART_ADDS,
    CART_REMOVES,
    DAY_MS,
    PAGE_VIEWS,
    PRODUCT_VIEWS,
    PURCHASES,
    REVENUE_CENTS,
    UserState,
)

_SHARES = tuple(f"category_share_{b:02d}" for b in range(CATEGORY_BUCKETS))


def reference_features(state: UserState, as_of_ms: int) -> dict[str, float]:
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
