"""Produce JSON events to Kafka with an idempotent, batching producer."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from confluent_kafka import Producer

from churnstream.settings import Settings


def producer(settings: Settings) -> Producer:
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "log_level": 3,
        }
    )


def produce_events(settings: Settings, topic: str, events: Iterable[dict], key_field: str = "user_id") -> int:
    """Send ``events`` keyed by ``key_field``; flushes before returning the count sent."""
    p = producer(settings)
    n = 0
    for event in events:
        value = orjson.dumps(event)
        key = str(event[key_field]).encode()
        while True:
            try:
                p.produce(topic, value=value, key=key)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 10000 == 0:
            p.poll(0)
    remaining = p.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} messages were not delivered to {topic}")
    return n
