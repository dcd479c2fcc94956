"""The daily drift job and the alerts it raises, run by one worker at a time.

Every worker ticks (``CHURNSTREAM_DRIFT_CHECK_S``): it reads the alert thresholds from Redis (set through the API,
:class:`models.alerts.Thresholds`), so a change applies to every worker within a tick, and sends the ADWIN alerts
its online learner raised (:class:`models.alerts.LossWatch`). The worker that holds the drift lease (``cs:drift:lock``,
renewed each tick, taken over by another worker a minute after its holder dies) also runs the daily job:

1. A day is complete once every partition's rescoring has passed its day end: each partition's watermark (its
   event-time clock less the lateness, :mod:`streams.rescore`) is at or past it and no user of the partition is
   still due at or before it (:meth:`DriftWatch.final_through`). A partition that has applied no event yet holds
   every day back (it may still bring users of any day). The live sample of that day end (``daily_features``)
   and the champion's time rows then no longer change.
2. For each champion with a training profile and each complete day after the last one done (``cs:drift:done``; a
   new champion starts 30 days back, or at the live sample's first day): the PSI of the score and of every feature
   (:func:`models.population.report`), written to ClickHouse ``drift``; the statistics at ``warn`` or ``alert``
   become alerts, written to ClickHouse ``alerts`` and sent to the Kafka topic ``alerts``, keyed by their stable
   ``alert_id``. Then the day is marked done.

A job that dies before the mark is done again: its ClickHouse inserts carry tokens named after the champion and the
day, so nothing is written twice, and a day whose alerts were being sent (``cs:drift:sending``, set before the first
send) reads the topic back from then and sends only the alerts not in it. ADWIN alerts are sent as raised; a
worker's detectors live in memory, so a restarted worker may raise a change again from the labels it learns next.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence, Set
from dataclasses import asdict
from functools import partial
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from churnstream.settings import Settings
from core.days import DAY_MS
from core.keys import DRIFT_DONE, DRIFT_LOCK, DRIFT_SENDING, DRIFT_THRESHOLDS, WATERMARKS, due_key
from core.tasks import TASKS
from models import population
from models.alerts import ALERT_COLUMNS, Alert, LossWatch, Thresholds, psi_alerts
from models.champions import Champions
from models.drift import Profile
from models.registry import ModelRef, ModelRejected
from streams.metrics import ALERTS, DRIFT_DAYS, DRIFT_THRESHOLD
from streams.readback import keys_since
from streams.retrain_schedule import RetrainSchedule
from streams.sinks import ClickHouseSink, Sink

log = logging.getLogger(__name__)

DRIFT_COLUMNS = ("day", "task", "model", "version", "feature", "psi", "rows", "level", "computed_at")
EPOCH = dt.date(1970, 1, 1)
BACKFILL_DAYS = 30  # a new champion's drift starts this many complete days back (the dashboard's span)
Send = Callable[[bytes, bytes], Awaitable[Any]]  # (key, value) -> a future of the delivery


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def day_of(ms: int) -> dt.date:
    return EPOCH + dt.timedelta(days=ms // DAY_MS)


class AlertSink:
    """Alerts to ClickHouse ``alerts`` (one insert, under ``token``), then to the Kafka topic, each delivered;
    ``read_back(since_ms)``: the keys of the alerts in the topic since then."""

    def __init__(self, table: Sink, send: Send, read_back: Callable[[int], set[bytes]] | None = None) -> None:
        self.table, self.send, self.read_back = table, send, read_back

    async def sent_since(self, since_ms: int) -> set[bytes]:
        return set() if self.read_back is None else await asyncio.to_thread(self.read_back, since_ms)

    async def raise_(self, alerts: Sequence[Alert], token: str | None = None, skip: Set[bytes] = frozenset()) -> int:
        """Write and send ``alerts``; those whose id is in ``skip`` (already in the topic) are not sent again."""
        if not alerts:
            return 0
        now = int(time.time() * 1000)
        await self.table.write([a.row(now) for a in alerts], token)
        alerts = [a for a in alerts if a.alert_id.encode() not in skip]
        futures = [await self.send(a.alert_id.encode(), orjson.dumps(a.to_json(now))) for a in alerts]
        for a, fut in zip(alerts, futures, strict=True):
            await fut
            ALERTS.labels(a.statistic, a.level).inc()
        return len(alerts)


class DriftWatch:
    def __init__(
        self,
        redis: aioredis.Redis,
        champions: Champions,
        drift: ClickHouseSink,
        alerts: AlertSink,
        name: str,
        partitions: int,
        lateness_ms: int = DAY_MS,
        wall_clock: bool = False,
        lease_ms: int = 60_000,
        schedule: RetrainSchedule | None = None,
    ) -> None:
        self.redis, self.champions, self.drift, self.alerts = redis, champions, drift, alerts
        self.name, self.lateness_ms, self.wall_clock, self.lease_ms = name, lateness_ms, wall_clock, lease_ms
        self.partitions = partitions  # of the input topics: each must have rescored past a day end
        self.thresholds = Thresholds()
        self.losses = LossWatch(self.thresholds.adwin_delta, self.thresholds.adwin_rise)  # the online learner feeds it
        self.profiles: dict[ModelRef, Profile | None] = {}
        self.schedule = schedule  # retraining on a schedule or after an alert, by the lease holder

    @classmethod
    def from_settings(cls, settings: Settings, redis: aioredis.Redis, champions: Champions, send: Send) -> DriftWatch:
        dsn = settings.clickhouse_dsn
        drift = ClickHouseSink(dsn, "drift", DRIFT_COLUMNS)
        return cls(
            redis,
            champions,
            drift,
            AlertSink(
                ClickHouseSink(dsn, "alerts", ALERT_COLUMNS),
                send,
                partial(keys_since, settings.kafka_bootstrap, settings.topic_alerts),
            ),
            name=f"{settings.app_id}:{id(champions):x}:{time.time_ns()}",
            partitions=settings.partitions,
            lateness_ms=int(settings.label_lateness_s * 1000),
            wall_clock=settings.clock == "wall",
            schedule=RetrainSchedule(settings, redis, drift, os.environ),
        )

    # ---- every worker ---------------------------------------------------------------------------------------------
    async def tick(self) -> int:
        """Apply the thresholds, send the learner's alerts, and run the daily job if this worker holds the lease;
        returns the champion-days computed. A failure is logged and retried on the next tick."""
        try:
            self.thresholds = Thresholds.from_fields(await self.redis.hgetall(DRIFT_THRESHOLDS))
            for name, value in asdict(self.thresholds).items():
                DRIFT_THRESHOLD.labels(name).set(value)
            self.losses.retune(self.thresholds.adwin_delta, self.thresholds.adwin_rise)
            if pending := self.losses.take():
                await self.alerts.raise_(pending)
                await self.ask_retraining(pending)
            if not await self.lease():
                return 0
            done = await self.run()
            if self.schedule is not None:
                await self.schedule.tick()
            return done
        except Exception:
            log.exception("the drift job failed; retrying on the next tick")
            return 0

    async def lease(self) -> bool:
        """Take the drift lease, or renew it if this worker holds it."""
        if await self.redis.set(DRIFT_LOCK, self.name, nx=True, px=self.lease_ms):
            return True
        holder = await self.redis.get(DRIFT_LOCK)
        if holder is not None and text(holder) == self.name:
            await self.redis.pexpire(DRIFT_LOCK, self.lease_ms)
            return True
        return False

    # ---- the daily job --------------------------------------------------------------------------------------------
    async def final_through(self) -> int | None:
        """The latest day end (epoch ms) every partition has rescored past (None: none yet, or a partition has
        applied no event yet)."""
        clocks = dict(cast(list[tuple[bytes, float]], await self.redis.zrange(WATERMARKS, 0, -1, withscores=True)))
        partitions = [str(p).encode() for p in range(self.partitions)]
        if not partitions or any(p not in clocks for p in partitions):
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in range(self.partitions):
                pipe.zrange(due_key(i), 0, 0, withscores=True)
            firsts = await pipe.execute()
        now = int(time.time() * 1000) if self.wall_clock else 0
        through = math.inf
        for member, first in zip(partitions, firsts, strict=True):
            through = min(through, max(int(clocks[member]), now) - self.lateness_ms)
            if first:
                through = min(through, int(first[0][1]) - 1)
        end = (int(through) + 1) // DAY_MS * DAY_MS - 1  # the latest day end at or before it
        return end if end > 0 else None

    async def run(self) -> int:
        through = await self.final_through()
        if through is None:
            return 0
        last, done = day_of(through), 0
        self.champions.refresh()
        for task in TASKS:
            if (serving := self.champions.get(task)) is None or (prof := self.profile(serving[0])) is None:
                continue
            ref = serving[0]
            if mark := await self.redis.hget(DRIFT_DONE, str(ref)):
                day = dt.date.fromisoformat(text(mark)) + dt.timedelta(days=1)
            else:  # a new champion: the last BACKFILL_DAYS days of the live sample first
                first = await self.drift.call(population.first_day)
                day = max(last - dt.timedelta(days=BACKFILL_DAYS - 1), first or last)
            while day <= last:
                await self.run_day(ref, prof, day)
                day, done = day + dt.timedelta(days=1), done + 1
        return done

    async def run_day(self, ref: ModelRef, prof: Profile, day: dt.date) -> list[Alert]:
        """One champion's drift on one day: ClickHouse ``drift`` rows, the alerts, then the mark. Alerts are sent
        once: a day redone after a crash while they were sent reads the topic back and sends only the missing."""
        limits = (self.thresholds.psi_warn, self.thresholds.psi_alert)
        report = await self.drift.call(population.report, day, prof, ref.task, ref.model, ref.version, limits)
        now = int(time.time() * 1000)
        rows = [(d.day, d.task, d.model, d.version, d.feature, d.psi, d.rows, d.level, now) for d in report]
        await self.drift.write(rows, f"drift:{ref}:{day}")
        alerts = psi_alerts(report, self.thresholds)
        await self.ask_retraining(alerts)
        sent: set[bytes] = set()
        started = await self.redis.hget(DRIFT_SENDING, str(ref))
        if started is not None and text(started).startswith(f"{day}|"):
            sent = await self.alerts.sent_since(int(text(started).split("|")[1]))
        else:
            await self.redis.hset(DRIFT_SENDING, str(ref), f"{day}|{now - 60_000}")  # a minute of clock skew
        await self.alerts.raise_(alerts, f"alerts:{ref}:{day}", skip=sent)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(DRIFT_DONE, str(ref), day.isoformat())
            pipe.hdel(DRIFT_SENDING, str(ref))
            await pipe.execute()
        DRIFT_DAYS.inc()
        return alerts

    async def ask_retraining(self, alerts: Sequence[Alert]) -> None:
        if self.schedule is not None and (worst := [a for a in alerts if a.level == "alert"]):
            await self.schedule.ask(f"{len(worst)} drift alerts, e.g. {worst[0].alert_id}")

    def profile(self, ref: ModelRef) -> Profile | None:
        """The training profile in the champion's ``meta.json`` (None: trained before profiles existed)."""
        if ref not in self.profiles:
            try:
                data = self.champions.registry.meta(ref).get("drift")
            except ModelRejected:
                data = None
            self.profiles[ref] = Profile.from_json(data) if data else None
        return self.profiles[ref]

    def close(self) -> None:
        self.drift.close()
        if isinstance(table := self.alerts.table, ClickHouseSink):
            table.close()
