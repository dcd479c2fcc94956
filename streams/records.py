"""The raw record handed from the Kafka consumer to the batch processor."""

from __future__ import annotations

from typing import Any, NamedTuple


class RawRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes


def to_record(m: Any) -> RawRecord:
    """The raw record of a faust ``Message`` (its timestamp is in seconds)."""
    return RawRecord(
        m.topic, m.partition, m.offset, int(m.timestamp * 1000) if m.timestamp else None, m.key, m.value or b""
    )
