"""Progressive validation over one pass of a stream, in memory, with the worker's label rules.

Events are replayed in time order. After each event the user's features are scored by the champion and by
the online model, and if the user has no pending snapshot for a task, one is taken. Later events settle
labels (``resolve_by_event``) and the event-time watermark expires the rest (``resolve_by_watermark``).
Each settled label first scores the predictions made at snapshot time, then trains the online model.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from core.tasks import TASKS
from features.compute import FEATURE_NAMES, features
from features.offline import Accepted
from features.state import DAY_MS, UserState, apply
from models.metrics import quality
from models.online import OnlineModel, Snapshot, resolve_by_event, resolve_by_watermark
from models.protocol import ScoringModel


@dataclass
class Outcome:
    resolved_ms: list[int] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    online: list[float] = field(default_factory=list)
    champion: list[float] = field(default_factory=list)
    x: list[list[float]] = field(default_factory=list)  # snapshot features: the static champion scores them at the end

    def later_half(self) -> dict[str, dict[str, float]]:
        mid = (min(self.resolved_ms) + max(self.resolved_ms)) / 2
        keep = np.array(self.resolved_ms) >= mid
        y = np.array(self.y)[keep]
        return {
            "online": quality(y, np.array(self.online)[keep]),
            "champion": quality(y, np.array(self.champion)[keep]),
            "labels": {"n": float(keep.sum())},
        }


def run(
    accepted: Accepted,
    champions: Mapping[str, ScoringModel],
    kind: str = "logreg",
    lateness_ms: int = DAY_MS,
    batch_events: int = 1,
) -> dict[str, Outcome]:
    """Replay ``accepted`` once; ``batch_events``: the labels settled by that many events are learned together
    (``OnlineModel.learn_many``), as the worker learns a micro-batch's labels after it; 1 learns each at once."""
    events = sorted((e for evs in accepted.values() for e in evs), key=lambda e: e.ts_ms)
    states: dict[str, UserState] = {}
    pending: dict[tuple[str, str], Snapshot] = {}
    expiries: list[tuple[int, str, str]] = []
    models = {t: OnlineModel(t, kind) for t in TASKS}
    out = {t: Outcome() for t in TASKS}

    settled: dict[str, list[tuple[list[float], int]]] = {t: [] for t in TASKS}

    def settle(task: str, user: str, snap: Snapshot, y: int, at: int) -> None:
        o = out[task]
        o.resolved_ms.append(at)
        o.y.append(y)
        o.online.append(snap.scores["online"])
        o.x.append(snap.x)
        settled[task].append((snap.x, y))

    def learn() -> None:
        for task, rows in settled.items():
            if rows:
                models[task].learn_many(np.array([x for x, _ in rows]), [y for _, y in rows], [0] * len(rows))
                rows.clear()

    for i, ev in enumerate(events, start=1):
        watermark = ev.ts_ms - lateness_ms
        while expiries and expiries[0][0] < watermark:
            _, task, user = heapq.heappop(expiries)
            snap = pending.get((task, user))
            if snap is not None and (y := resolve_by_watermark(task, snap, watermark)) is not None:
                del pending[(task, user)]
                settle(task, user, snap, y, ev.ts_ms)
        for task in TASKS:
            snap = pending.get((task, ev.user_id))
            if snap is not None and (y := resolve_by_event(task, snap, ev.kind, ev.ts_ms)) is not None:
                del pending[(task, ev.user_id)]
                settle(task, ev.user_id, snap, y, ev.ts_ms)
        if i % batch_events == 0:  # the labels this event settled are learned before it is scored
            learn()
        state = states.setdefault(ev.user_id, UserState())
        apply(state, ev)
        f = features(state, state.last_ms)
        x = [f[n] for n in FEATURE_NAMES]
        for task in TASKS:
            if (task, ev.user_id) not in pending:
                pending[(task, ev.user_id)] = Snapshot(state.last_ms, x, {"online": models[task].predict_proba_one(f)})
                heapq.heappush(expiries, (state.last_ms + TASKS[task].horizon_days * DAY_MS, task, ev.user_id))
    for task, o in out.items():  # the champion does not change during the pass: score its snapshots in one batch
        o.champion = champions[task].predict_proba_many(np.array(o.x)).tolist() if o.x else []
    return out
