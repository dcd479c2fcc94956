"""The Faust app and the worker entry point."""

from __future__ import annotations

import logging
from typing import Any

import faust

from churnstream.settings import Settings


def build_app(settings: Settings) -> faust.App:
    """A Faust app on the configured broker with the smoke agent attached.

    Consumption is at-least-once: each micro-batch is taken with ``noack_take`` and acked only after every sink
    has succeeded, so a failure leaves its offsets uncommitted and the records are delivered again.
    """
    from streams.smoke import SmokeProcessor

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
    page_views = app.topic(settings.topic_page_views, key_serializer="raw", value_serializer="raw")
    processor: SmokeProcessor | None = None

    @app.agent(page_views, name="smoke")
    async def smoke(stream: Any) -> None:  # a faust.Stream: noack_take is not on StreamT
        nonlocal processor
        processor = processor or SmokeProcessor(settings)
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):
            records = [(e.message.topic, e.message.partition, e.message.offset, e.value) for e in events]
            await processor.process(records)
            for event in events:
                await stream.ack(event)

    return app


def run_worker(settings: Settings, loglevel: str = "WARNING") -> None:
    """Run the Faust worker until SIGTERM/SIGINT."""
    from faust.worker import Worker

    logging.basicConfig(level=loglevel)
    app = build_app(settings)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
