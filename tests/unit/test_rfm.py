"""RFM segments on hand-made users: their measures read from the real state and feature function, the quintile
scores and the named segment each user lands in."""

from __future__ import annotations

import pytest

from core.contracts import Event
from core.days import DAY_MS
from features.compute import vector
from features.rfm import SEGMENTS, Boundaries, of_vector, scores, segment
from features.state import UserState, apply

T0 = 20_000 * DAY_MS
NOW = T0 + 100 * DAY_MS


def user(name: str, visits_days_ago: list[int], purchases: list[tuple[int, int]]) -> UserState:
    """A state from page views ``visits_days_ago`` and (days ago, cents) purchases, before ``NOW``."""
    s = UserState()
    evs = [Event("page_view", f"{name}-v{i}", name, NOW - d * DAY_MS) for i, d in enumerate(visits_days_ago)]
    evs += [Event("purchase", f"{name}-p{i}", name, NOW - d * DAY_MS, revenue_cents=c) for i, (d, c) in
            enumerate(purchases)]  # fmt: skip
    for ev in sorted(evs, key=lambda e: e.ts_ms):
        assert apply(s, ev) == "applied"
    return s


# the active population these users are cut against: recency 1..50 days, 0..10 purchases, 0..1000 revenue
CUTS = Boundaries.fit(
    recency=[1, 2, 4, 6, 10, 15, 20, 30, 40, 50],
    frequency=[0, 0, 1, 1, 2, 2, 3, 5, 8, 10],
    monetary=[0, 0, 20, 40, 60, 90, 150, 300, 600, 1000],
    version="rfm-test",
    as_of_ms=NOW,
)

USERS = {
    # name: (page views days ago, purchases (days ago, cents), expected (R, F, M), expected segment)
    "champion": ([0, 3, 9], [(0, 30_000), (5, 40_000), (12, 50_000), (20, 30_000), (30, 40_000), (60, 20_000)],
                 (5, 5, 5), "Champions"),
    "newcomer": ([0, 1], [], (5, 1, 1), "New"),
    "fading_big_spender": ([45, 47], [(45, 50_000), (50, 60_000), (70, 40_000), (80, 30_000), (90, 20_000),
                                      (95, 10_000), (96, 10_000), (97, 10_000), (98, 10_000), (99, 10_000)],
                           (1, 5, 5), "Can't Lose"),
    "gone_browser": ([55, 59], [], (1, 1, 1), "Hibernating"),
    "middling": ([12, 14], [(12, 5_000), (30, 2_000)], (3, 3, 3), "Need Attention"),
    "one_recent_buy": ([4], [(4, 2_000)], (4, 2, 2), "Potential Loyalists"),
    "recent_browser": ([5, 9], [], (4, 1, 1), "Promising"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(USERS))
def test_hand_made_users_land_in_their_segment(name: str) -> None:
    visits, purchases, expected_rfm, expected_segment = USERS[name]
    s = user(name, visits, purchases)
    got = of_vector(CUTS, vector(s, NOW), NOW, "time")
    assert (got.r, got.f, got.m) == expected_rfm
    assert got.segment == expected_segment
    assert got.version == "rfm-test" and got.as_of_ms == NOW


def test_recency_follows_time_without_events() -> None:
    """The same state scored later has a worse (never better) recency score: a quiet user slides down."""
    s = user("quiet", [0], [(0, 9_000)])
    rs = [of_vector(CUTS, vector(s, NOW + d * DAY_MS), NOW + d * DAY_MS, "time").r for d in (0, 5, 10, 25, 55)]
    assert rs == [5, 4, 3, 2, 1]


def test_every_cell_of_the_grid_is_a_named_segment_and_every_segment_is_used() -> None:
    used = {segment(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    assert used == set(SEGMENTS)


def test_scores_at_the_cuts_and_beyond() -> None:
    b = Boundaries("v", 0, 10, (2.0, 5.0, 10.0, 20.0), (1.0, 2.0, 3.0, 4.0), (10.0, 20.0, 30.0, 40.0))
    assert scores(b, 0.0, 0, 0) == (5, 1, 1)
    assert scores(b, 2.0, 1, 10) == (4, 1, 1)  # on a cut: the lower score
    assert scores(b, 100.0, 9, 99) == (1, 5, 5)


def test_boundaries_round_trip_and_refuse_an_empty_population() -> None:
    assert Boundaries.from_json(CUTS.to_json()) == CUTS
    with pytest.raises(ValueError, match="no active user"):
        Boundaries.fit([], [], [], "v", 0)
