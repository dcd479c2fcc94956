"""The pure feature function on hand-computed cases."""

from __future__ import annotations

import copy
import math
import random

import orjson
import pytest

from core.contracts import Event, decode
from features.compute import FEATURE_NAMES, NEVER, features
from features.state import DAY_MS, EXACT_DAYS, HORIZON_DAYS, KEPT_DAYS, UserState, apply

T0 = 20_000 * DAY_MS  # 2024-10-04T00:00:00Z, a day boundary


def pv(i: int, ts: int, product: bool = False) -> Event:
    return Event("page_view", f"pv{i}", "u", ts, product_view=product)


def cart(i: int, ts: int, add: bool = True) -> Event:
    return Event("cart", f"c{i}", "u", ts, cart_add=add, cart_remove=not add)


def buy(i: int, ts: int, cents: int) -> Event:
    return Event("purchase", f"b{i}", "u", ts, revenue_cents=cents)


def state_of(*events: Event) -> UserState:
    s = UserState()
    for ev in events:
        assert apply(s, ev) == "applied"
    return s


def test_empty_history() -> None:
    f = features(UserState(), T0)
    assert tuple(f) == FEATURE_NAMES
    assert all(f[n] == 0.0 for n in FEATURE_NAMES if not n.startswith("days_since"))
    assert all(f[n] == NEVER for n in FEATURE_NAMES if n.startswith("days_since"))


def test_every_value_is_a_finite_float() -> None:
    s = state_of(pv(1, T0, True), cart(2, T0 + 1), buy(3, T0 + 2, 1234))
    f = features(s, s.last_ms)
    assert all(isinstance(v, float) and math.isfinite(v) for v in f.values())


def test_event_exactly_seven_days_before_as_of_is_outside_the_7_day_window() -> None:
    as_of = T0 + 12 * 3_600_000  # noon
    s = state_of(pv(1, as_of - 7 * DAY_MS), pv(2, as_of))
    f = features(s, as_of)
    # the window of 7 days is the UTC days as_of_day-6 .. as_of_day
    assert f["page_views_7d"] == 1.0
    assert f["page_views_14d"] == 2.0
    assert f["active_days_7d"] == 1.0 and f["active_days_14d"] == 2.0


