"""When a user is scored by time: the grid points (day ends, :mod:`core.days`) after their latest time score.

A user is scored at every grid point from the one that ends the day of their first event while not lapsed; the
first grid point 60 or more days after their latest event is the lapse row, and the next one is at the end of the
day of their next event. Pure functions of the state: the worker keeps each user's next grid point in a per-partition
index and scores them when the partition's event-time watermark passes it.

>>> from core.contracts import Event
>>> from features.state import UserState, apply
>>> s = UserState()
>>> _ = apply(s, Event("page_view", "e1", "u", 10 * DAY_MS + 5))
>>> [p // DAY_MS for p in due(s, upto_ms=13 * DAY_MS)]  # the ends of days 10, 11 and 12
[10, 11, 12]
>>> len(due(s, upto_ms=200 * DAY_MS)), next_due(s) == day_end(10)  # up to the lapse row, 60 days after day 10
(61, True)
>>> s.rescored_ms = day_end(70)  # the lapse row is written: nothing more until the user acts
>>> next_due(s) is None
True
>>> _ = apply(s, Event("purchase", "e2", "u", 90 * DAY_MS + 5))
>>> next_due(s) == day_end(90)
True
"""

from __future__ import annotations

from collections.abc import Iterator

from core.days import DAY_MS, day_end, grid_end, lapsed
from features.compute import as_of_view
from features.state import CART_ADDS, CART_REMOVES, PAGE_VIEWS, PURCHASES, UserState


def _first_event_after(state: UserState, ms: int) -> int | None:
    """The start of the first day after ``ms``'s day that holds an event (None: no event after ``ms``)."""
    if state.last_ms <= ms:
        return None
    after = [
        d
        for d, b in state.days.items()
        if d > ms // DAY_MS and b[PAGE_VIEWS] + b[CART_ADDS] + b[CART_REMOVES] + b[PURCHASES]
    ]
    return min(after) * DAY_MS if after else None


def scored_points(state: UserState, every_ms: int = DAY_MS) -> Iterator[int]:
    """The grid points after ``state.rescored_ms`` at which the user is scored, oldest first; ends when the user
    is lapsed with no later event in the state."""
    if not state.events:
        return
    point = max(grid_end(state.first_ms, every_ms), state.rescored_ms + every_ms if state.rescored_ms else 0)
    while True:
        last = state.last_ms if state.last_ms <= point else as_of_view(state, point).last_ms
        if lapsed(point - every_ms, last):  # the lapse row was the previous point: wait for the next event
            start = _first_event_after(state, point - every_ms)
            if start is None:
                return
            point = grid_end(start, every_ms)
            continue
        yield point
        point += every_ms


def due(state: UserState, upto_ms: int, every_ms: int = DAY_MS) -> list[int]:
    """The grid points at or before ``upto_ms`` (the watermark) to score the user at now."""
    out = []
    for point in scored_points(state, every_ms):
        if point > upto_ms:
            break
        out.append(point)
    return out


def next_due(state: UserState, every_ms: int = DAY_MS) -> int | None:
    """The next grid point to score the user at (None: lapsed, until they act)."""
    return next(scored_points(state, every_ms), None)


__all__ = ["day_end", "due", "next_due", "scored_points"]
