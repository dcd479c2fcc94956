"""The stream worker: one object that owns the consumer side, the aligner, the processor, the learner and the timers.

The flow of a record, method by method:

1. :meth:`Worker.consume` (the faust agent) takes micro-batches of records from the three co-partitioned input
   topics, unacked, as faust messages without an Event per record (:mod:`streams.delivery`, fed by the consumer
   of :mod:`streams.transport`), and holds them in the :class:`~streams.aligner.EventTimeAligner`;
2. :meth:`Worker.process_ready` releases what is safe to process, in arrival order across partitions, and hands
   it to the :class:`~streams.processor.FeatureProcessor` (features, dead letters, ClickHouse rows, scores, Redis);
3. only when every effect succeeded are the records acked, so faust commits their offsets. A failed effect makes
   the whole batch be redone (:func:`streams.retry.until_done`, the one retry level): effects are idempotent.

Between batches, and on a timer when none arrives, users due by time are rescored (:meth:`Worker.catch_up`,
:meth:`Worker.rescore_tick`, :mod:`streams.rescore`) within a time budget (:mod:`streams.budget`). A batch is cut
where a partition's event time moves on by a day: a backlog catches up on its day ends as it goes.

Timers release held records when no batch arrives (:meth:`Worker.release_held`), export the consumer lag and resolve
the online learner's delayed labels (:meth:`Worker.resolve_labels`).
A rebalance drops held records of revoked partitions and any fetched before it (:meth:`Worker.on_revoked`,
:meth:`Worker.stale`); a batch under way sends, marks and acks nothing more for them (:mod:`streams.ownership`). They
are fetched again after the dead letters under way are delivered (also before leaving: :meth:`Worker.on_stopping`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import faust
from faust.types import Message

from churnstream.settings import Settings
from core.contracts import Event
from features.store import RedisStateStore
from models.champions import Champions
from streams.aligner import EventTimeAligner
from streams.budget import RescoreBudget
from streams.delivery import BatchTopic, batches
from streams.dlq import KafkaDeadLetters, kafka_scan
from streams.drift_watch import DriftWatch
from streams.labels import RESOLVED_COLUMNS
from streams.ledger import RedisLedger
from streams.metrics import ALIGNER_FORCED, CONSUMER_LAG
from streams.monitor import LeanMonitor
from streams.online import OnlineLearner
from streams.ownership import Ownership
from streams.processor import FeatureProcessor
from streams.records import Held, to_record
from streams.rescore import Rescorer, split_by_event_time
from streams.retry import effect, until_done
from streams.scoring import Scorer
from streams.segment_watch import SegmentWatch
from streams.segments import Segmenter
from streams.sinks import ClickHouseSink
from streams.tables import Tables
from streams.transport import Consumer as TransportConsumer

log = logging.getLogger(__name__)


class Worker:
    """Consumes the input topics of ``app`` and applies them; built before the app starts, run by faust."""

    def __init__(self, settings: Settings, app: faust.App) -> None:
        self.settings, self.app = settings, app
        self.inputs = BatchTopic(app, topics=list(settings.input_topics))  # whole micro-batches, no Event per record
        self.dlq_topic = app.topic(settings.topic_dlq, key_serializer="raw", value_serializer="raw")
        self.aligner = EventTimeAligner(
            max_buffered=settings.align_max_buffered,
            max_wait_s=settings.align_max_wait_s,
            grace_ms=int(settings.align_grace_s * 1000),
        )
        self.lock = asyncio.Lock()  # one batch (or label resolution) at a time
        self.running = False  # the agent runs: the timers may release held records
        self.generation = -1  # the consumer generation of the records held: older ones are dropped when it changes
        self.owns = Ownership(app.consumer.assignment, lambda: app.consumer_generation_id, lambda: self.generation)
        self.store = store = RedisStateStore.from_url(settings.redis_url)
        self.champions = Champions(settings.registry_dir(), interval_s=settings.model_reload_s)
        self.champions.refresh(force=True)
        tables = Tables.from_settings(settings)
        self.metrics_sink = tables.model_metrics
        self.learner: OnlineLearner | None = None  # restored from Redis when the worker starts (async)
        self.segmenter = Segmenter()  # RFM segments beside the scores, with the boundaries self.segments adopts
        self.scorer = Scorer(self.champions, segmenter=self.segmenter)
        self.rescorer = Rescorer.from_settings(settings, store, self.scorer, tables.predictions, tables.user_segments)
        self.budget = RescoreBudget(settings.rescore_share)  # optional steps wait while events flow
        dead_letters = KafkaDeadLetters(
            self.send_dead_letter,
            RedisLedger(store.redis),
            kafka_scan(settings.kafka_bootstrap, settings.topic_dlq),
            owned=self.owns,
        )
        self.processor = FeatureProcessor.from_tables(
            settings, store, tables, dead_letters, self.scorer, self.rescorer, self.owns
        )
        self.metrics_at = self.checkpoint_at = 0.0
        alerts = app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw")
        self.drift = DriftWatch.from_settings(
            settings, store.redis, self.champions, lambda k, v: alerts.send(key=k, value=v)
        )

        app.agent(self.inputs, name="features")(self.consume)
        app.timer(interval=min(0.25, settings.batch_within_s))(self.release_held)
        app.timer(interval=1.0)(self.report_lag)
        app.timer(interval=1.0)(self.resolve_labels)
        app.timer(interval=1.0)(self.rescore_tick)
        app.timer(interval=settings.drift_check_s)(self.drift.tick)  # drift: thresholds, alerts, the daily job
        self.segments = SegmentWatch.from_settings(
            settings, store.redis, tables.rfm_boundaries, self.segmenter, self.drift.final_through
        )
        app.timer(interval=settings.segments_check_s)(self.segments.tick)  # the daily RFM cut, shared boundaries
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]  # mode types receivers narrowly
        app.on_before_shutdown.connect(self.on_stopping)  # type: ignore[arg-type]

    # ---- the flow -------------------------------------------------------------------------------------------------
    async def consume(self, stream: Any) -> None:
        """The agent: hold each micro-batch in the aligner, then process what is ready."""
        await self.start()
        self.running = True
        async for batch in batches(stream, self.settings.batch_size, self.settings.batch_within_s):
            # batches() hands over only the current generation's messages; held ones are checked on a change
            self.aligner.add(self.held_entry(m) for m in batch)
            await self.process_ready()

    def held_entry(self, m: Message) -> tuple[Any, int, int, int, Held]:
        """The aligner's entry for a message: decoded now, so records with the same broker timestamp are released
        in event-time order (a replay then applies them as the live stream did)."""
        rec = to_record(m)
        ev = self.processor.decode_one(rec)
        tie = ev.ts_ms if isinstance(ev, Event) else 0
        return m.tp, m.offset, int((m.timestamp or 0) * 1000), tie, Held(m, rec, ev)

    async def start(self) -> None:
        """Restore the online learner (its models, label logs and checkpoints live in Redis)."""
        settings = self.settings
        if settings.online_model != "off" and self.learner is None:
            self.learner = await OnlineLearner.restore(
                self.store.redis,
                settings.online_model,
                settings.checkpoint_secret(),
                partitions=range(settings.partitions),
                metrics=self.metrics_sink,
                resolved=ClickHouseSink(settings.clickhouse_dsn, "resolved_scores", RESOLVED_COLUMNS),
                lateness_ms=int(settings.label_lateness_s * 1000),
            )
            self.scorer.learner = self.learner
            self.learner.losses, self.learner.experiment_of = self.drift.losses, self.scorer.experiment_of

    async def process_ready(self) -> None:
        """Process the records the aligner releases, redoing the batch until every effect succeeded; then ack."""
        async with self.lock:
            if not self.running or not self.app.flow_control.is_active():  # a rebalance is under way
                return
            if self.generation != self.app.consumer_generation_id:  # a rebalance ended since the last batch
                self.generation = self.app.consumer_generation_id
                if dropped := self.aligner.discard(self.stale):  # held since before the rebalance
                    log.info("dropped %d records fetched before the rebalance (they are fetched again)", dropped)
            forced = self.aligner.forced
            ready = self.aligner.release(self.assigned(), self.caught_up, int(time.time() * 1000), self.seen_ms)
            if (n := self.aligner.forced - forced) > 0:
                ALIGNER_FORCED.inc(n)
                log.warning("released %d records without waiting on a partition (CHURNSTREAM_ALIGN_MAX_WAIT_S)", n)
            if not ready:
                return
            if isinstance(monitor := self.app.monitor, LeanMonitor):
                monitor.on_batch_in({h.message.tp for h in ready})
            decoded = [(h.record, h.event) for h in ready]
            partitions = {h.record.partition for h in ready}
            await until_done(self.rescorer.restore, partitions, log=log, level=logging.ERROR, multiplier=0.2)
            for segment in split_by_event_time(decoded, self.rescorer.clocks):
                await until_done(self.processor.process_decoded, segment, log=log, level=logging.ERROR, multiplier=0.2)
                self.budget.batch_ran()
                await until_done(self.catch_up, partitions, log=log, level=logging.ERROR, multiplier=0.2)
            consumer, mine = self.app.consumer, {tp for tp in {h.message.tp for h in ready} if self.owns(tp)}
            for held in ready:  # per partition in offset order: faust commits the contiguous acked offsets
                if held.message.tp in mine:  # a partition revoked meanwhile is fetched again by its next owner
                    held.message.ack(consumer)

    async def send_dead_letter(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        return await self.dlq_topic.send(key=key, value=value, headers=headers)

    # ---- partitions -----------------------------------------------------------------------------------------------
    def stale(self, held: Held) -> bool:
        """Fetched before the latest rebalance, so fetched again from the committed offset: processing the old copy
        could apply a later offset before an earlier one, which the per-user offset guard would skip as a replay."""
        return bool(held.message.generation_id != self.app.consumer_generation_id)

    def assigned(self) -> set[Any]:
        return {tp for tp in self.app.consumer.assignment() if tp.topic in self.settings.input_topics}

    def seen_ms(self, tp: Any) -> int | None:
        """When a fetch last told ``tp``'s end (its high watermark) to the consumer."""
        return cast(TransportConsumer, self.app.consumer).last_poll_ms(tp)

    def unfetched(self, tp: Any) -> int | None:
        """Records of ``tp`` up to its high watermark that have not reached the aligner (None: end not known yet)."""
        highwater = self.app.consumer.highwater(tp)
        if highwater is None:
            return None
        last = self.aligner.last_offset.get(tp)
        if last is not None:
            return max(0, highwater - last - 1)
        committed = getattr(self.app.consumer, "_committed_offset", {}).get(tp)  # the next offset to read
        return max(0, highwater - (committed or 0))

    def caught_up(self, tp: Any) -> bool:
        """Nothing more to fetch from ``tp``: everything up to its high watermark has reached the aligner."""
        return self.unfetched(tp) == 0

    async def on_revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked = set(args[0] if args else kwargs.get("revoked", ()))
        self.owns.revoke(revoked)  # first: a batch under way sends and marks nothing more for these partitions
        dropped = self.aligner.drop(revoked)
        await self.processor.dlq.settle(timeout=30.0)  # letters under way reach the DLQ before the next owner scans
        self.processor.forget([(tp.topic, tp.partition) for tp in revoked])
        self.rescorer.forget({tp.partition for tp in revoked})
        if dropped:
            log.info("dropped %d held records of revoked partitions (they are fetched again)", dropped)

    async def on_stopping(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Before the consumer leaves the group (no revoke): dead letters under way land, no more are sent; the online
        models are checkpointed with their resolved scores (if that fails, the next start learns the logs again)."""
        self.owns.close()  # first: a batch under way acks nothing more (its dead letters are skipped from now on)
        await self.processor.dlq.close(timeout=30.0)
        try:
            await asyncio.wait_for(self.checkpoint(), timeout=15.0)  # a batch under way first, unless it is stuck
        except Exception:
            log.exception("the online checkpoint at shutdown failed")

    async def checkpoint(self) -> None:
        async with self.lock:
            if self.learner is not None:
                await self.learner.checkpoint()

    # ---- time ---------------------------------------------------------------------------------------------------
    async def catch_up(self, partitions: set[int]) -> None:
        """After a batch: drain partitions behind their event time (a backlog), else one step if the budget allows."""
        stepped = False
        dues_of = await effect("redis", self.rescorer.oldest_dues, sorted(partitions))  # one round trip per batch
        for p, due in dues_of.items():
            while due is not None and due <= self.rescorer.watermark(p) and self.rescorer.must_catch_up(p, due):
                await self.budget.charge(self.rescorer.step(p))  # not gated, but the gated steps wait for it
                due = await effect("redis", self.rescorer.oldest_due, p)
            if not stepped and due is not None and due <= self.rescorer.watermark(p) and self.budget.allows():
                stepped = bool(await self.budget.charge(self.rescorer.step(p)))

    async def rescore_tick(self) -> None:
        """Rescore due users when no batch runs: one step per partition and tick, while the budget allows it."""
        if not self.running or self.lock.locked():
            return
        for tp_partition in sorted({tp.partition for tp in self.assigned()}):
            async with self.lock:
                if not self.running or not self.app.flow_control.is_active() or not self.budget.allows():
                    return
                try:
                    await self.rescorer.restore([tp_partition])
                    await self.budget.charge(self.rescorer.step(tp_partition, self.partition_seen_ms(tp_partition)))
                except Exception:
                    log.exception("rescoring partition %d failed; retrying on the next tick", tp_partition)

    def partition_seen_ms(self, partition: int) -> int | None:
        """When all of ``partition``'s input topics were last fetched and processed (the wall clock), else None."""
        tps = [tp for tp in self.assigned() if tp.partition == partition]
        seen = [self.seen_ms(tp) if self.caught_up(tp) and not self.aligner.held(tp) else None for tp in tps]
        return None if not seen or None in seen else min(s for s in seen if s is not None)

    # ---- timers ---------------------------------------------------------------------------------------------------
    async def release_held(self) -> None:
        """Release held records when no new batch arrives (a partition went quiet or was caught up)."""
        if self.aligner.size and not self.lock.locked():  # a running batch releases them anyway
            await self.process_ready()

    async def report_lag(self) -> None:
        """Consumer lag: records not yet fetched from the assigned partitions plus records held for ordering."""
        CONSUMER_LAG.set(sum(self.unfetched(tp) or 0 for tp in self.assigned()) + self.aligner.size)

    async def resolve_labels(self) -> None:
        """Resolve labels whose horizon passed; write live metrics; checkpoint. A failure is retried next tick."""
        if (learner := self.learner) is None or self.lock.locked():  # a batch is running (or being redone): next tick
            return
        now = asyncio.get_running_loop().time()
        async with self.lock:
            try:
                await learner.expire({tp.partition for tp in self.assigned()})
                if now - self.metrics_at >= self.settings.online_metrics_s:
                    self.metrics_at = now
                    await learner.write_metrics()
                if now - self.checkpoint_at >= self.settings.online_checkpoint_s:
                    self.checkpoint_at = now
                    await learner.checkpoint()
            except Exception:
                log.exception("online label resolution failed; retrying on the next tick")
