"""Rows on the calendar grid (``core/days.py``): the days a user is scored on, and the calendar cutoffs.

The stream scores a user at the end of every UTC day from their first event while they are not lapsed, up to and
including the lapse row (:func:`core.days.scored_on`). :func:`grid_rows` walks a user's days in that order and
yields the kept ones with the state as of each day end, so training rows follow what the stream will score.
Whether a day is a row depends only on the events up to its end and on one seeded draw per scored day: never on
what follows.

A *calendar cutoff* is one day end at which every user with an event in the prior 60 days (not lapsed) is scored:
"who is at risk today?". :func:`cutoffs` spaces them every ``every_days`` so that each one's 60-day horizon ends
inside the data.

>>> from core.contracts import Event
>>> evs = [Event("page_view", "a", "u", 9 * DAY_MS + 5), Event("page_view", "b", "u", 10 * DAY_MS + 5)]
>>> days = [day for day, _ in grid_rows(evs, 0, day_end(100), rate=1.0, rng=random.Random(0))]
>>> days[0], days[-1], len(days)  # from the first event's day to the lapse row, 60 days after the last
(9, 70, 62)
>>> [day for day, _ in grid_rows(evs, day_end(20), day_end(22), rate=1.0, rng=random.Random(0))]
[20, 21, 22]
>>> population({"u": evs, "v": evs[:1]}, ["u", "v"], day_end(69))  # v's last event is 60 days before
['u']
>>> [c // DAY_MS for c in cutoffs(0, 200 * DAY_MS, every_days=30, warmup_days=60)]
[60, 90, 120]
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Iterator, Sequence

from core.contracts import Event
from core.days import DAY_MS, LAPSE_DAYS, day_end, lapsed, scored_on
from features.state import UserState, apply


def grid_rows(
    events: Sequence[Event], lo_ms: int, hi_ms: int, rate: float, rng: random.Random
) -> Iterator[tuple[int, UserState]]:
    """(day, state as of ``day_end(day)``) for each day whose end is in [lo_ms, hi_ms], on which the user is scored
    (:func:`core.days.scored_on`), kept by a draw of probability ``rate`` from ``rng``.

    The state is shared and updated in place between yields: read it before asking for the next row.
    """
    if not events:
        return
    state, j = UserState(), 0
    first_ms = events[0].ts_ms
    day = max(first_ms // DAY_MS, lo_ms // DAY_MS)
    while day_end(day) <= hi_ms:
        end = day_end(day)
        if end < lo_ms:
            day += 1
            continue
        while j < len(events) and events[j].ts_ms <= end:
            apply(state, events[j])
            j += 1
        last_ms = events[j - 1].ts_ms
        if not scored_on(day, first_ms, last_ms):  # lapsed: skip to the day of the next event, if any
            if j == len(events):
                return
            day = events[j].ts_ms // DAY_MS
            continue
        if rng.random() < rate:
            yield day, state
        day += 1


def scored_days(events: Sequence[Event], lo_ms: int, hi_ms: int) -> int:
    """How many days with an end in [lo_ms, hi_ms] the user is scored on (the candidates of :func:`grid_rows`).

    >>> from core.contracts import Event
    >>> scored_days([Event("page_view", "a", "u", 9 * DAY_MS)], 0, day_end(1000))
    61
    """
    return sum(1 for _ in grid_rows(events, lo_ms, hi_ms, 1.0, random.Random(0)))


def population(accepted: dict[str, list[Event]], users: Iterable[str], as_of_ms: int) -> list[str]:
    """The users, sorted, with an event in the 60 days up to ``as_of_ms`` (those not lapsed at it)."""
    out = []
    for user in sorted(users):
        events = accepted.get(user, [])
        i = bisect.bisect_right(events, as_of_ms, key=lambda e: e.ts_ms)
        if i and not lapsed(as_of_ms, events[i - 1].ts_ms):
            out.append(user)
    return out


def cutoffs(first_ms: int, last_ms: int, every_days: int = 30, warmup_days: int = 60) -> list[int]:
    """Day ends every ``every_days`` from ``warmup_days`` after the first event's day, while the churn horizon
    (``LAPSE_DAYS``, the longer one) after the cutoff is inside the data (up to ``last_ms``)."""
    out, day = [], first_ms // DAY_MS + warmup_days
    while day_end(day) + LAPSE_DAYS * DAY_MS <= last_ms:
        out.append(day_end(day))
        day += every_days
    return out
