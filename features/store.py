"""Where per-user state lives: a small interface, with Redis for production and a dict for unit tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import redis.asyncio as aioredis

from features.state import score_key, state_key


class StateStore(Protocol):
    """Reads and writes users' encoded states in one round trip per batch."""

    async def read_many(self, user_ids: Sequence[str]) -> list[bytes | None]: ...

    async def write_many(self, states: Mapping[str, bytes], scores: Scores | None = None) -> None:
        """Write states (and, if given, each user's latest scores by ``<task>:<kind>``) in one round trip."""
        ...


Scores = Mapping[str, Mapping[str, bytes]]


class MemoryStateStore:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.scores: dict[str, dict[str, bytes]] = {}

    async def read_many(self, user_ids: Sequence[str]) -> list[bytes | None]:
        return [self.data.get(u) for u in user_ids]

    async def write_many(self, states: Mapping[str, bytes], scores: Scores | None = None) -> None:
        self.data.update(states)
        for u, fields in (scores or {}).items():
            self.scores.setdefault(u, {}).update(fields)


class RedisStateStore:
    """One key per user (``cs:u:{user_id}``), pipelined: works unchanged on Redis Cluster."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client

    @classmethod
    def from_url(cls, url: str) -> RedisStateStore:
        return cls(aioredis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5))

    async def read_many(self, user_ids: Sequence[str]) -> list[bytes | None]:
        if not user_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for u in user_ids:
                pipe.get(state_key(u))
            return list(await pipe.execute())

    async def write_many(self, states: Mapping[str, bytes], scores: Scores | None = None) -> None:
        if not states and not scores:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for u, blob in states.items():
                pipe.set(state_key(u), blob)
            for u, fields in (scores or {}).items():
                pipe.hset(score_key(u), mapping=dict(fields))  # type: ignore[arg-type]
            await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()
