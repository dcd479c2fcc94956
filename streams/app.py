"""The Faust app and the worker entry point."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import faust
from faust.types import TP

from churnstream.settings import Settings
from core.keys import CLICKHOUSE_LEDGER
from streams.aligner import EventTimeAligner
from streams.records import RawRecord
from streams.retry import until_done

log = logging.getLogger(__name__)


def to_record(event: Any) -> RawRecord:
    m = event.message
    return RawRecord(
        m.topic, m.partition, m.offset, int(m.timestamp * 1000) if m.timestamp else None, m.key, m.value or b""
    )


def build_app(settings: Settings) -> faust.App:
    """A Faust app with one agent over the three co-partitioned input topics.

    Consumption is at-least-once: records are taken with ``noack_take`` and acked only after every sink has
    succeeded, so a failure leaves their offsets uncommitted and they are delivered again; the processor's
    effects are idempotent, so redelivery changes nothing. Between the consumer and the processor, an
    :class:`~streams.aligner.EventTimeAligner` restores the arrival order across topics.
    """
    from features.store import RedisStateStore
    from models.champions import Champions
    from streams.dlq import KafkaDeadLetters, kafka_scan
    from streams.ledger import RedisLedger
    from streams.monitor import LeanMonitor
    from streams.online import METRIC_COLUMNS, OnlineLearner
    from streams.processor import BRONZE_COLUMNS, FeatureProcessor
    from streams.scoring import PREDICTION_COLUMNS, Scorer
    from streams.sinks import ClickHouseSink
    from streams.written import RecoveryGuard, clickhouse_lookup

    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.dir("faust") / "{conf.name}"),  # faust's default is `<appid>-data` in the cwd
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 5,
        # on shutdown, do not wait for held (unacked) records: they are redelivered, and effects are idempotent
        stream_wait_empty=False,
        Monitor=LeanMonitor,  # no per-event bookkeeping for faust's web views (off); Prometheus has ours
    )
    inputs = app.topic(*settings.input_topics, key_serializer="raw", value_serializer="raw")
    dlq_topic = app.topic(settings.topic_dlq, key_serializer="raw", value_serializer="raw")
    aligner = EventTimeAligner(
        max_buffered=settings.align_max_buffered,
        max_wait_s=settings.align_max_wait_s,
    )
    lock = asyncio.Lock()
    state: dict[str, Any] = {}

    async def send_dlq(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        return await dlq_topic.send(key=key, value=value, headers=headers)

    async def processor() -> FeatureProcessor:
        if "processor" not in state:
            predictions = ClickHouseSink(settings.clickhouse_dsn, "predictions", PREDICTION_COLUMNS)
            champions = Champions(settings.registry_dir(), interval_s=settings.model_reload_s)
            champions.refresh(force=True)
            store = RedisStateStore.from_url(settings.redis_url)
            learner = None
            if settings.online_model != "off":
                learner = await OnlineLearner.restore(
                    store.redis,
                    settings.online_model,
                    settings.checkpoint_secret(),
                    partitions=range(settings.partitions),
                    metrics=ClickHouseSink(settings.clickhouse_dsn, "model_metrics", METRIC_COLUMNS),
                    lateness_ms=int(settings.label_lateness_s * 1000),
                )
            state["learner"] = learner
            bronze = ClickHouseSink(settings.clickhouse_dsn, "events", BRONZE_COLUMNS)
            state["processor"] = FeatureProcessor(
                settings.input_topics,
                store,
                bronze,
                KafkaDeadLetters(
                    send_dlq,
                    RedisLedger(store.redis),
                    kafka_scan(settings.kafka_bootstrap, settings.topic_dlq),
                    owned=lambda source: TP(*source) in app.consumer.assignment(),
                ),
                scorer=Scorer(champions, predictions, learner),
                predictions=predictions,
                guard=RecoveryGuard(
                    RedisLedger(store.redis, CLICKHOUSE_LEDGER), clickhouse_lookup(bronze, predictions)
                ),
            )
        return state["processor"]

    def assigned() -> set[Any]:
        return {tp for tp in app.consumer.assignment() if tp.topic in settings.input_topics}

    def caught_up(tp: Any) -> bool:
        """Nothing more to fetch from ``tp``: everything up to its high watermark has reached the aligner."""
        highwater = app.consumer.highwater(tp)
        if highwater is None:
            return False
        last = aligner.last_offset.get(tp)
        if last is not None:
            return bool(last + 1 >= highwater)
        committed = getattr(app.consumer, "_committed_offset", {}).get(tp)  # the next offset to read
        return bool((committed or 0) >= highwater)

    def stale(event: Any) -> bool:
        """Fetched before the latest rebalance: the consumer fetches it again from the committed offset."""
        return bool(event.message.generation_id != app.consumer_generation_id)

    async def process_ready(stream: Any) -> None:
        async with lock:
            if not app.flow_control.is_active():  # a rebalance is under way: hold everything until it ends
                return
            if dropped := aligner.discard(stale):
                log.info("dropped %d records fetched before the rebalance (they are fetched again)", dropped)
            ready = aligner.release(assigned(), caught_up)
            if not ready:
                return
            records = [to_record(e) for e in ready]

            # Effects are idempotent, so a batch that failed part-way is simply processed again.
            async def run_batch() -> None:
                await (await processor()).process(records)

            await until_done(run_batch, log=log, level=logging.ERROR, multiplier=0.2, max_wait_s=5, redo_conflicts=True)
            for event in ready:
                await stream.ack(event)

    @app.agent(inputs, name="features")
    async def features_agent(stream: Any) -> None:  # a faust.Stream: noack_take is not on StreamT
        state["stream"] = stream
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):
            # noack_take may hand over records it buffered before a rebalance: faust's own check comes earlier
            aligner.add(
                (e.message.tp, e.message.offset, int((e.message.timestamp or 0) * 1000), e)
                for e in events
                if not stale(e)
            )
            await process_ready(stream)

    @app.timer(interval=min(0.25, settings.batch_within_s))
    async def release_held() -> None:
        """Release held records when no new batch arrives (a partition went quiet or was caught up)."""
        if "stream" in state and aligner.size and not lock.locked():  # a running batch releases them anyway
            await process_ready(state["stream"])

    @app.timer(interval=1.0)
    async def report_lag() -> None:
        """Consumer lag: records not yet fetched from the assigned partitions plus records held for ordering."""
        from streams.metrics import CONSUMER_LAG

        behind = 0
        for tp in assigned():
            highwater, last = app.consumer.highwater(tp), aligner.last_offset.get(tp)
            if highwater is not None and last is not None:
                behind += max(0, highwater - last - 1)
            elif highwater is not None:
                committed = getattr(app.consumer, "_committed_offset", {}).get(tp) or 0
                behind += max(0, highwater - committed)
        CONSUMER_LAG.set(behind + aligner.size)

    @app.timer(interval=1.0)
    async def resolve_labels() -> None:
        """Resolve delayed labels whose horizon event time has passed; write live metrics; checkpoint."""
        learner = state.get("learner")
        if learner is None or lock.locked():  # a batch is running (or retrying): next tick
            return
        now = asyncio.get_running_loop().time()
        async with lock:
            try:
                await learner.expire({tp.partition for tp in assigned()})
                if now - state.get("metrics_at", 0.0) >= settings.online_metrics_s:
                    state["metrics_at"] = now
                    await learner.write_metrics()
                if now - state.get("checkpoint_at", 0.0) >= settings.online_checkpoint_s:
                    state["checkpoint_at"] = now
                    await learner.checkpoint()
            except Exception:
                log.exception("online label resolution failed; retrying on the next tick")

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types async receivers narrowly
    async def on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked = set(args[0] if args else kwargs.get("revoked", ()))
        dropped = aligner.drop(revoked)
        if "processor" in state:
            state["processor"].forget([(tp.topic, tp.partition) for tp in revoked])
        if dropped:
            log.info("dropped %d held records of revoked partitions (they are redelivered)", dropped)

    return app


def run_worker(settings: Settings, loglevel: str = "WARNING") -> None:
    """Run the Faust worker until SIGTERM/SIGINT; metrics on ``settings.metrics_port`` (0 = off)."""
    from faust.worker import Worker
    from prometheus_client import start_http_server

    logging.basicConfig(level=loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # before faust creates its loop
    app = build_app(settings)
    gc.collect()
    gc.freeze()  # imported libraries live as long as the process: keep them out of full GC passes
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
