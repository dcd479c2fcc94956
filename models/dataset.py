"""Point-in-time training sets: features as of sampled events, labels only from after as_of.

Rows are sampled at event times, because the stream scores users right after their events, and each row's
features come from :func:`features.offline.state_at`, i.e. the same fold and the same feature function as
the stream. The split is by time, with one horizon between the last training as_of and the first test as_of,
so no training label looks into the test period.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from features.compute import FEATURE_NAMES, features
from features.offline import Accepted
from features.state import DAY_MS, UserState, apply
from models.tasks import TASKS, label


@dataclass
class Split:
    X: np.ndarray
    y: np.ndarray
    users: list[str] = field(default_factory=list)
    as_of: list[int] = field(default_factory=list)


@dataclass
class TrainingSet:
    task: str
    train: Split
    test: Split
    window: dict[str, int]
    fingerprint: str


def _rows(accepted: Accepted, lo_ms: int, hi_ms: int, per_user: int, seed: int) -> Iterator[tuple[str, int, dict]]:
    """(user, as_of, features) at up to ``per_user`` sampled event times in [lo_ms, hi_ms] per user."""
    rng = random.Random(seed)
    for user in sorted(accepted):
        events = accepted[user]
        idx = [i for i, e in enumerate(events) if lo_ms <= e.ts_ms <= hi_ms]
        if not idx:
            continue
        chosen = sorted(rng.sample(idx, min(per_user, len(idx))))
        state, j = UserState(), 0
        for i in chosen:
            while j <= i:
                apply(state, events[j])
                j += 1
            # all events at the same ms as the sampled one are part of "as of" too
            while j < len(events) and events[j].ts_ms == events[i].ts_ms:
                apply(state, events[j])
                j += 1
            yield user, events[i].ts_ms, features(state, events[i].ts_ms)


def build(accepted: Accepted, task: str, per_user: int = 6, seed: int = 0) -> TrainingSet:
    """Train on as_of in [first day + 7, test start - horizon]; test on the last 30 days that still have labels."""
    horizon = TASKS[task].horizon_days * DAY_MS
    first = min(e.ts_ms for evs in accepted.values() for e in evs)
    last = max(e.ts_ms for evs in accepted.values() for e in evs)
    label_end = last - TASKS["churn"].horizon_days * DAY_MS  # the same test window for both tasks
    test_lo = label_end - 30 * DAY_MS
    train_lo, train_hi = first + 7 * DAY_MS, test_lo - horizon
    if train_hi <= train_lo:
        raise ValueError("not enough history for a time split with a gap of one horizon: generate more days")
    ts_cache = {u: [e.ts_ms for e in evs] for u, evs in accepted.items()}

    def split(lo: int, hi: int, s: int) -> Split:
        users, as_of, X, y = [], [], [], []
        for user, t, f in _rows(accepted, lo, hi, per_user, s):
            users.append(user)
            as_of.append(t)
            X.append([f[n] for n in FEATURE_NAMES])
            y.append(label(task, accepted[user], t, ts_cache[user]))
        return Split(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int8), users, as_of)

    train, test = split(train_lo, train_hi, seed), split(test_lo, label_end, seed + 1)
    digest = hashlib.sha256()
    for arr in (train.X, train.y, test.X, test.y):
        digest.update(np.ascontiguousarray(arr).tobytes())
    window = {"train_from_ms": train_lo, "train_to_ms": train_hi, "test_from_ms": test_lo, "test_to_ms": label_end}
    return TrainingSet(task, train, test, window, digest.hexdigest()[:16])
