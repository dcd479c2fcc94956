"""Where per-user state lives: a small interface, with Redis for production and a dict for unit tests.

The worker reads and writes encoded states (``read_many``, ``write_many``); the API reads decoded states
(``read_states``) and each user's latest scores (``read_scores``) through the same interface.

Writes are compare-and-set: each user's state is written only if it still is the one the batch read. During a
rebalance the old and the new owner of a partition may briefly process the same user; the loser of that race
gets the user back as a conflict and redoes its batch from the fresh state (its records are then replays).

>>> import asyncio
>>> store = MemoryStateStore()
>>> asyncio.run(store.write_many({"u1": b"v1"}, previous={"u1": None}))
set()
>>> asyncio.run(store.write_many({"u1": b"v2"}, previous={"u1": None}))  # u1 changed since it was read
{'u1'}
>>> from features.state import UserState, encode_state
>>> asyncio.run(store.write_many({"u2": encode_state(UserState(events=3))}, scores={"u2": {"churn:online": b"{}"}}))
set()
>>> [s and s.events for s in asyncio.run(store.read_states(["u2", "u3"]))]
[3, None]
>>> asyncio.run(store.read_scores(["u1", "u2", "u3"]))  # u1 has a state but no score yet, u3 is unknown
[{}, {'churn:online': b'{}'}, None]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Protocol

import redis.asyncio as aioredis

from core.keys import score_key, state_key
from features.state import UserState, decode_state

Scores = Mapping[str, Mapping[str, bytes]]


class StateStore(Protocol):
    """Reads and writes users' encoded states in one round trip per batch."""

    async def read_many(self, user_ids: Sequence[str]) -> list[bytes | None]: ...

    async def read_states(self, user_ids: Sequence[str]) -> list[UserState | None]:
        """The users' decoded states, None for a user without one."""
        ...

    async def read_scores(self, user_ids: Sequence[str]) -> list[dict[str, bytes] | None]:
        """Each user's latest scores by ``<task>:<kind>``: ``{}`` if the user has a state but no score yet, None
        if the user has neither (unknown)."""
        ...

    async def write_many(
        self,
        states: Mapping[str, bytes],
        scores: Scores | None = None,
        previous: Mapping[str, bytes | None] | None = None,
    ) -> set[str]:
        """Write states (and, if given, each user's latest scores by ``<task>:<kind>``) in one round trip.

        With ``previous`` (each user's state as read, None if absent), a user is written only if the stored
        state is still that one. Returns the users not written because it changed (empty when all were).
        """
        ...


def _decoded(blobs: Sequence[bytes | None]) -> list[UserState | None]:
    return [None if b is None else decode_state(b) for b in blobs]


class MemoryStateStore:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.scores: dict[str, dict[str, bytes]] = {}

    async def read_many(self, user_ids: Sequence[str]) -> list[bytes | None]:
        return [self.data.get(u) for u in user_ids]

    async def read_states(self, user_ids: Sequence[str]) -> list[UserState | None]:
        return _decoded(await self.read_many(user_ids))

    async def read_scores(self, user_ids: Sequence[str]) -> list[dict[str, bytes] | None]:
        return [dict(self.scores[u]) if u in self.scores else {} if u in self.data else None for u in user_ids]

    async def write_many(
        self,
        states: Mapping[str, bytes],
        scores: Scores | None = None,
        previous: Mapping[str, bytes | None] | None = None,
    ) -> set[str]:
        conflicts = {u for u in states if previous is not None and u in previous and self.data.get(u) != previous[u]}
        self.data.update({u: b for u, b in states.items() if u not in conflicts})
        for u, fields in (scores or {}).items():
            if u not in conflicts:
                self.scores.setdefault(u, {}).update(fields)
        return conflicts


# KEYS: state key, score key (same hash slot: both tagged with the user id)
# ARGV: sha1 of the state as read ('' if absent, '*' to skip the check), the new state, then score field/values
_CAS = """
local cur = redis.call('GET', KEYS[1])
if ARGV[1] ~= '*' then
  if ARGV[1] == '' then
    if cur then return 0 end
  elseif not cur or redis.sha1hex(cur) ~= ARGV[1] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2])
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
return 1
"""


def _digest(blob: bytes | None) -> str:
    return "" if blob is None else hashlib.sha1(blob, usedforsecurity=False).hexdigest()


class RedisStateStore:
    """One key per user (:func:`~core.keys.state_key`), pipelined: works unchanged on Redis Cluster.

    Each user is written by one small Lua script (compare, set the state, set the latest scores), so the
    compare-and-set touches only that user's keys, which share a hash slot.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._cas = client.register_script(_CAS)

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

    async def read_states(self, user_ids: Sequence[str]) -> list[UserState | None]:
        return _decoded(await self.read_many(user_ids))

    async def read_scores(self, user_ids: Sequence[str]) -> list[dict[str, bytes] | None]:
        if not user_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for u in user_ids:
                pipe.hgetall(score_key(u))
                pipe.exists(state_key(u))
            answers = await pipe.execute()
        out: list[dict[str, bytes] | None] = []
        for scores, known in zip(answers[::2], answers[1::2], strict=True):
            out.append({k.decode(): v for k, v in scores.items()} if scores or known else None)
        return out

    async def write_many(
        self,
        states: Mapping[str, bytes],
        scores: Scores | None = None,
        previous: Mapping[str, bytes | None] | None = None,
    ) -> set[str]:
        if not states and not scores:
            return set()
        scores = scores or {}
        users = list(states)
        async with self.redis.pipeline(transaction=False) as pipe:
            for u in users:
                expected = _digest(previous[u]) if previous is not None and u in previous else "*"
                fields = [x for kv in scores.get(u, {}).items() for x in kv]
                await self._cas(keys=[state_key(u), score_key(u)], args=[expected, states[u], *fields], client=pipe)
            for u, fields_of in scores.items():  # scores of users whose state did not change
                if u not in states:
                    pipe.hset(score_key(u), mapping=dict(fields_of))  # type: ignore[arg-type]
            written = await pipe.execute()
        return {u for u, ok in zip(users, written, strict=False) if not ok}

    async def close(self) -> None:
        await self.redis.aclose()