def test_day_boundary_at_midnight_utc() -> None:
    # 23:59:59.999 belongs to the previous day, 00:00:00.000 to the new one
    s = state_of(pv(1, T0 - 1), pv(2, T0))
    assert sorted(s.days) == [T0 // DAY_MS - 1, T0 // DAY_MS]
    # as of 00:00 the 7-day window spans days -6..0: both events are inside
    assert features(s, T0)["page_views_7d"] == 2.0
    # six days later at midnight, the event at 23:59:59.999 seven days back has left the window
    f = features(s, T0 + 6 * DAY_MS)
    assert f["page_views_7d"] == 1.0 and f["page_views_14d"] == 2.0


def test_counts_revenue_ratios_and_recency_by_hand() -> None:
    s = state_of(
        pv(1, T0 - 40 * DAY_MS),  # tenure starts here
        pv(2, T0 - 20 * DAY_MS, product=True),
        pv(3, T0 - 10 * DAY_MS, product=True),
        cart(4, T0 - 10 * DAY_MS + 1000),
        pv(5, T0 - 3 * DAY_MS, product=True),
        cart(6, T0 - 3 * DAY_MS + 1000),
        cart(7, T0 - 3 * DAY_MS + 2000, add=False),
        buy(8, T0 - 2 * DAY_MS, 4999),
        pv(9, T0 - DAY_MS // 2),
    )
    as_of = T0  # half a day after the last page view
    f = features(s, as_of)
    assert f["page_views_7d"] == 2 and f["page_views_30d"] == 4 and f["page_views_60d"] == 5
    assert f["product_views_30d"] == 3 and f["product_views_7d"] == 1
    assert f["cart_adds_30d"] == 2 and f["cart_removes_30d"] == 1 and f["cart_adds_7d"] == 1
    assert f["purchases_7d"] == 1 and f["revenue_7d"] == 49.99 and f["revenue_60d"] == 49.99
    assert f["active_days_7d"] == 3  # days -3, -2, -1
    assert f["active_days_60d"] == 6
    assert f["days_since_last_event"] == 0.5
    assert f["days_since_last_page_view"] == 0.5
    assert f["days_since_last_cart"] == pytest.approx(3 - 2000 / DAY_MS)
    assert f["days_since_last_purchase"] == 2.0
    assert f["tenure_days"] == 40.0
    assert f["lifetime_events"] == 9 and f["lifetime_purchases"] == 1 and f["lifetime_revenue"] == 49.99
    assert f["avg_order_value"] == 49.99
    # last 7 days: pv5, cart6, cart7, buy8, pv9 = 5; days 7..13 before: pv3, cart4 = 2
    assert f["trend_7d"] == (5 - 2) / (5 + 2)
    # last 30 days: 8 events; days 30..59: pv1 = 1
    assert f["trend_30d"] == (8 - 1) / 9
    assert f["cart_adds_per_product_view_30d"] == 2 / 3
    assert f["purchases_per_cart_add_30d"] == 1 / 2


def test_function_is_pure_and_point_in_time() -> None:
    s = state_of(pv(1, T0), pv(2, T0 + 5 * DAY_MS))
    before = copy.deepcopy(s)
    f_early = features(s, T0)
    assert s == before
    # buckets after as_of's day are not seen
    assert f_early["page_views_60d"] == 1.0


def test_out_of_order_event_updates_the_right_day() -> None:
    in_order = state_of(pv(1, T0), pv(2, T0 + DAY_MS), pv(3, T0 + 9 * DAY_MS))
    shuffled = state_of(pv(3, T0 + 9 * DAY_MS), pv(1, T0), pv(2, T0 + DAY_MS))
    assert in_order.days == shuffled.days
    assert features(in_order, in_order.last_ms) == features(shuffled, shuffled.last_ms)


def test_too_late_is_relative_to_the_users_latest_event() -> None:
    s = state_of(pv(1, T0 + 100 * DAY_MS))
    edge = T0 + (100 - HORIZON_DAYS) * DAY_MS  # first ms of the oldest kept day
    assert apply(s, pv(2, edge)) == "applied"
    assert apply(s, pv(3, edge - 1)) == "too_late"
    assert s.events == 2


def test_replayed_offsets_and_duplicate_ids_change_nothing() -> None:
    s = UserState()
    assert apply(s, pv(1, T0), tp=0, offset=10) == "applied"
    snapshot = copy.deepcopy(s)
    assert apply(s, pv(1, T0), tp=0, offset=10) == "replayed"
    assert apply(s, pv(9, T0), tp=0, offset=3) == "replayed"
    assert s == snapshot
    assert apply(s, pv(1, T0), tp=0, offset=11) == "duplicate"  # same event id, new offset: producer retry
    assert s.events == 1 and s.offsets[0] == 11


def test_buckets_older_than_the_horizon_are_pruned() -> None:
    s = state_of(*(pv(i, T0 + i * DAY_MS) for i in range(100)))
    assert len(s.days) == KEPT_DAYS + 1
    assert min(s.days) == s.last_ms // DAY_MS - KEPT_DAYS
    assert s.events == 100 and features(s, s.last_ms)["lifetime_events"] == 100


def test_day_end_features_of_a_state_that_already_holds_later_events_are_exact() -> None:
    """The worker rescores a user at the end of day d once the watermark has passed it, when events of later days
    may already be folded in: the features must be those of the state that holds only the events up to d's end.
    Generated users with a quiet spell longer than the horizon (floors) and out-of-order arrival."""
    from core.days import day_end
    from features.offline import state_at
    from simulation.generator import make_users, simulate

    users = make_users(60, days=150, seed=8, prefix="pit")
    by_user: dict[str, list[Event]] = {}
    for e in simulate(users, days=150, seed=8):
        ev = decode(e["type"], orjson.dumps(e))
        assert isinstance(ev, Event)
        by_user.setdefault(ev.user_id, []).append(ev)
    checked = 0
    rng = random.Random(8)
    for events in by_user.values():
        state = UserState()
        for ev in sorted(events, key=lambda e: e.ts_ms + rng.randrange(2 * DAY_MS)):  # out of order by up to 2 days
            assert apply(state, ev) == "applied"
        last_day = state.last_ms // DAY_MS
        for day in range(max(events[0].ts_ms // DAY_MS, last_day - EXACT_DAYS), last_day + 1):
            as_of = day_end(day)
            want = features(state_at(events, as_of), as_of)
            assert features(state, as_of) == want, (events[0].user_id, day)
            checked += 1
    assert checked > 300


def test_category_mix_counts_every_category_named_and_is_point_in_time() -> None:
    """A page view, a cart add and a two-item purchase name four categories; the shares as of the end of the
    first day ignore the later purchase."""
    from core.days import day_end
    from features.categories import bucket
    from features.state import decode_state, encode_state

    events = [
        decode(
            "page_view",
            b'{"event_id":"a","user_id":"u","ts":%d,"page_type":"product","product_id":"p","category":"books"}' % T0,
        ),
        decode(
            "cart",
            b'{"event_id":"b","user_id":"u","ts":%d,"action":"add","product_id":"p","category":"books",'
            b'"quantity":1,"price":5.0}' % (T0 + 1000),
        ),
        decode(
            "purchase",
            b'{"event_id":"c","user_id":"u","ts":%d,"order_id":"o","amount":9.0,"currency":"EUR",'
            b'"items":[{"product_id":"p","category":"books","quantity":1,"price":5.0},'
            b'{"product_id":"q","category":"toys","quantity":1,"price":4.0}]}' % (T0 + 2 * DAY_MS),
        ),
    ]
    s = state_of(*events)  # type: ignore[arg-type]
    books, toys = bucket("books"), bucket("toys")
    later = features(s, s.last_ms)
    assert later[f"category_share_{books:02d}"] == 0.75 and later[f"category_share_{toys:02d}"] == 0.25
    first_day = features(s, day_end(T0 // DAY_MS))
    assert first_day[f"category_share_{books:02d}"] == 1.0 and first_day[f"category_share_{toys:02d}"] == 0.0
    assert sum(v for k, v in later.items() if k.startswith("category_share_")) == 1.0
    assert decode_state(encode_state(s)) == s
    assert features(state_of(pv(1, T0)), T0)[f"category_share_{books:02d}"] == 0.0  # names no category


def test_day_buckets_keep_their_categories_only_for_the_last_exact_days() -> None:
    """The per-day category counts exist for as-of views of the last EXACT_DAYS day ends; older days drop them
    (Redis bytes per user), while the lifetime mix keeps every count."""
    s = state_of(*(Event("page_view", f"p{d}", "u", T0 + d * DAY_MS, categories=("books",)) for d in range(20)))
    last = s.last_ms // DAY_MS
    assert {d: len(b) > 9 for d, b in s.days.items()} == {d: d >= last - EXACT_DAYS for d in s.days}
    assert sum(s.mix.values()) == 20


def test_a_state_stored_before_the_category_mix_still_decodes() -> None:
    """States written by earlier versions have no mix and 9-slot day buckets (or 6-slot ones, older still)."""
    import msgspec

    from features.state import decode_state

    old = msgspec.msgpack.encode(
        [1, T0, T0, T0, 0, 0, [1, 0, 0, 0, 0, 0], {0: [1, 0, 0, 0, 0, 0, 1, 0, 0]}, {}, b"", [0, 0, 0], 0]
    )
    s = decode_state(old)
    assert s.mix == {} and s.days == {T0 // DAY_MS: [1, 0, 0, 0, 0, 0, 1, 0, 0]}
    assert features(s, T0)["page_views_7d"] == 1.0


def test_the_latest_event_of_a_type_before_a_long_silence_is_kept_in_the_floors() -> None:
    from core.days import day_end

    before = (pv(0, T0 + 5_000), cart(1, T0 + DAY_MS + 7_000), buy(2, T0 + 2 * DAY_MS, 900))
    s = state_of(*before, pv(3, T0 + 100 * DAY_MS))
    assert s.floors == [T0 + 5_000, T0 + DAY_MS + 7_000, T0 + 2 * DAY_MS]  # their days left the buckets
    as_of = day_end(T0 // DAY_MS + 99)  # the day before the return
    want = features(state_of(*before), as_of)
    assert features(s, as_of) == want
    assert want["days_since_last_page_view"] == (as_of - T0 - 5_000) / DAY_MS and want["lifetime_events"] == 3


def test_the_fast_vector_equals_the_plain_definitions_at_event_times_and_day_ends() -> None:
    """``vector`` sums nested bands of days; the plain definitions sum each window on its own. Same floats, on
    generated histories, as of every applied event and as of the last EXACT_DAYS day ends (as_of_view's path)."""
    from features.compute import vector
    from simulation.generator import arrivals, make_users, simulate
    from tests.unit.feature_reference import reference_features

    kinds = {"page_views": "page_view", "cart_events": "cart", "purchases": "purchase"}
    states: dict[str, UserState] = {}
    checked = 0
    for rec in arrivals(simulate(make_users(60, 120, 5), 120, 5), 5, out_of_order=0.1):
        ev = decode(kinds[rec.topic], rec.value)
        assert isinstance(ev, Event)
        s = states.setdefault(ev.user_id, UserState())
        if apply(s, ev) != "applied":
            continue
        as_ofs = [s.last_ms] + [(s.last_ms // DAY_MS - k) * DAY_MS - 1 for k in range(EXACT_DAYS)]
        for as_of in as_ofs:
            want = reference_features(s, as_of)
            assert vector(s, as_of) == [want[n] for n in FEATURE_NAMES], (ev.user_id, as_of)
            checked += 1
    assert checked > 20_000
