"""Batched scoring: one call per model for a batch's rows, a ``predictions`` row per (row, task, model kind).

Two kinds of rows. An *event* row scores a user right after one of their events is applied, as of their latest
event time, with the features of the state at that point of the batch (so a backlog gives the same rows as the
live stream, whatever the batch cuts). A *time* row scores a user at a day end with no new event
(:mod:`streams.rescore`).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson

from core.contracts import Event
from core.tasks import TASKS
from models.champions import Champions
from streams.metrics import SCORING_SECONDS
from streams.segments import SEGMENT_COLUMNS, SEGMENT_FIELD, Pick, Segmenter
from streams.sinks import Columns

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
    "trigger",
    "as_of",
    "variant",
    "experiment",
)


class ModelScores(NamedTuple):
    """One model kind's scores of a batch's rows; ``model``, ``version`` and ``variant`` are one value for every row,
    or (in an experiment, where each user is served their variant's score) one per row."""

    task: str
    kind: str  # pretrained (the score served) | online | shadow (an experiment's variant not served)
    model: str | list[str]
    version: str | list[str]
    scores: list[float]
    variant: str | list[str] = ""  # champion | challenger (an experiment's rows), else ''
    experiment: str = ""

    def at(self, field: str, i: int) -> str:
        value = getattr(self, field)
        return value[i] if isinstance(value, list) else value

    def column(self, field: str, n: int, kept: list[int] | None = None) -> list[Any]:
        value = getattr(self, field)
        if not isinstance(value, list):
            return [value] * n
        return value if kept is None else [value[i] for i in kept]


class EventRow(NamedTuple):
    """A user's features right after ``event`` was applied, as of their latest event time."""

    event: Event
    as_of_ms: int
    x: list[float]
    partition: int


class TimeRow(NamedTuple):
    """A user's features at a day end ``as_of_ms``; ``last_event_ms``: their latest event at that moment."""

    user_id: str
    as_of_ms: int
    last_event_ms: int
    x: list[float]


@dataclass
class Scored:
    cache: dict[str, dict[str, bytes]] = field(default_factory=dict)  # user -> "<task>:<kind>" -> JSON
    rows: dict[str, tuple[int, int, list[float]]] = field(default_factory=dict)  # user -> (as_of, partition, x)
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # user -> task -> kind -> p
    predictions: Columns = field(default_factory=lambda: Columns.empty(len(PREDICTION_COLUMNS)))
    segments: Columns = field(default_factory=lambda: Columns.empty(len(SEGMENT_COLUMNS)))  # user_segments rows

    def add_segments(self, segmenter: Segmenter | None, picks: Sequence[Pick], latest: Collection[str]) -> None:
        """The RFM segments of ``picks`` (:mod:`streams.segments`); the latest of each user in ``latest`` is cached
        beside their scores."""
        if segmenter is not None:
            cache, self.segments = segmenter.segment(picks, latest)
            for u, blob in cache.items():
                self.cache.setdefault(u, {})[SEGMENT_FIELD] = blob


def cache_entry(score: float, model: str, version: str, as_of_ms: int, trigger: str, last_event_ms: int) -> bytes:
    """A user's latest score as the Redis score cache holds it (``<task>:<kind>`` field of :func:`score_key`)."""
    record = {
        "score": score,
        "model": model,
        "version": version,
        "as_of_ms": as_of_ms,
        "trigger": trigger,
        "last_event_ms": last_event_ms,
    }
    return orjson.dumps(record)


class Scorer:
    """Scores rows with the champion and the online model of each task, one batched call per model."""

    def __init__(
        self, champions: Champions, learner: OnlineLearner | None = None, segmenter: Segmenter | None = None
    ) -> None:
        self.champions, self.learner, self.segmenter = champions, learner, segmenter

    def experiment_of(self, task: str) -> str:
        """The id of the experiment the task's rows are scored under now ('' if none)."""
        trial = self.champions.trial(task)
        return trial[0].experiment_id if trial is not None else ""

    def _models(self, X: np.ndarray, users: Sequence[str]) -> list[ModelScores]:
        """The scores of every model kind that scores; with an experiment, both variants score every row."""
        self.champions.refresh()
        out = []
        for task in TASKS:
            champion = self.champions.get(task)
            if champion is not None:
                ref, model = champion
                with SCORING_SECONDS.labels(task, "pretrained").time():
                    scores = model.predict_proba_many(X).tolist()
                if (trial := self.champions.trial(task)) is None:
                    out.append(ModelScores(task, "pretrained", ref.model, ref.version, scores))
                else:
                    out += self._experiment(task, ref.model, ref.version, scores, trial, X, users)
            if self.learner is not None:
                online = self.learner.models[task]
                with SCORING_SECONDS.labels(task, "online").time():
                    out.append(ModelScores(task, "online", online.name, online.version, self.learner.score(task, X)))
        return out

    @staticmethod
    def _experiment(
        task: str, model: str, version: str, champion: list[float], trial: Any, X: np.ndarray, users: Sequence[str]
    ) -> list[ModelScores]:
        """The served (``pretrained``) and the other (``shadow``) variant's scores, per user's assignment."""
        exp, challenger_model = trial
        with SCORING_SECONDS.labels(task, "challenger").time():
            challenger = challenger_model.predict_proba_many(X).tolist()
        names = {"champion": (model, version, champion), "challenger": (exp.model, exp.version, challenger)}
        served = [exp.served(u) for u in users]
        other = ["champion" if v == "challenger" else "challenger" for v in served]
        out = []
        for kind, variants in (("pretrained", served), ("shadow", other)):
            rows = [names[v] for v in variants]
            out.append(ModelScores(
                task, kind, [r[0] for r in rows], [r[1] for r in rows], [r[2][i] for i, r in enumerate(rows)],
                variants, exp.experiment_id,
            ))  # fmt: skip
        return out

    def score(self, rows: Sequence[EventRow], written: Collection[str] = frozenset()) -> Scored:
        """Prediction rows, except for the events in ``written`` (their rows exist already); each user's latest
        scores (for the Redis cache) and the learner's input, from the user's last row.

        The rows are built as columns, one list per column, each the kept rows' values once per model: list
        operations rather than a tuple per row and model.
        """
        out = Scored()
        if not rows:
            return out
        X = np.array([r.x for r in rows], dtype=np.float64)
        scored_at = int(time.time() * 1000)  # DateTime64(3) columns take epoch milliseconds as they are
        kept = [i for i, r in enumerate(rows) if r.event.event_id not in written] if written else None
        keep = [rows[i] for i in kept] if kept is not None else rows
        last = {r.event.user_id: i for i, r in enumerate(rows)}  # each user's last row
        models = self._models(X, [r.event.user_id for r in rows])
        ids = [r.event.event_id for r in keep]
        users = [r.event.user_id for r in keep]
        ts = [r.event.ts_ms for r in keep]
        as_of = [r.as_of_ms for r in keep]
        n, k = len(keep), len(models)
        columns: list[list[Any]] = [ids * k, users * k, ts * k, [scored_at] * (n * k), [], [], [], [], [], [], []]
        columns += [[], []]
        for m in models:
            columns[4] += [m.task] * n
            columns[5] += [m.kind] * n
            columns[6] += m.column("model", n, kept)
            columns[7] += m.column("version", n, kept)
            columns[8] += m.scores if kept is None else [m.scores[i] for i in kept]
            columns[11] += m.column("variant", n, kept)
            columns[12] += [m.experiment] * n
            for u, i in last.items():
                r = rows[i]
                taken = out.scores.setdefault(u, {}).setdefault(m.task, {})  # for the label snapshots
                if m.experiment:  # both variants' scores of every user: a paired comparison
                    taken[m.at("variant", i)] = m.scores[i]
                if m.kind != "shadow":  # the score served, also in the cache
                    taken[m.kind] = m.scores[i]
                    out.cache.setdefault(u, {})[f"{m.task}:{m.kind}"] = cache_entry(
                        m.scores[i], m.at("model", i), m.at("version", i), r.as_of_ms, "event", r.as_of_ms
                    )
        columns[9] = ["event"] * (n * k)
        columns[10] = as_of * k
        out.predictions = Columns(columns)
        out.rows = {u: (rows[i].as_of_ms, rows[i].partition, rows[i].x) for u, i in last.items()}
        out.add_segments(self.segmenter, [(u, rows[i].as_of_ms, "event", rows[i].x) for u, i in last.items()], last)
        return out

    def score_times(self, rows: Sequence[TimeRow], cache: Collection[str] = frozenset()) -> Scored:
        """Time rows; the Redis cache gets the last row of each user in ``cache`` (those with no later event)."""
        out = Scored()
        if not rows:
            return out
        X = np.array([r.x for r in rows], dtype=np.float64)
        scored_at = int(time.time() * 1000)
        last = {r.user_id: i for i, r in enumerate(rows) if r.user_id in cache}
        models = self._models(X, [r.user_id for r in rows])
        n, k = len(rows), len(models)
        columns: list[list[Any]] = [
            [""] * (n * k),
            [r.user_id for r in rows] * k,
            [r.last_event_ms for r in rows] * k,
            [scored_at] * (n * k),
            [],
            [],
            [],
            [],
            [],
            ["time"] * (n * k),
            [r.as_of_ms for r in rows] * k,
            [],
            [],
        ]
        for m in models:
            columns[4] += [m.task] * n
            columns[5] += [m.kind] * n
            columns[6] += m.column("model", n)
            columns[7] += m.column("version", n)
            columns[8] += m.scores
            columns[11] += m.column("variant", n)
            columns[12] += [m.experiment] * n
            if m.kind == "shadow":
                continue
            for u, i in last.items():
                r = rows[i]
                out.cache.setdefault(u, {})[f"{m.task}:{m.kind}"] = cache_entry(
                    m.scores[i], m.at("model", i), m.at("version", i), r.as_of_ms, "time", r.last_event_ms
                )
        out.predictions = Columns(columns)
        out.add_segments(self.segmenter, [(r.user_id, r.as_of_ms, "time", r.x) for r in rows], last)
        return out
