"""The raw record handed from the Kafka consumer to the batch processor, and what the worker holds of each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from core.contracts import Event, Rejection

if TYPE_CHECKING:
    from faust.types import Message


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


class Held(NamedTuple):
    """A record the worker's aligner holds: the faust message (to ack), its raw record and its decoded event."""

    message: Message
    record: RawRecord
    event: Event | Rejection
