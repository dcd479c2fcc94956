"""The dead-letter sink: the original bytes and key, with the source coordinates and reason in headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from streams.metrics import DLQ
from streams.records import RawRecord

Headers = list[tuple[str, bytes]]


class DeadLetterSink(Protocol):
    def add(self, record: RawRecord, reason: str, detail: str) -> None: ...

    async def flush(self) -> int: ...


def dlq_headers(record: RawRecord, reason: str, detail: str) -> Headers:
    return [
        ("reason", reason.encode()),
        ("detail", detail[:512].encode()),
        ("source_topic", record.topic.encode()),
        ("source_partition", str(record.partition).encode()),
        ("source_offset", str(record.offset).encode()),
        ("source_timestamp_ms", str(record.timestamp_ms or "").encode()),
    ]


class ListDeadLetters:
    """In-memory sink for unit tests."""

    def __init__(self) -> None:
        self.sent: list[tuple[RawRecord, str, str]] = []
        self._buffer: list[tuple[RawRecord, str, str]] = []

    def add(self, record: RawRecord, reason: str, detail: str) -> None:
        self._buffer.append((record, reason, detail))

    async def flush(self) -> int:
        n = len(self._buffer)
        self.sent += self._buffer
        self._buffer.clear()
        return n


Send = Callable[[bytes | None, bytes, Headers], Awaitable[Awaitable[Any]]]


class KafkaDeadLetters:
    """Sends through an async ``send(key, value, headers)`` returning a delivery future; flush awaits delivery."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._buffer: list[tuple[RawRecord, str, str]] = []

    def add(self, record: RawRecord, reason: str, detail: str) -> None:
        self._buffer.append((record, reason, detail))

    async def flush(self) -> int:
        if not self._buffer:
            return 0
        pending = [
            await self._send(r.key, r.value, dlq_headers(r, reason, detail)) for r, reason, detail in self._buffer
        ]
        for fut in pending:
            await fut
        for _, reason, _ in self._buffer:
            DLQ.labels(reason).inc()
        n = len(self._buffer)
        self._buffer.clear()
        return n
