"""Compare-and-set state writes: the loser of a race between two owners of a user redoes its batch."""

from __future__ import annotations

import asyncio

import pytest
import redis

from features.state import UserState, encode_state
from features.store import MemoryStateStore, RedisStateStore, StateStore
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


async def reads(store: StateStore) -> tuple[list[UserState | None], list[dict[str, bytes] | None]]:
    users = ["scored", "unscored", "score-only", "unknown"]
    await store.write_many(
        {"scored": encode_state(UserState(events=2)), "unscored": encode_state(UserState(events=1))},
        scores={"scored": {"churn:pretrained": b'{"score":0.5}', "purchase:online": b'{"score":0.1}'}},
    )
    await store.write_many({}, scores={"score-only": {"churn:online": b'{"score":0.9}'}})
    return await store.read_states(users), await store.read_scores(users)


def test_the_redis_store_reads_states_and_scores_as_the_reference_store_does(redis_url: str) -> None:
    """What the API reads through: decoded states, and scores with None only for a user with neither."""
    redis.Redis.from_url(redis_url).flushdb()

    async def from_redis() -> tuple[list[UserState | None], list[dict[str, bytes] | None]]:
        store = RedisStateStore.from_url(redis_url)
        try:
            return await reads(store)
        finally:
            await store.close()

    states, scores = asyncio.run(from_redis())
    assert (states, scores) == asyncio.run(reads(MemoryStateStore()))
    assert [s and s.events for s in states] == [2, 1, None, None]
    assert scores == [
        {"churn:pretrained": b'{"score":0.5}', "purchase:online": b'{"score":0.1}'},
        {},
        {"churn:online": b'{"score":0.9}'},
        None,
    ]
