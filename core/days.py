"""Event time in UTC days: windows follow the event's timestamp, never the wall clock.

Scores that follow time are taken on a calendar grid: at the end of each UTC day (its last millisecond), so a
score "as of day d" sees every event of day d and none after. A user is scored at the end of every day from the
day of their first event while they are not lapsed; the first day end at least ``LAPSE_DAYS`` after their last
event is their *lapse row*, and then they are not scored again until they act.

>>> (3 * DAY_MS + 5) // DAY_MS  # the UTC day number of an epoch-milliseconds timestamp
3
>>> day_end(3) == 4 * DAY_MS - 1, grid_end(3 * DAY_MS + 5) == day_end(3)
(True, True)
>>> lapsed(day_end(70), last_ms=10 * DAY_MS + 5), lapsed(day_end(69), last_ms=10 * DAY_MS + 5)
(True, False)
>>> [d for d in range(8, 75) if scored_on(d, first_ms=9 * DAY_MS, last_ms=10 * DAY_MS + 5)] == list(range(9, 71))
True
"""

DAY_MS = 86_400_000
LAPSE_DAYS = 60  # a user quiet this long is lapsed: the churn horizon


def day_end(day: int, every_ms: int = DAY_MS) -> int:
    """The last millisecond of grid step ``day`` (a UTC day when ``every_ms`` is a day)."""
    return (day + 1) * every_ms - 1


def grid_end(ts_ms: int, every_ms: int = DAY_MS) -> int:
    """The end of the grid step that holds ``ts_ms``: the first grid point at or after it."""
    return day_end(ts_ms // every_ms, every_ms)


def lapsed(as_of_ms: int, last_ms: int) -> bool:
    """Quiet for ``LAPSE_DAYS`` or more at ``as_of_ms``."""
    return as_of_ms - last_ms >= LAPSE_DAYS * DAY_MS


def scored_on(day: int, first_ms: int, last_ms: int) -> bool:
    """Is a user whose first and latest events up to the end of ``day`` are ``first_ms`` and ``last_ms`` scored
    at that day's end? From their first day up to and including the lapse row."""
    end = day_end(day)
    return first_ms <= end and not lapsed(end - DAY_MS, last_ms)
