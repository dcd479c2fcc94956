"""Point-in-time data sets: features as of sampled events and calendar days, labels only from after as_of.

Rows are taken at event times, because the stream scores users right after their events, and on the calendar
grid (``models/calendar.py``): the end of each day on which the stream rescores a user who has not acted, up to
the lapse row 60 days after their last event. One model per task serves both paths, so it learns what silence
means. Each row's features come from the same fold and the same feature function as the stream. Users are
split by a hash of their id into training (half), validation and test (a quarter each), so no user is in two
sets; the champion is picked on validation and judged on test. All three use the as_of points from the first
week's end to the last day whose labels are complete (a time split as well would cost most of the evaluation
users, and with them the precision of every test figure).

Which rows are kept depends only on a random draw per event, and per scored day, never on what follows: each
event is a row with one fixed probability per split, and so is each day the user is scored on (one draw per
day, in the user's own seeded sequence). Choosing, say, 12 of each user's events instead would favour the
events of users with few events after them, i.e. of users about to leave, and the rows' labels would no longer
follow P(label | history): the oracle (``models/oracle.py``) was miscalibrated on such rows.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from core.days import day_end
from core.tasks import TASKS, label
from features.compute import FEATURE_NAMES, features
from features.offline import Accepted
from features.state import DAY_MS, UserState, apply
from models.calendar import grid_rows, scored_days

EVAL_ROWS_FACTOR = 4  # validation and test take this many times the training rows per user
GRID_ROWS_FACTOR = 2  # calendar-grid rows per event-time row, about: silence takes more rows to learn than activity


@dataclass
class Split:
    X: np.ndarray
    y: np.ndarray
    users: list[str] = field(default_factory=list)
    as_of: list[int] = field(default_factory=list)
    trigger: list[str] = field(default_factory=list)  # "event" or "time" (a calendar-grid row)

    def only(self, trigger: str) -> Split:
        """The rows of one trigger."""
        keep = np.array([t == trigger for t in self.trigger], dtype=bool).reshape(len(self.trigger))
        users = [u for u, k in zip(self.users, keep, strict=True) if k]
        as_of = [t for t, k in zip(self.as_of, keep, strict=True) if k]
        return Split(self.X[keep], self.y[keep], users, as_of, [trigger] * len(users))


@dataclass
class TrainingSet:
    task: str
    train: Split
    validation: Split
    test: Split
    window: dict[str, int]
    fingerprint: str


def user_split(user_id: str, seed: int = 0) -> str:
    """``train`` (1/2), ``validation`` (1/4) or ``test`` (1/4), from a hash of the user id.

    >>> [user_split(f"user-{i}") for i in range(6)]
    ['train', 'test', 'test', 'train', 'train', 'train']
    """
    h = int.from_bytes(hashlib.sha256(f"{seed}:{user_id}".encode()).digest()[:8], "big") / 2**64
    return "train" if h < 0.5 else "validation" if h < 0.75 else "test"


def _rows(
    accepted: Accepted, users: Iterable[str], lo_ms: int, hi_ms: int, rate: float, seed: int
) -> Iterator[tuple[str, int, dict]]:
    """(user, as_of, features) at each event time in [lo_ms, hi_ms] kept by a draw of probability ``rate``."""
    for user in sorted(users):
        events = accepted[user]
        rng = random.Random(f"{seed}:{user}")
        state, j = UserState(), 0
        for i, e in enumerate(events):
            if not lo_ms <= e.ts_ms <= hi_ms or rng.random() >= rate:
                continue
            while j <= i:
                apply(state, events[j])
                j += 1
            # all events at the same ms as the sampled one are part of "as of" too
            while j < len(events) and events[j].ts_ms == e.ts_ms:
                apply(state, events[j])
                j += 1
            yield user, e.ts_ms, features(state, e.ts_ms)


def _grid(
    accepted: Accepted, users: Iterable[str], lo_ms: int, hi_ms: int, rate: float, seed: int
) -> Iterator[tuple[str, int, dict]]:
    """(user, as_of, features) at the end of each day in [lo_ms, hi_ms] the user is scored on, kept by a draw of
    probability ``rate``."""
    for user in sorted(users):
        rng = random.Random(f"{seed}:grid:{user}")
        for day, state in grid_rows(accepted[user], lo_ms, hi_ms, rate, rng):
            yield user, day_end(day), features(state, day_end(day))


def _grid_rate(accepted: Accepted, users: list[str], lo: int, hi: int, per_user: float) -> float:
    """One probability per scored day for all ``users``: about ``per_user`` grid rows per user with such days."""
    counts = [scored_days(accepted[u], lo, hi) for u in users]
    return min(1.0, per_user * sum(n > 0 for n in counts) / max(1, sum(counts)))


def _rate(accepted: Accepted, users: list[str], lo: int, hi: int, per_user: float) -> float:
    """One row probability for all ``users``: about ``per_user`` rows per user with events in [lo, hi].

    It comes from the count of all their events in the window, so no single user's future moves it by more than
    that user's share of the events.
    """
    counts = [sum(lo <= e.ts_ms <= hi for e in accepted[u]) for u in users]
    return min(1.0, per_user * sum(n > 0 for n in counts) / max(1, sum(counts)))


def build(
    accepted: Accepted, task: str, per_user: int = 12, seed: int = 0, grid_per_user: float | None = None
) -> TrainingSet:
    """Rows at as_of in [first day + 7, last day - 60 days] (the same for both tasks): about ``per_user`` event rows
    and ``grid_per_user`` (default: ``GRID_ROWS_FACTOR * per_user``) calendar-grid rows per training user,
    ``EVAL_ROWS_FACTOR`` times as many per validation and test user."""
    grid_per_user = GRID_ROWS_FACTOR * per_user if grid_per_user is None else grid_per_user
    first = min(e.ts_ms for evs in accepted.values() for e in evs)
    last = max(e.ts_ms for evs in accepted.values() for e in evs)
    lo, hi = first + 7 * DAY_MS, last - TASKS["churn"].horizon_days * DAY_MS
    if hi <= lo:
        raise ValueError("not enough history: the labels need 60 days after the first week; generate more days")
    group: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for user in accepted:
        group[user_split(user, seed)].append(user)
    ts_cache = {u: [e.ts_ms for e in evs] for u, evs in accepted.items()}

    def split(users: list[str], factor: int, s: int) -> Split:
        rate = _rate(accepted, users, lo, hi, per_user * factor)
        at_events = _rows(accepted, users, lo, hi, rate, s)
        on_grid = _grid(accepted, users, lo, hi, _grid_rate(accepted, users, lo, hi, grid_per_user * factor), s)
        out_users, as_of, trigger, X, y = [], [], [], [], []
        for kind, rows in (("event", at_events), ("time", on_grid)):
            for user, t, f in rows:
                out_users.append(user)
                as_of.append(t)
                trigger.append(kind)
                X.append([f[n] for n in FEATURE_NAMES])
                y.append(label(task, accepted[user], t, ts_cache[user]))
        X_arr = np.asarray(X, dtype=np.float64).reshape(len(X), len(FEATURE_NAMES))
        return Split(X_arr, np.asarray(y, dtype=np.int8), out_users, as_of, trigger)

    train = split(group["train"], 1, seed)
    validation = split(group["validation"], EVAL_ROWS_FACTOR, seed + 1)
    test = split(group["test"], EVAL_ROWS_FACTOR, seed + 2)
    digest = hashlib.sha256()
    for arr in (train.X, train.y, validation.X, validation.y, test.X, test.y):
        digest.update(np.ascontiguousarray(arr).tobytes())
    window = {"from_ms": lo, "to_ms": hi}
    return TrainingSet(task, train, validation, test, window, digest.hexdigest()[:16])
