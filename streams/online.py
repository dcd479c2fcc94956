"""Delayed labels in the worker: pending snapshots in Redis, resolution by events and by the event-time
watermark (an expiry index per partition, a Redis sorted set), progressive validation, then learning, with
each resolved label learned exactly once across crashes.

Exactly once. A label is resolved in one Redis transaction (``MULTI``/``EXEC``, ``WATCH``ing the users'
snapshot keys) that removes its snapshot, appends the label to its partition's label log and counts it; then
the model in memory learns the log's new entries. A checkpoint stores each model with, per partition, the
last log entry it includes and the watermark, and only once it is written are those entries trimmed. On restart
the checkpoint is restored and the entries after its positions are learned again. So a SIGKILL at any point
loses no label and learns none twice: at any moment, the labels in the checkpoint plus those in the logs after
its positions are exactly the labels resolved. The worker resolves a batch's labels before it writes the users' states
(see :mod:`streams.processor`), so no event that settles a label can be acknowledged without settling it.

Keys: see :mod:`streams.labels`.

One worker's labels are exact. The checkpoint is one per task: with several workers, each learns the labels of
its partitions into its own copy of the model and the last checkpoint written wins (docs/reliability.md).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from core.contracts import Event
from core.keys import WATERMARK_KEY, checkpoint_key, counts_key, expiry_key, log_key, pending_key
from core.tasks import TASKS
from features.compute import FEATURE_NAMES
from features.state import DAY_MS
from models.alerts import LossWatch
from models.online import OnlineModel, Snapshot, resolve_by_event, resolve_by_watermark
from streams import labels as label_log
from streams.labels import Entries, Label, ResolvedScores, _dec, _enc, _label_dec, metric_rows, queue_labels, stream_id
from streams.sinks import Sink

log = logging.getLogger(__name__)


class OnlineLearner:
    def __init__(
        self,
        redis: aioredis.Redis,
        models: dict[str, OnlineModel],
        metrics: Sink,
        key: bytes,
        lateness_ms: int = DAY_MS,
        window: int = 2000,
        resolved: Sink | None = None,
    ) -> None:
        self.redis, self.models, self.metrics_sink, self.key = redis, models, metrics, key
        self.resolved = ResolvedScores(resolved)  # ClickHouse `resolved_scores`: each label's scores, for the dashboard
        self.lateness_ms, self.window = lateness_ms, window
        self.watermark_ms = 0
        self.expired_to, self.behind = 0, False  # the watermark the expiry index was last processed up to
        self.positions: dict[int, tuple[int, int]] = {}  # partition -> last label log entry learned
        self.logged_to: set[int] = set()  # partitions whose logs this learner has written to
        self.validation: dict[tuple[str, str], deque[tuple[int, float]]] = {}
        self.labels: dict[tuple[str, str], int] = {}
        self.losses: LossWatch | None = None  # set by the worker (streams.drift_watch)
        self.experiment_of: Callable[[str], str] = lambda task: ""  # the task's running experiment (the worker's)

    # ---- scoring ----------------------------------------------------------------------------------------------
    def score(self, task: str, X: np.ndarray) -> list[float]:
        return list(self.models[task].predict_proba_many(X).tolist())

    # ---- labels -----------------------------------------------------------------------------------------------
    def _learn(self, labels: Sequence[Label]) -> None:
        """Progressive validation first (the scores the snapshots were taken with), then each task's model learns
        its labels, in order, as one batch."""
        by_task: dict[str, list[Label]] = {}
        for label in labels:
            task, y = label.task, label.y
            for kind, p in label.snap.scores.items():
                q = self.validation.setdefault((task, kind), deque(maxlen=self.window))
                q.append((y, p))
                self.labels[(task, kind)] = self.labels.get((task, kind), 0) + 1
                if self.losses is not None:  # performance drift: ADWIN on the progressive-validation loss
                    self.losses.update(task, kind, y, p, label.snap.as_of_ms, self.expired_to)
            by_task.setdefault(task, []).append(label)
        width = len(FEATURE_NAMES)
        for task, mine in by_task.items():
            model = self.models[task]
            if other := [lab for lab in mine if len(lab.snap.x) != width]:  # taken before a feature list change
                log.warning("%d %s labels snapshot another feature list: counted, not learned", len(other), task)
                model.count([lab.hash for lab in other])
                mine = [lab for lab in mine if len(lab.snap.x) == width]
            X = np.array([lab.snap.x for lab in mine], dtype=np.float64).reshape(len(mine), width)
            model.learn_many(X, [lab.y for lab in mine], [lab.hash for lab in mine])

    def _queue_labels(self, pipe: Any, labels: Sequence[Label]) -> None:
        self.logged_to |= {lab.snap.partition for lab in labels}
        queue_labels(pipe, labels)

    async def on_batch(
        self,
        applied: Sequence[Event],
        rows: dict[str, tuple[int, int, list[float]]],
        scores: dict[str, dict[str, dict[str, float]]],
    ) -> int:
        """Resolve pending labels with the batch's events, then snapshot users without a pending one.

        ``rows``: user -> (as_of_ms, partition, features); ``scores``: user -> task -> model kind -> score.
        One transaction; if another worker changed one of these users' snapshots meanwhile (a rebalance), it
        is redone from a fresh read. Returns the number of labels learned.
        """
        if not applied:
            return 0
        while True:
            try:
                return await self._on_batch(applied, rows, scores)
            except WatchError:
                log.info("a user's pending snapshots changed while the batch resolved them; resolving again")

    async def _on_batch(
        self,
        applied: Sequence[Event],
        rows: dict[str, tuple[int, int, list[float]]],
        scores: dict[str, dict[str, dict[str, float]]],
    ) -> int:
        users = list(rows)
        keys = [pending_key(u) for u in users]
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(*keys)
            blobs = cast(list[bytes | None], await pipe.mget(keys))
            pending = {u: (_dec.decode(b) if b else {}) for u, b in zip(users, blobs, strict=True)}
            labels: list[Label] = []
            for ev in sorted(applied, key=lambda e: e.ts_ms):
                snaps = pending[ev.user_id]
                for task in list(snaps):
                    y = resolve_by_event(task, snaps[task], ev.kind, ev.ts_ms)
                    if y is not None:
                        labels.append(Label(task, ev.user_id, snaps.pop(task), y))
            expiries: dict[int, dict[str, int]] = {}  # partition -> index member -> expiry: one ZADD each
            taken: Counter[str] = Counter()
            for u, (as_of, partition, x) in rows.items():
                for task in TASKS:
                    if task not in pending[u]:
                        taken_scores = scores.get(u, {}).get(task, {})
                        exp = self.experiment_of(task) if "challenger" in taken_scores else ""
                        pending[u][task] = Snapshot(as_of, x, taken_scores, partition, exp)
                        expiry = as_of + TASKS[task].horizon_days * DAY_MS
                        expiries.setdefault(partition, {})[f"{task}|{u}"] = expiry
                        taken[task] += 1
            pipe.multi()
            self._queue_labels(pipe, labels)
            for u in users:
                pipe.set(pending_key(u), _enc.encode(pending[u])) if pending[u] else pipe.delete(pending_key(u))
            for partition, members in expiries.items():
                pipe.zadd(expiry_key(partition), members)
            for task, n in taken.items():
                pipe.hincrby(counts_key(task), "taken", n)
            watermark = max(self.watermark_ms, max(ev.ts_ms for ev in applied))
            pipe.zadd(WATERMARK_KEY, {"max": watermark}, gt=True)
            await pipe.execute()
        self.watermark_ms = watermark
        return await self.follow({lab.snap.partition for lab in labels})

    async def expire(self, partitions: Iterable[int], limit: int = 5000) -> int:
        """Resolve snapshots whose horizon the watermark (latest event time less lateness) has passed."""
        watermark = self.watermark_ms - self.lateness_ms
        if watermark <= 0:
            return 0
        learned, self.behind = 0, False
        for partition in partitions:
            while True:
                try:
                    learned += await self._expire(partition, watermark, limit)
                    break
                except WatchError:
                    log.info("a user's pending snapshots changed while they expired; expiring again")
        self.expired_to = self.expired_to if self.behind else watermark  # every label before it has resolved
        return learned

    async def _expire(self, partition: int, watermark: int, limit: int) -> int:
        # members strictly below the watermark: exactly those resolve_by_watermark settles
        members = await self.redis.zrangebyscore(expiry_key(partition), "-inf", f"({watermark}", start=0, num=limit)
        self.behind |= len(members) == limit
        if not members:
            return 0
        by_user: dict[str, list[str]] = {}
        for m in members:
            task, user = (m.decode() if isinstance(m, bytes) else str(m)).split("|", 1)
            by_user.setdefault(user, []).append(task)
        users = list(by_user)
        keys = [pending_key(u) for u in users]
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(*keys)
            blobs = cast(list[bytes | None], await pipe.mget(keys))
            labels: list[Label] = []
            stale: list[str] = []  # index members whose snapshot is gone
            kept: dict[str, int] = {}  # index members whose snapshot is not due: their score corrected
            changed: dict[str, dict[str, Snapshot]] = {}
            for u, blob in zip(users, blobs, strict=True):
                snaps = _dec.decode(blob) if blob else {}
                for task in by_user[u]:
                    snap = snaps.get(task)
                    if snap is None:
                        stale.append(f"{task}|{u}")
                    elif (y := resolve_by_watermark(task, snap, watermark)) is not None:
                        labels.append(Label(task, u, snaps.pop(task), y))
                        changed[u] = snaps
                    else:
                        kept[f"{task}|{u}"] = snap.as_of_ms + TASKS[task].horizon_days * DAY_MS
            pipe.multi()
            self._queue_labels(pipe, labels)
            for u, snaps in changed.items():
                pipe.set(pending_key(u), _enc.encode(snaps)) if snaps else pipe.delete(pending_key(u))
            if stale:
                pipe.zrem(expiry_key(partition), *stale)
            if kept:
                pipe.zadd(expiry_key(partition), kept)
            await pipe.execute()
        return await self.follow({lab.snap.partition for lab in labels})

    # ---- live quality and checkpoints -------------------------------------------------------------------------
    async def write_metrics(self) -> int:
        rows = metric_rows(self.validation, self.labels, {t: m.name for t, m in self.models.items()})
        await self.metrics_sink.write(rows)
        return len(rows)

    async def checkpoint(self) -> None:
        """Learn what this learner logged and has not learned yet (a lost answer), write every model's
        checkpoint, then trim the label logs up to what it includes."""
        await self.follow(self.logged_to)
        await label_log.trim_logs(self.redis, await self.write_checkpoint())

    async def write_checkpoint(self) -> dict[int, tuple[int, int]]:
        """Write every model's checkpoint with the log positions and the watermark it includes (one
        transaction); return the positions. The resolved scores of the labels it includes are written first."""
        await self.resolved.write()  # a crash after this replays, and writes again, only what the checkpoint lacks
        positions = dict(self.positions)
        meta = {"positions": positions, "watermark": self.watermark_ms}
        async with self.redis.pipeline(transaction=True) as pipe:
            for task, model in self.models.items():
                pipe.set(checkpoint_key(task, model.kind), model.dumps(self.key, meta))
            await pipe.execute()
        return positions

    async def follow(
        self, partitions: Iterable[int], since: dict[str, dict[int, tuple[int, int]]] | None = None, chunk: int = 10_000
    ) -> int:
        """Learn the label log entries of ``partitions`` after this learner's positions, and move them.

        The model learns from the logs, not from what a transaction meant to write: if a transaction was
        applied but its answer lost (the connection dropped), its labels are still learned, by the next call
        for their partition or at restore. ``since`` (at restore): task -> partition -> the last entry the
        task's checkpoint includes; earlier entries are skipped.
        """
        todo, learned = sorted(set(partitions)), 0
        while todo:
            async with self.redis.pipeline(transaction=False) as pipe:
                for partition in todo:
                    pos = self.positions.get(partition)
                    pipe.xrange(log_key(partition), min=f"({pos[0]}-{pos[1]}" if pos else "-", count=chunk)
                answers = cast(list[Entries], await pipe.execute())
            to_learn: list[Label] = []
            for partition, entries in zip(todo, answers, strict=True):
                for raw, fields in entries:
                    position = stream_id(raw)
                    lab = _label_dec.decode(fields[b"l"])
                    if since is None or position > since[lab.task].get(partition, (0, 0)):
                        to_learn.append(lab)
                    self.positions[partition] = position
            self._learn(to_learn)
            self.resolved.add(to_learn, self.watermark_ms - self.lateness_ms)
            learned += len(to_learn)
            todo = [p for p, entries in zip(todo, answers, strict=True) if len(entries) == chunk]
        return learned

    @classmethod
    async def restore(
        cls, redis: aioredis.Redis, kind: str, key: bytes, partitions: Iterable[int] = (), **kwargs: Any
    ) -> OnlineLearner:
        """The models of the last checkpoint, the watermark, and the logged labels of ``partitions`` they lack."""
        models = {}
        for task in TASKS:
            blob: bytes | None = await redis.get(checkpoint_key(task, kind))  # type: ignore[assignment]
            try:
                models[task] = OnlineModel.loads(blob, key) if blob else OnlineModel(task, kind)
            except ValueError as exc:
                log.error("%s: starting a fresh %s online model", exc, task)
                models[task] = OnlineModel(task, kind)
        learner = cls(redis, models, key=key, **kwargs)
        seen = await redis.zscore(WATERMARK_KEY, "max")
        learner.watermark_ms = max(int(seen or 0), *(m.meta.get("watermark", 0) for m in models.values()))
        since = {task: m.meta.get("positions", {}) for task, m in models.items()}
        replayed = await learner.follow(partitions, since)
        if replayed:
            log.info("learned %d labels resolved after the last checkpoint", replayed)
        return learner
