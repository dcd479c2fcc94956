"""What a crashed or revoked predecessor already wrote to ClickHouse, so its records do not write rows twice.

Rows of a batch reach ClickHouse before the users' states reach Redis (Redis holds the offsets, so it goes
last). A worker that dies between the two leaves rows whose records are applied again by the next owner, in
batches cut differently, so the insert deduplication tokens differ. To keep each row written once:

1. before a batch's ClickHouse inserts, the worker records per source partition the highest offset of the batch
   (``cs:ch:{topic}``, a :class:`~streams.ledger.RedisLedger`): rows of records above that mark were never
   written;
2. after an assignment, the first batches of a partition look at its mark once. For applied records at or below
   it, ClickHouse is asked which of their rows exist, and those rows are not written again.

Steady state costs one pipelined Redis write per batch; the ClickHouse lookups happen only while a partition
replays what its predecessor left unfinished.

>>> import asyncio
>>> from streams.ledger import MemoryLedger
>>> async def nothing_written(keys):
...     return set(), set()
>>> guard = RecoveryGuard(MemoryLedger(), nothing_written)
>>> asyncio.run(guard.mark({("page_views", 0): 99}))  # a predecessor's batch, up to offset 99
>>> asyncio.run(RecoveryGuard(guard.ledger, nothing_written).load({("page_views", 0): 120}))
{('page_views', 0): 99}
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from streams.ledger import Ledger, Source
from streams.records import RawRecord

if TYPE_CHECKING:
    from streams.sinks import ClickHouseSink

EventKey = tuple[str, str]  # (user_id, event_id)
Lookup = Callable[[Sequence[EventKey]], Awaitable[tuple[set[str], set[str]]]]


class RecoveryGuard:
    """Per source partition: the mark read at assignment, until the partition's batches pass it.

    ``lookup(keys)`` answers, for (user_id, event_id) pairs, the event ids that have an ``events`` row and those
    that have ``predictions`` rows.
    """

    def __init__(self, ledger: Ledger, lookup: Lookup) -> None:
        self.ledger, self.lookup = ledger, lookup
        self.seen: set[Source] = set()  # partitions whose mark was read since their assignment
        self.pending: dict[Source, int] = {}  # partitions still at or below the mark read then

    async def load(self, upto: Mapping[Source, int]) -> dict[Source, int]:
        """Read the marks of partitions new since their assignment; returns the partitions under recovery."""
        new = [s for s in upto if s not in self.seen]
        if new:
            marks = await self.ledger.load(new)
            self.pending.update({s: offset for s, (offset, _at) in marks.items()})
            self.seen.update(new)
        return dict(self.pending)

    def at_risk(self, source: Source, offset: int) -> bool:
        """May this record's rows already be in ClickHouse?"""
        mark = self.pending.get(source)
        return mark is not None and offset <= mark

    async def written(self, keys: Sequence[EventKey]) -> tuple[set[str], set[str]]:
        """Event ids (of ``keys``) that already have ``events`` rows, and those that have ``predictions`` rows."""
        if not keys:
            return set(), set()
        return await self.lookup(keys)

    async def mark(self, upto: Mapping[Source, int]) -> None:
        """Record, before the inserts, how far this batch's rows go; partitions past their old mark recover."""
        await self.ledger.save(upto)
        for source, offset in upto.items():
            if offset >= self.pending.get(source, offset + 1):
                del self.pending[source]

    def unsure(self, upto: Mapping[Source, int]) -> None:
        """A batch's insert failed: ClickHouse may hold some of its rows, so its redo asks which (see
        :func:`retry_token`)."""
        for source, offset in upto.items():
            self.pending[source] = max(self.pending.get(source, offset), offset)

    def forget(self, sources: Iterable[Source]) -> None:
        """These partitions were revoked: read their marks again if they come back."""
        for source in sources:
            self.seen.discard(source)
            self.pending.pop(source, None)


def batch_token(records: Sequence[RawRecord]) -> str:
    """The insert deduplication token of a batch: a digest of its source offsets (first, last and count per
    partition), so the same records give the same token whatever their order.

    >>> a, b = (RawRecord("page_views", 0, o, None, None, b"") for o in (7, 8))
    >>> batch_token([a, b]) == batch_token([b, a]) != batch_token([a])
    True
    """
    spans: dict[Source, tuple[int, int, int]] = {}
    for rec in records:
        low, high, n = spans.get((rec.topic, rec.partition), (rec.offset, rec.offset, 0))
        spans[(rec.topic, rec.partition)] = (min(low, rec.offset), max(high, rec.offset), n + 1)
    text = ";".join(f"{t}/{p}:{lo}-{hi}#{n}" for (t, p), (lo, hi, n) in sorted(spans.items()))
    return hashlib.sha1(text.encode()).hexdigest()


def retry_token(token: str) -> str:
    """The token of an insert redone after ClickHouse was asked which rows exist: never one used before.

    A failed insert can leave its token in a table's deduplication log although its part was never committed
    (embedded chDB does, measured in ``bench/dedup_after_failure.py``), and the redo would then be dropped as a
    duplicate. The lookup that precedes a redo already keeps out the rows that exist, so the redo's token only has
    to be new.

    >>> retry_token("time:ab") != retry_token("time:ab")
    True
    """
    return f"{token}:redo-{uuid.uuid4().hex}"


def clickhouse_lookup(events: ClickHouseSink, predictions: ClickHouseSink) -> Lookup:
    """A :data:`Lookup` over the ``events`` and ``predictions`` tables, each asked on its own sink's client.

    Both queries use the tables' sorting keys: ``events`` by ``user_id``, ``predictions`` by ``event_id``.
    """

    async def lookup(keys: Sequence[EventKey]) -> tuple[set[str], set[str]]:
        users = sorted({u for u, _ in keys})
        ids = sorted({e for _, e in keys})
        in_events = await events.query(
            "SELECT DISTINCT event_id FROM events WHERE user_id IN {u:Array(String)} AND event_id IN {e:Array(String)}",
            {"u": users, "e": ids},
        )
        in_predictions = await predictions.query(
            "SELECT DISTINCT event_id FROM predictions WHERE event_id IN {e:Array(String)}", {"e": ids}
        )
        return {r[0] for r in in_events}, {r[0] for r in in_predictions}

    return lookup
