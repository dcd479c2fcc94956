"""Delayed labels in the worker: pending snapshots in Redis, resolution by events and by the event-time
watermark (an expiry index per partition, a Redis sorted set), progressive validation, then learning.

Keys: ``cs:p:{user}`` holds the user's pending snapshots (at most one per task); ``cs:exp:<partition>`` scores
``<task>|<user>`` by the snapshot's expiry (as_of + horizon); ``cs:online:<task>:<kind>`` holds the signed
checkpoint of an online model.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import numpy as np
import redis.asyncio as aioredis

from features.compute import FEATURE_NAMES
from features.state import DAY_MS
from models.metrics import quality
from models.online import OnlineModel, Snapshot, resolve_by_event, resolve_by_watermark
from models.tasks import TASKS
from streams.contracts import Event
from streams.sinks import Sink

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("ts", "task", "model_kind", "model", "labels", "window", "roc_auc", "log_loss", "positive_rate")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(dict[str, Snapshot])


def pending_key(user_id: str) -> str:
    return f"cs:p:{{{user_id}}}"


def expiry_key(partition: int) -> str:
    return f"cs:exp:{partition}"


class OnlineLearner:
    def __init__(
        self,
        redis: aioredis.Redis,
        models: dict[str, OnlineModel],
        metrics: Sink,
        key: bytes,
        lateness_ms: int = DAY_MS,
        window: int = 2000,
    ) -> None:
        self.redis, self.models, self.metrics_sink, self.key = redis, models, metrics, key
        self.lateness_ms, self.window = lateness_ms, window
        self.watermark_ms = 0
        self.validation: dict[tuple[str, str], deque[tuple[int, float]]] = {}
        self.labels: dict[tuple[str, str], int] = {}

    # ---- scoring ----------------------------------------------------------------------------------------------
    def score(self, task: str, X: np.ndarray) -> list[float]:
        return self.models[task].predict_proba_many(X.tolist())

    # ---- labels -----------------------------------------------------------------------------------------------
    def _learn(self, task: str, snap: Snapshot, y: int) -> None:
        for kind, p in snap.scores.items():  # progressive validation: score first ...
            q = self.validation.setdefault((task, kind), deque(maxlen=self.window))
            q.append((y, p))
            self.labels[(task, kind)] = self.labels.get((task, kind), 0) + 1
        self.models[task].learn_one(dict(zip(FEATURE_NAMES, snap.x, strict=True)), y)  # ... then train

    async def on_batch(
        self,
        applied: Sequence[Event],
        rows: dict[str, tuple[int, int, list[float]]],
        scores: dict[str, dict[str, dict[str, float]]],
    ) -> int:
        """Resolve pending labels with the batch's events, then snapshot users without a pending one.

        ``rows``: user -> (as_of_ms, partition, features); ``scores``: user -> task -> model kind -> score.
        Returns the number of labels learned.
        """
        if not applied:
            return 0
        users = list(rows)
        async with self.redis.pipeline(transaction=False) as pipe:
            for u in users:
                pipe.get(pending_key(u))
            blobs = await pipe.execute()
        pending = {u: (_dec.decode(b) if b else {}) for u, b in zip(users, blobs, strict=True)}
        learned = 0
        resolved: list[tuple[int, str]] = []  # (partition, member) to drop from the expiry index
        for ev in sorted(applied, key=lambda e: e.ts_ms):
            snaps = pending[ev.user_id]
            for task in list(snaps):
                y = resolve_by_event(task, snaps[task], ev.kind, ev.ts_ms)
                if y is not None:
                    snap = snaps.pop(task)
                    self._learn(task, snap, y)
                    resolved.append((snap.partition, f"{task}|{ev.user_id}"))
                    learned += 1
            self.watermark_ms = max(self.watermark_ms, ev.ts_ms)
        expiries: list[tuple[int, str, int]] = []
        for u, (as_of, partition, x) in rows.items():
            for task in TASKS:
                if task not in pending[u]:
                    pending[u][task] = Snapshot(as_of, x, scores.get(u, {}).get(task, {}), partition)
                    expiries.append((partition, f"{task}|{u}", as_of + TASKS[task].horizon_days * DAY_MS))
        async with self.redis.pipeline(transaction=False) as pipe:
            for u in users:
                pipe.set(pending_key(u), _enc.encode(pending[u])) if pending[u] else pipe.delete(pending_key(u))
            for partition, member in resolved:
                pipe.zrem(expiry_key(partition), member)
            for partition, member, expiry in expiries:
                pipe.zadd(expiry_key(partition), {member: expiry})
            await pipe.execute()
        return learned

    async def expire(self, partitions: Iterable[int], limit: int = 5000) -> int:
        """Resolve snapshots whose horizon the watermark (latest event time less lateness) has passed."""
        watermark = self.watermark_ms - self.lateness_ms
        if watermark <= 0:
            return 0
        learned = 0
        for partition in partitions:
            members = await self.redis.zrangebyscore(expiry_key(partition), "-inf", watermark, start=0, num=limit)
            if not members:
                continue
            by_user: dict[str, list[str]] = {}
            for m in members:
                task, user = (m.decode() if isinstance(m, bytes) else str(m)).split("|", 1)
                by_user.setdefault(user, []).append(task)
            users = list(by_user)
            async with self.redis.pipeline(transaction=False) as pipe:
                for u in users:
                    pipe.get(pending_key(u))
                blobs = await pipe.execute()
            async with self.redis.pipeline(transaction=False) as pipe:
                for u, blob in zip(users, blobs, strict=True):
                    snaps = _dec.decode(blob) if blob else {}
                    for task in by_user[u]:
                        snap = snaps.get(task)
                        if snap is not None and (y := resolve_by_watermark(task, snap, watermark)) is not None:
                            snaps.pop(task)
                            self._learn(task, snap, y)
                            learned += 1
                    pipe.set(pending_key(u), _enc.encode(snaps)) if snaps else pipe.delete(pending_key(u))
                pipe.zrem(expiry_key(partition), *members)
                await pipe.execute()
        return learned

    # ---- live quality and checkpoints -------------------------------------------------------------------------
    async def write_metrics(self) -> int:
        now = dt.datetime.now(dt.UTC)
        n = 0
        for (task, kind), q in self.validation.items():
            if len(q) < 20:
                continue
            y = np.array([a for a, _ in q], dtype=np.int8)
            p = np.array([b for _, b in q])
            m = quality(y, p) if 0 < y.sum() < len(y) else None
            loss = m["log_loss"] if m else float("nan")
            model = self.models[task].name if kind == "online" else kind
            self.metrics_sink.add(
                (
                    now,
                    task,
                    kind,
                    model,
                    self.labels[(task, kind)],
                    len(q),
                    m["roc_auc"] if m else None,
                    loss,
                    float(y.mean()),
                )
            )
            n += 1
        await self.metrics_sink.flush()
        return n

    async def checkpoint(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for task, model in self.models.items():
                pipe.set(f"cs:online:{task}:{model.kind}", model.dumps(self.key))
            await pipe.execute()

    @classmethod
    async def restore(cls, redis: aioredis.Redis, kind: str, key: bytes, **kwargs: Any) -> OnlineLearner:
        models = {}
        for task in TASKS:
            blob: bytes | None = await redis.get(f"cs:online:{task}:{kind}")  # type: ignore[assignment]
            try:
                models[task] = OnlineModel.loads(blob, key) if blob else OnlineModel(task, kind)
            except ValueError as exc:
                log.error("%s: starting a fresh %s online model", exc, task)
                models[task] = OnlineModel(task, kind)
        return cls(redis, models, key=key, **kwargs)
