"""Per-batch scoring: each user's fresh features, one batched call per model, a row per applied event."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import orjson

from core.contracts import Event
from core.tasks import TASKS
from features.compute import FEATURE_NAMES, features
from features.state import UserState
from models.champions import Champions
from streams.metrics import SCORING_SECONDS

if TYPE_CHECKING:
    from streams.online import OnlineLearner

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


@dataclass
class Scored:
    cache: dict[str, dict[str, bytes]] = field(default_factory=dict)  # user -> "<task>:<kind>" -> JSON
    rows: dict[str, tuple[int, int, list[float]]] = field(default_factory=dict)  # user -> (as_of, partition, x)
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # user -> task -> kind -> p
    predictions: list[tuple] = field(default_factory=list)  # ``predictions`` rows, in PREDICTION_COLUMNS order


class Scorer:
    """Scores the users of a batch with the champion and the online model of each task.

    Features are those of the user's state after the batch, as of the user's latest event: the freshest
    view of the user. Every applied event gets one ``predictions`` row per (task, model kind).
    """

    def __init__(self, champions: Champions, learner: OnlineLearner | None = None) -> None:
        self.champions, self.learner = champions, learner

    def score(
        self,
        applied: Sequence[Event],
        states: dict[str, UserState],
        partitions: dict[str, int] | None = None,
        written: set[str] | frozenset[str] = frozenset(),
    ) -> Scored:
        """Prediction rows, except for the events in ``written`` (their rows exist already), the latest scores
        (for the Redis cache) and the learner's input."""
        out = Scored()
        if not applied:
            return out
        self.champions.refresh()
        users = list(dict.fromkeys(ev.user_id for ev in applied))
        X = np.array([[f[n] for n in FEATURE_NAMES] for f in (features(states[u], states[u].last_ms) for u in users)])
        scored_at = int(time.time() * 1000)  # DateTime64(3) columns take epoch milliseconds as they are
        heads = [(ev.event_id, ev.user_id, ev.ts_ms, scored_at) for ev in applied if ev.event_id not in written]
        cache: dict[str, dict[str, bytes]] = {u: {} for u in users}
        for task in TASKS:
            models: list[tuple[str, str, str, list[float]]] = []  # (kind, name, version, scores)
            champion = self.champions.get(task)
            if champion is not None:
                ref, model = champion
                with SCORING_SECONDS.labels(task, "pretrained").time():
                    models.append(("pretrained", ref.model, ref.version, model.predict_proba_many(X).tolist()))
            if self.learner is not None:
                online = self.learner.models[task]
                with SCORING_SECONDS.labels(task, "online").time():
                    models.append(("online", online.name, online.version, self.learner.score(task, X)))
            for kind, name, version, scores in models:
                by_user = dict(zip(users, scores, strict=True))
                tail = (task, kind, name, version)
                out.predictions.extend([head + tail + (by_user[head[1]],) for head in heads])
                for u in users:
                    cache[u][f"{task}:{kind}"] = orjson.dumps(
                        {
                            "score": by_user[u],
                            "model": name,
                            "version": version,
                            "as_of_ms": states[u].last_ms,
                        }
                    )
                    out.scores.setdefault(u, {}).setdefault(task, {})[kind] = by_user[u]
        out.cache = {u: c for u, c in cache.items() if c}
        out.rows = {u: (states[u].last_ms, (partitions or {}).get(u, 0), X[i].tolist()) for i, u in enumerate(users)}
        return out
