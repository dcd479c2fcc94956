"""The dead-letter sink: the original bytes and key, with the source coordinates and reason in headers.

Each malformed record reaches ``events.dlq`` exactly once, across retries, crashes, rebalances and replays:

- per source partition, a *ledger* in Redis remembers the offset up to which every dead letter was delivered
  (written after each batch's effects) and when;
- in-process, the sink remembers the source offsets it delivered above that mark, so a batch redone after a
  failed sink does not send them again;
- after a restart or a rebalance, the first dead letter above the mark triggers one *scan* of the DLQ topic
  from the mark's time on, which finds what a crashed predecessor delivered but did not record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.ledger import Ledger, Source
from streams.metrics import DLQ
from streams.readback import scan_since
from streams.records import RawRecord

Headers = list[tuple[str, bytes]]
SCAN_SLACK_MS = 30_000  # clock skew between workers that may have written the DLQ


class DeadLetterSink(Protocol):
    def add(self, record: RawRecord, reason: str, detail: str) -> None: ...

    async def flush(self) -> int: ...

    async def commit(self, upto: Mapping[Source, int]) -> None:
        """Every record of each source partition up to the given offset has been processed."""
        ...

    def forget(self, sources: Iterable[Source]) -> None:
        """These partitions were revoked: another worker may now write their dead letters."""
        ...

    async def settle(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until no flush is under way: called when partitions are revoked, so
        their next owner's scan of the DLQ sees every dead letter this worker sent."""
        ...

    async def close(self, timeout: float) -> None:
        """The worker is stopping: send nothing more, and wait (up to ``timeout`` seconds) for a flush under way.
        Called before the consumer leaves the group, which revokes nothing: without it, letters still on their
        way could reach the DLQ after the next owner scanned it, and be sent twice."""
        ...


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

    async def commit(self, upto: Mapping[Source, int]) -> None:
        return None

    def forget(self, sources: Iterable[Source]) -> None:
        return None

    async def settle(self, timeout: float) -> None:
        return None

    async def close(self, timeout: float) -> None:
        return None


Scan = Callable[[int, set[Source]], Awaitable[dict[Source, set[int]]]]
Send = Callable[[bytes | None, bytes, Headers], Awaitable[Awaitable[Any]]]


@dataclass
class _Known:
    mark: int  # every dead letter of offsets <= mark was delivered
    mark_ms: int = 0  # when the mark was recorded (the scan starts there)
    sent: set[int] = field(default_factory=set)  # delivered offsets above the mark
    saved_at: float = 0.0
    scanned: bool = False  # what a predecessor delivered above the mark has been read from the DLQ


