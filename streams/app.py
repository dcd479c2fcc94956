"""The Faust app and the worker entry point."""

from __future__ import annotations

import logging
from typing import Any

import faust
from tenacity import AsyncRetrying, before_sleep_log, wait_exponential

from churnstream.settings import Settings
from streams.records import RawRecord

log = logging.getLogger(__name__)


def build_app(settings: Settings) -> faust.App:
    """A Faust app with one agent over the three co-partitioned input topics.

    Consumption is at-least-once: each micro-batch is taken with ``noack_take`` and acked only after every sink
    has succeeded, so a failure leaves its offsets uncommitted and the records are delivered again; the
    processor's effects are idempotent, so redelivery changes nothing.
    """
    from features.store import RedisStateStore
    from streams.dlq import KafkaDeadLetters
    from streams.processor import BRONZE_COLUMNS, FeatureProcessor
    from streams.sinks import ClickHouseSink

    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )
    inputs = app.topic(*settings.input_topics, key_serializer="raw", value_serializer="raw")
    dlq_topic = app.topic(settings.topic_dlq, key_serializer="raw", value_serializer="raw")

    async def send_dlq(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        return await dlq_topic.send(key=key, value=value, headers=headers)

    processor: FeatureProcessor | None = None

    @app.agent(inputs, name="features")
    async def features_agent(stream: Any) -> None:  # a faust.Stream: noack_take is not on StreamT
        nonlocal processor
        if processor is None:
            processor = FeatureProcessor(
                settings.input_topics,
                RedisStateStore.from_url(settings.redis_url),
                ClickHouseSink(settings.clickhouse_dsn, "events", BRONZE_COLUMNS),
                KafkaDeadLetters(send_dlq),
            )
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):
            records = [
                RawRecord(
                    m.topic,
                    m.partition,
                    m.offset,
                    int(m.timestamp * 1000) if m.timestamp else None,
                    m.key,
                    m.value or b"",
                )
                for m in (e.message for e in events)
            ]
            # Effects are idempotent, so a batch that failed part-way is simply processed again.
            async for attempt in AsyncRetrying(
                wait=wait_exponential(multiplier=0.2, max=10), before_sleep=before_sleep_log(log, logging.ERROR)
            ):
                with attempt:
                    await processor.process(records)
            for event in events:
                await stream.ack(event)

    return app


def run_worker(settings: Settings, loglevel: str = "WARNING") -> None:
    """Run the Faust worker until SIGTERM/SIGINT; metrics on ``settings.metrics_port`` (0 = off)."""
    from faust.worker import Worker
    from prometheus_client import start_http_server

    logging.basicConfig(level=loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
    app = build_app(settings)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
