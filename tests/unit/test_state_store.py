"""Compare-and-set state writes: the loser of a race between two owners of a user redoes its batch."""

from __future__ import annotations

import asyncio

import pytest

from features.store import MemoryStateStore
from streams.dlq import ListDeadLetters
from streams.processor import FeatureProcessor
from streams.records import RawRecord
from streams.retry import Conflict
from streams.sinks import ListSink

TOPICS = ("page_views", "cart_events", "purchases")


def page_view(offset: int, ts: int) -> RawRecord:
    value = f'{{"type":"page_view","event_id":"e{offset}","user_id":"u1","ts":{ts},"page_type":"home"}}'
    return RawRecord("page_views", 0, offset, ts, b"u1", value.encode())


class RacingStore(MemoryStateStore):
    """Another worker writes the user between this worker's read and its write, once."""

    def __init__(self, other: FeatureProcessor | None = None) -> None:
        super().__init__()
        self.other: FeatureProcessor | None = other
        self.raced = False

    async def read_many(self, user_ids: list[str]) -> list[bytes | None]:  # type: ignore[override]
        blobs = await super().read_many(user_ids)
        if self.other is not None and not self.raced:
            self.raced = True
            await self.other.process([page_view(0, 1_763_800_000_000)])
        return blobs


def test_a_write_over_a_state_changed_since_the_read_is_a_conflict_and_the_redo_applies_both() -> None:
    store = RacingStore()
    other = FeatureProcessor(TOPICS, store, ListSink(), ListDeadLetters())
    store.other = other
    mine = FeatureProcessor(TOPICS, store, ListSink(), ListDeadLetters())
    batch = [page_view(0, 1_763_800_000_000), page_view(1, 1_763_800_001_000)]
    with pytest.raises(Conflict):
        asyncio.run(mine.process(batch))
    result = asyncio.run(mine.process(batch))  # the redo: record 0 is now a replay
    assert result.outcomes == {"replayed": 1, "applied": 1}
    from features.state import decode_state

    assert decode_state(store.data["u1"]).events == 2
