"""Rows on the calendar grid, the population of a calendar cutoff, and the BG/NBD baseline on a known case."""

from __future__ import annotations

import csv
import importlib.resources
import random

import numpy as np
import pytest

from core.contracts import Event
from core.days import DAY_MS, day_end
from core.tasks import label
from models.bgnbd import BGNBD, history
from models.calendar import cutoffs, grid_rows, population


def ev(user: str, day: float, kind: str = "page_view", ms: int | None = None) -> Event:
    ms = round(day * DAY_MS) if ms is None else ms
    return Event(kind, f"{user}-{ms}-{kind}", user, ms, revenue_cents=1000 if kind == "purchase" else 0)


def days_of(events: list[Event], lo_day: int = 0, hi_day: int = 1000) -> list[int]:
    return [d for d, _ in grid_rows(events, day_end(lo_day), day_end(hi_day), rate=1.0, rng=random.Random(0))]


def test_a_user_has_a_row_each_day_up_to_the_lapse_row_and_again_after_a_return() -> None:
    """Scored at every day end from the first event's day while not lapsed, the lapse row (60 days after the last
    event) included; quiet after it; scored again from the day they come back."""
    events = [ev("u", 10.5), ev("u", 12.25), ev("u", 200.5), ev("u", 201.0)]
    days = days_of(events)
    assert days == list(range(10, 73)) + list(range(200, 262))
    # the state at each row holds exactly the events up to that day end
    for day, state in grid_rows(events, 0, day_end(300), 1.0, random.Random(0)):
        assert state.last_ms == max(e.ts_ms for e in events if e.ts_ms <= day_end(day))
    # the window cuts the rows, nothing else moves
    assert days_of(events, 60, 205) == list(range(60, 73)) + list(range(200, 206))
    assert days_of([]) == []


def test_grid_labels_follow_the_task_definitions() -> None:
    """churn is 1 on a row with no event in the next 60 days, purchase 1 with a purchase in the next 30."""
    events = [ev("u", 10.5), ev("u", 40.5, "purchase"), ev("u", 95.5)]
    churn = {d: label("churn", events, day_end(d)) for d in days_of(events)}
    purchase = {d: label("purchase", events, day_end(d)) for d in days_of(events)}
    assert [d for d, y in churn.items() if y] == list(range(95, 156))  # no event after day 95 (lapse row 155)
    assert [d for d, y in purchase.items() if y] == list(range(10, 40))  # the purchase on day 40 is 30 days on


def test_which_days_are_rows_never_depends_on_later_events() -> None:
    """Cutting a history at day 130 leaves its rows up to day 130, and the draws that kept them, as they were; the
    user is quiet from about day 50 to day 150, so a row sampler that looked at the user's later return would keep
    rows in the lapsed days."""
    rng = random.Random(1)
    days = [rng.uniform(0, 50) for _ in range(20)] + [rng.uniform(150, 300) for _ in range(20)]
    events = sorted((ev("u", d) for d in days), key=lambda e: e.ts_ms)
    cut_events = [e for e in events if e.ts_ms <= day_end(130)]
    full = [d for d, _ in grid_rows(events, 0, day_end(400), 0.3, random.Random(7))]
    cut = [d for d, _ in grid_rows(cut_events, 0, day_end(400), 0.3, random.Random(7))]
    assert len([d for d in full if d <= 130]) > 10
    assert [d for d in cut if d <= 130] == [d for d in full if d <= 130]


def test_the_cutoff_population_is_every_user_with_an_event_in_the_prior_60_days() -> None:
    as_of = day_end(100)
    accepted = {
        "in": [ev("in", 3), ev("in", 99)],
        "edge_in": [ev("edge_in", 41.0)],  # 59 days and 23:59:59.999 before the cutoff
        "edge_out": [ev("edge_out", 0, ms=41 * DAY_MS - 1)],  # exactly 60 days before the cutoff: lapsed
        "late": [ev("late", 100.999)],  # the cutoff's own day counts
        "future": [ev("future", 101.0)],  # after the cutoff: not yet a user
        "returned": [ev("returned", 1), ev("returned", 120)],  # quiet for 99 days at the cutoff
    }
    assert population(accepted, accepted, as_of) == ["edge_in", "in", "late"]
    assert population(accepted, ["in", "future"], as_of) == ["in"]


def test_cutoffs_keep_their_horizon_inside_the_data() -> None:
    cs = cutoffs(5 * DAY_MS, 400 * DAY_MS)
    assert [c // DAY_MS for c in cs] == [65, 95, 125, 155, 185, 215, 245, 275, 305, 335]
    assert all(c == day_end(c // DAY_MS) and c + 60 * DAY_MS <= 400 * DAY_MS for c in cs)


def test_bgnbd_on_cdnow_gives_the_published_estimates() -> None:
    """Fader, Hardie and Lee (2005), "Counting your customers the easy way", on the CDNOW sample (2,357 customers,
    weeks): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, and a customer with x = 2, t_x = 30.43, T = 38.86 is
    expected to make 1.226 purchases in the next 39 weeks."""
    path = importlib.resources.files("lifetimes") / "datasets" / "cdnow_customers_summary.csv"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    x, t_x, T = (np.array([float(r[k]) for r in rows]) for k in ("frequency", "recency", "T"))
    model = BGNBD().fit(x, t_x, T)
    assert model.params == pytest.approx({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, abs=0.001)
    expected = model.expected(39, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert expected[0] == pytest.approx(1.226, abs=0.001)


def test_bgnbd_history_counts_purchase_days_after_the_first_event() -> None:
    accepted = {
        "a": [ev("a", 2.5), ev("a", 2.7, "purchase"), ev("a", 5.1, "purchase"), ev("a", 5.2, "purchase")],
        "b": [ev("b", 8.5, "purchase"), ev("b", 30.5, "purchase")],  # the second one is after the cutoff
    }
    x, t_x, T = history(accepted, ["a", "b", "c"], day_end(10))
    assert x.tolist() == [1.0, 0.0, 0.0]  # a: day 5 only (day 2 is the birth); b: bought on its first day
    assert t_x.tolist() == [3.0, 0.0, 0.0] and T.tolist() == [8.0, 2.0, -1.0]  # c: not born yet
