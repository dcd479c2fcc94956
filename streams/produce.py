"""Produce records to Kafka with an idempotent, batching producer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import orjson
from confluent_kafka import Producer
from rich.console import Console
from rich.progress import Progress

from churnstream.settings import Settings
from simulation.generator import TOPIC_OF, Record


def producer(settings: Settings) -> Producer:
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "message.max.bytes": 1_000_000,
            "log_level": 3,
        }
    )


def produce_records(
    settings: Settings,
    records: Sequence[Record] | Iterable[Record],
    rate: float = 0.0,
    progress: Console | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send records (topic names are the defaults; mapped onto the configured ones), optionally at ``rate``/s;
    ``on_sent`` gets the count handed to the producer every 1,000 records."""
    topics = dict(zip(TOPIC_OF.values(), settings.input_topics, strict=True))
    p = producer(settings)
    n = 0
    start = time.monotonic()
    total = len(records) if isinstance(records, Sequence) else None
    with Progress(console=progress, disable=progress is None, transient=True) as bar:
        task = bar.add_task("producing", total=total)
        for rec in records:
            while True:
                try:
                    p.produce(topics.get(rec.topic, rec.topic), value=rec.value, key=rec.key)
                    break
                except BufferError:
                    p.poll(0.05)
            n += 1
            if n % 1000 == 0:
                p.poll(0)
                bar.update(task, completed=n)
                if on_sent is not None:
                    on_sent(n)
                if rate > 0:
                    time.sleep(max(0.0, start + n / rate - time.monotonic()))
    remaining = p.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} records were not delivered")
    return n


def produce_events(settings: Settings, events: Iterable[dict]) -> int:
    """Send event dicts (with ``type``) to their topics, keyed by ``user_id``."""
    return produce_records(
        settings, (Record(TOPIC_OF[e["type"]], str(e["user_id"]).encode(), orjson.dumps(e)) for e in events)
    )