class KafkaDeadLetters:
    """Sends through an async ``send(key, value, headers)`` returning a delivery future; flush awaits delivery.

    With a ``ledger`` and a ``scan`` (see the module docstring) no dead letter is sent twice. Records of
    partitions this worker no longer ``owned`` (revoked while their batch ran) are left to the new owner,
    which processes them again anyway.
    """

    def __init__(
        self,
        send: Send,
        ledger: Ledger | None = None,
        scan: Scan | None = None,
        owned: Callable[[Source], bool] = lambda _source: True,
    ) -> None:
        self._send, self._ledger, self._scan, self._owned = send, ledger, scan, owned
        self._buffer: list[tuple[RawRecord, str, str]] = []
        self._buffered: set[tuple[str, int, int]] = set()  # a batch redone after a failed flush adds its records again
        self._known: dict[Source, _Known] = {}
        self._touched: set[Source] = set()
        self._idle = asyncio.Event()  # no flush under way
        self._idle.set()
        self._closed = False  # the worker is stopping: its partitions are as good as revoked

    def add(self, record: RawRecord, reason: str, detail: str) -> None:
        coordinates = (record.topic, record.partition, record.offset)
        if coordinates not in self._buffered:
            self._buffered.add(coordinates)
            self._buffer.append((record, reason, detail))

    async def _learn(self, sources: set[Source]) -> None:
        """The marks of source partitions this process has not written to since it got them, and, on the first
        dead letter above a partition's mark (in this batch or a later one), what a predecessor delivered there.

        Records at or below the mark often come first after a restart: malformed ones are dead-lettered again
        whatever the state says, and they need no scan. The scan waits for the first one above the mark.
        """
        if unknown := sources - self._known.keys():
            marks = await self._ledger.load(unknown) if self._ledger else {}
            for s in unknown:
                offset, at_ms = marks.get(s, (-1, 0))
                self._known[s] = _Known(offset, at_ms, scanned=self._scan is None)
        above = {
            (r.topic, r.partition)
            for r, _, _ in self._buffer
            if not self._known[(r.topic, r.partition)].scanned and r.offset > self._known[(r.topic, r.partition)].mark
        }
        if above and self._scan is not None:
            since = min(self._known[s].mark_ms for s in above)
            found = await self._scan(max(0, since - SCAN_SLACK_MS), above)
            for s in above:
                self._known[s].sent |= found.get(s, set())
                self._known[s].scanned = True

    async def flush(self) -> int:
        if not self._buffer:
            return 0
        self._idle.clear()
        try:
            return await self._flush()
        finally:
            self._idle.set()

    async def settle(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return  # a flush stuck on a failing broker: its records are skipped as not owned when it is redone

    async def close(self, timeout: float) -> None:
        self._closed = True
        await self.settle(timeout)

    def _mine(self, source: Source) -> bool:
        """Dead letters of ``source`` are this worker's to send and to mark: it owns the partition and is not
        stopping (a stopping worker's partitions are as good as revoked: the next owner sends what is left)."""
        return self._owned(source) and not self._closed

    async def _flush(self) -> int:
        sources = {(r.topic, r.partition) for r, _, _ in self._buffer}
        self._touched |= sources
        await self._learn(sources)
        todo = []
        for entry in self._buffer:
            source = (entry[0].topic, entry[0].partition)
            known = self._known[source]
            if entry[0].offset > known.mark and entry[0].offset not in known.sent and self._mine(source):
                todo.append(entry)
        pending = [await self._send(r.key, r.value, dlq_headers(r, reason, detail)) for r, reason, detail in todo]
        failed: BaseException | None = None
        for (r, reason, _), fut in zip(todo, pending, strict=True):
            try:
                await fut
            except Exception as exc:  # the others may be delivered: record them, so a retry sends only this one
                failed = failed or exc
                continue
            self._known[(r.topic, r.partition)].sent.add(r.offset)
            DLQ.labels(reason).inc()
        if failed is not None:
            raise failed
        self._buffer.clear()
        self._buffered.clear()
        return len(todo)

    async def commit(self, upto: Mapping[Source, int]) -> None:
        """Move the marks of the partitions this batch dead-lettered (or whose mark is a minute old)."""
        now = time.monotonic()
        # a partition revoked (or a worker stopping) while its batch ran had its dead letters skipped: no mark moves
        due = {
            s: o
            for s, o in upto.items()
            if s in self._known and (s in self._touched or now - self._known[s].saved_at > 60) and self._mine(s)
        }
        # a mark keeps its time while letters above the new one are known (a predecessor's, found by the scan):
        # the next owner's scan starts at the mark's time, and must find them
        now_ms = int(time.time() * 1000)
        at_ms = {}
        for s, offset in due.items():
            known = self._known[s]
            later = any(o > max(known.mark, offset) for o in known.sent)
            at_ms[s] = known.mark_ms if later or offset <= known.mark else now_ms
        if self._ledger is not None and due:
            await self._ledger.save(due, at_ms)  # never lowers a mark: a replayed batch may end below it
        for s, offset in due.items():
            known = self._known[s]
            if offset > known.mark:
                known.mark, known.mark_ms = offset, at_ms[s]
            known.sent = {o for o in known.sent if o > known.mark}
            known.saved_at = now
        self._touched.clear()

    def forget(self, sources: Iterable[Source]) -> None:
        for s in sources:
            self._known.pop((s[0], s[1]), None)


def scan_dead_letters(bootstrap: str, topic: str, since_ms: int, sources: set[Source]) -> dict[Source, set[int]]:
    """Source offsets of the dead letters in ``topic`` written since ``since_ms`` for the given sources."""
    found: dict[Source, set[int]] = {s: set() for s in sources}

    def visit(m: Any) -> None:
        h: dict[str, Any] = dict(m.headers() or [])
        source = (h.get("source_topic", b"").decode(), int(h.get("source_partition", b"-1")))
        if source in found:
            found[source].add(int(h["source_offset"]))

    scan_since(bootstrap, topic, since_ms, visit)
    return found


def kafka_scan(bootstrap: str, topic: str) -> Scan:
    async def scan(since_ms: int, sources: set[Source]) -> dict[Source, set[int]]:
        return await asyncio.to_thread(scan_dead_letters, bootstrap, topic, since_ms, sources)

    return scan
