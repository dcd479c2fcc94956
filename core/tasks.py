"""The two prediction tasks and their labels (see docs/models.md).

- churn(user, as_of) = 1 if the user has no event of any type in (as_of, as_of + 60 days];
- purchase(user, as_of) = 1 if the user has at least one purchase in (as_of, as_of + 30 days].

>>> from core.contracts import Event
>>> evs = [Event("page_view", "a", "u", 0), Event("purchase", "b", "u", 10 * DAY_MS)]
>>> label("purchase", evs, as_of_ms=0), label("churn", evs, as_of_ms=0), label("churn", evs, as_of_ms=10 * DAY_MS)
(1, 0, 1)
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from core.contracts import Event
from core.days import DAY_MS


@dataclass(frozen=True)
class Task:
    name: str
    horizon_days: int


TASKS = {"churn": Task("churn", 60), "purchase": Task("purchase", 30)}


def label(task: str, events: Sequence[Event], as_of_ms: int, ts: Sequence[int] | None = None) -> int:
    """The label of ``task`` for a user's events (sorted by ts) at ``as_of_ms``; uses only events after as_of."""
    horizon = TASKS[task].horizon_days * DAY_MS
    ts = ts if ts is not None else [e.ts_ms for e in events]
    lo, hi = bisect.bisect_right(ts, as_of_ms), bisect.bisect_right(ts, as_of_ms + horizon)
    if task == "churn":
        return int(hi == lo)
    return int(any(events[i].kind == "purchase" for i in range(lo, hi)))
