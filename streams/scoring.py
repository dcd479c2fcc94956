"""Per-batch scoring: each user's fresh features, one batched model call per task, a row per applied event."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import orjson

from features.compute import FEATURE_NAMES, features
from features.state import UserState
from models.champions import Champions
from models.tasks import TASKS
from streams.contracts import EPOCH, Event
from streams.sinks import Sink

PREDICTION_COLUMNS = (
    "event_id",
    "user_id",
    "event_ts",
    "scored_at",
    "task",
    "model_kind",
    "model",
    "model_version",
    "score",
)


def score_key(user_id: str) -> str:
    """Redis hash of a user's latest scores: field ``<task>:<model kind>``."""
    return f"cs:s:{{{user_id}}}"


class Scorer:
    """Scores the users of a batch with the champion of each task and buffers prediction rows in ``sink``.

    Features are those of the user's state after the batch, as of the user's latest event: the freshest
    view of the user. Every applied event gets one row per (task, model kind).
    """

    def __init__(self, champions: Champions, sink: Sink) -> None:
        self.champions, self.sink = champions, sink

    def score(self, applied: Sequence[Event], states: dict[str, UserState]) -> dict[str, dict[str, bytes]]:
        """Buffer prediction rows; return each user's latest scores for the Redis cache."""
        if not applied:
            return {}
        self.champions.refresh()
        users = list(dict.fromkeys(ev.user_id for ev in applied))
        X = np.array([[f[n] for n in FEATURE_NAMES] for f in (features(states[u], states[u].last_ms) for u in users)])
        scored_at = dt.datetime.now(dt.UTC)
        cache: dict[str, dict[str, bytes]] = {u: {} for u in users}
        for task in TASKS:
            champion = self.champions.get(task)
            if champion is None:
                continue
            ref, model = champion
            by_user = dict(zip(users, model.predict_proba_many(X).tolist(), strict=True))
            for ev in applied:
                self.sink.add(
                    (
                        ev.event_id,
                        ev.user_id,
                        EPOCH + dt.timedelta(milliseconds=ev.ts_ms),
                        scored_at,
                        task,
                        "pretrained",
                        ref.model,
                        ref.version,
                        by_user[ev.user_id],
                    )
                )
            for u in users:
                cache[u][f"{task}:pretrained"] = orjson.dumps(
                    {
                        "score": by_user[u],
                        "model": ref.model,
                        "version": ref.version,
                        "as_of_ms": states[u].last_ms,
                    }
                )
        return {u: c for u, c in cache.items() if c}
