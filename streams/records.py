"""The raw record handed from the Kafka consumer to the batch processor."""

from __future__ import annotations

from typing import NamedTuple


class RawRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes
