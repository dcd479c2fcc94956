"""Reading back what a worker sent: every record of a topic produced since a time, up to the topic's end.

A sink that must send a record once (dead letters, alerts) marks in Redis when it starts sending; after a crash
before its "done" mark, it reads back the topic from that time and sends only what is not there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def scan_since(bootstrap: str, topic: str, since_ms: int, visit: Callable[[Any], None]) -> None:
    """Call ``visit`` with each record (a confluent-kafka message) of ``topic`` written since ``since_ms``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "churnstream-readback", "enable.auto.commit": False}
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        wanted = [TopicPartition(topic, p, since_ms) for p in md.topics[topic].partitions]
        starts = [tp for tp in consumer.offsets_for_times(wanted, timeout=10) if tp.offset >= 0]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in starts}
        todo = {tp.partition for tp in starts if tp.offset < ends[tp.partition]}
        consumer.assign([tp for tp in starts if tp.partition in todo])
        deadline = time.monotonic() + 120
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} back did not reach its end offsets")
            for m in consumer.consume(10_000, timeout=5):
                if m.error() is not None:
                    continue
                visit(m)
                partition, offset = int(m.partition() or 0), int(m.offset() or 0)
                if offset + 1 >= ends[partition]:
                    todo.discard(partition)
    finally:
        consumer.close()


def keys_since(bootstrap: str, topic: str, since_ms: int) -> set[bytes]:
    """The keys of the records of ``topic`` written since ``since_ms``."""
    found: set[bytes] = set()
    scan_since(bootstrap, topic, since_ms, lambda m: found.add(m.key() or b""))
    return found
