"""Weekly activity flags, the silver table's retention view of a user (ClickHouse ``user_features_daily``).

``active_wN`` is 1 when the user had an event in the N-th 7-day week before ``as_of``: week 1 is the UTC day of
``as_of`` and the 6 days before it, week 2 the 7 days before those, up to week 8 (56 days, inside the state's
60-day horizon). Days after ``as_of`` never count, so the flags are exact as of any time the state covers.

>>> from core.contracts import Event
>>> from core.days import DAY_MS
>>> from features.state import UserState, apply
>>> s = UserState()
>>> for day in (100, 93, 80, 101):
...     _ = apply(s, Event("page_view", f"e{day}", "u", day * DAY_MS + 60_000))
>>> weekly_activity(s, 101 * DAY_MS - 1)  # the end of day 100: day 101 is not in yet
[1, 1, 1, 0, 0, 0, 0, 0]
"""

from __future__ import annotations

from core.days import DAY_MS
from features.state import UserState

WEEKS = 8
WEEK_COLUMNS: tuple[str, ...] = tuple(f"active_w{n}" for n in range(1, WEEKS + 1))


def weekly_activity(state: UserState, as_of_ms: int) -> list[int]:
    """The ``WEEKS`` flags (week 1 first) as of ``as_of_ms``."""
    as_of_day = as_of_ms // DAY_MS
    flags = [0] * WEEKS
    for day in state.days:
        age = as_of_day - day
        if 0 <= age < 7 * WEEKS:
            flags[age // 7] = 1
    return flags
