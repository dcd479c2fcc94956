"""Per source partition marks: an offset, and when it was recorded, kept in Redis beside the state.

The dead-letter sink records how far every dead letter was delivered (ledger :data:`~core.keys.DLQ_LEDGER`); the
ClickHouse recovery guard records how far rows may have been written (:data:`~core.keys.CLICKHOUSE_LEDGER`).

>>> import asyncio
>>> ledger = MemoryLedger()
>>> asyncio.run(ledger.save({("page_views", 0): 41}))
>>> asyncio.run(ledger.load([("page_views", 0), ("page_views", 1)]))[("page_views", 0)][0]
41
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from core.keys import DLQ_LEDGER, ledger_key

Source = tuple[str, int]  # (topic, partition) of a source record


class Ledger(Protocol):
    async def load(self, sources: Iterable[Source]) -> dict[Source, tuple[int, int]]:
        """(offset, unix ms) of each source partition's mark, for those that have one."""
        ...

    async def save(self, marks: Mapping[Source, int], at_ms: Mapping[Source, int] | None = None) -> None:
        """Raise each partition's mark to its offset, recorded at ``at_ms`` (default: now). A mark never goes down,
        and one that does not rise keeps its time: a replaying owner's batch (records below the mark) must not
        lower it, or the next owner would look for what lies above it only since then, and miss it."""
        ...


class MemoryLedger:
    def __init__(self) -> None:
        self.marks: dict[Source, tuple[int, int]] = {}

    async def load(self, sources: Iterable[Source]) -> dict[Source, tuple[int, int]]:
        return {s: self.marks[s] for s in sources if s in self.marks}

    async def save(self, marks: Mapping[Source, int], at_ms: Mapping[Source, int] | None = None) -> None:
        now = int(time.time() * 1000)
        for s, o in marks.items():
            if o > self.marks.get(s, (-1, 0))[0]:
                self.marks[s] = (o, (at_ms or {}).get(s, now))


# for each (field, offset, ms): set "offset:ms" unless the field's offset is already as high (one hash: one slot)
RAISE = """
for i = 1, #ARGV, 3 do
    local old = redis.call('HGET', KEYS[1], ARGV[i])
    if not old or tonumber(string.match(old, '^(-?%d+):')) < tonumber(ARGV[i + 1]) then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ':' .. ARGV[i + 2])
    end
end
return 0
"""


class RedisLedger:
    """One hash per source topic (:func:`~core.keys.ledger_key`, field = partition, value = ``offset:unix_ms``).

    The topic is the hash tag, so each hash lives in one Redis Cluster slot.
    """

    def __init__(self, client: Any, prefix: str = DLQ_LEDGER) -> None:
        self.redis, self.prefix = client, prefix
        self._raise = client.register_script(RAISE)

    async def load(self, sources: Iterable[Source]) -> dict[Source, tuple[int, int]]:
        sources = list(sources)
        async with self.redis.pipeline(transaction=False) as pipe:
            for topic, partition in sources:
                pipe.hget(ledger_key(self.prefix, topic), str(partition))
            values = await pipe.execute()
        out = {}
        for source, value in zip(sources, values, strict=True):
            if value is not None:
                offset, at_ms = value.split(b":")
                out[source] = (int(offset), int(at_ms))
        return out

    async def save(self, marks: Mapping[Source, int], at_ms: Mapping[Source, int] | None = None) -> None:
        now = int(time.time() * 1000)
        by_topic: dict[str, list[str]] = {}
        for (topic, partition), offset in marks.items():
            by_topic.setdefault(topic, []).extend(
                (str(partition), str(offset), str((at_ms or {}).get((topic, partition), now)))
            )
        async with self.redis.pipeline(transaction=False) as pipe:
            for topic, args in by_topic.items():
                await self._raise(keys=[ledger_key(self.prefix, topic)], args=args, client=pipe)
            await pipe.execute()
