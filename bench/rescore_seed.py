"""What ``churnstream bench rescore`` puts in front of the worker: many users due by time, and a backlog of events.

Due users. A few thousand template users' events are generated over ``days`` days and folded through
:func:`features.state.apply`, as the worker would; each state is marked as rescored at the end of the day before
the last generated day (``rescored_ms``), so exactly one day end is due: the end of the last day, ``due_ms``.
The encoded states are copied under new user ids (one template per user, round robin), each user goes into the due
index of the partition its key is produced to (CRC32 of the key, librdkafka's default partitioner), and every
partition's event-time clock is set one lateness plus an hour past ``due_ms``: the watermark has passed ``due_ms``
but not the next day end, and ``due_ms`` is within the last ``EXACT_DAYS - 2`` days of the clock, so the worker
interleaves the rescoring with events rather than draining the index before the next batch.

>>> due_ms, clock_ms = frame(days=28, lateness_ms=DAY_MS)
>>> due_ms == day_end(DEFAULT_START_MS // DAY_MS + 27), clock_ms - DAY_MS - due_ms == HOUR_MS + 1
(True, True)
>>> partition_of("user-1", 4) == zlib.crc32(b"user-1") % 4
True

Each template state has exactly ``due_ms`` due at the clock's watermark, and still only it once the backlog has
moved the clock on, and ``due_ms`` stays out of the range the worker must drain before the next batch:

>>> from features.schedule import due
>>> from features.state import EXACT_DAYS, decode_state
>>> states = [decode_state(b) for b in templates(40, days=28, seed=1)]
>>> end_ms = clock_ms + BACKLOG_SPAN_MS  # the latest event time of the backlog
>>> {tuple(due(s, clock_ms - DAY_MS)) for s in states} == {tuple(due(s, end_ms - DAY_MS)) for s in states}
True
>>> {tuple(due(s, clock_ms - DAY_MS)) for s in states} == {(due_ms,)}
True
>>> due_ms > end_ms - (EXACT_DAYS - 2) * DAY_MS
True

The backlog. Generated events of other, new users, with their event times squeezed into ``BACKLOG_SPAN_MS`` from
the clock (order kept), so no event is late and the watermark does not pass the next day end while they are
applied: the only users due are the seeded ones.

>>> squeeze([{"ts": 0}, {"ts": 50}, {"ts": 100}], start_ms=1000, span_ms=10)
[1000, 1005, 1010]
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import orjson
import redis

from core.days import DAY_MS, day_end
from core.keys import WATERMARKS, due_key, state_key
from features.offline import accept
from features.state import UserState, apply, encode_state
from simulation import generator
from simulation.generator import DEFAULT_START_MS, Record

HOUR_MS = 3_600_000
BACKLOG_SPAN_MS = 20 * HOUR_MS  # the clock starts one hour into a day: 20 h keeps it inside that day


def frame(days: int, lateness_ms: int) -> tuple[int, int]:
    """(``due_ms``: the end of the last generated day, ``clock_ms``: the partitions' clocks) for ``days`` days."""
    due_ms = day_end(DEFAULT_START_MS // DAY_MS + days - 1)
    return due_ms, due_ms + 1 + lateness_ms + HOUR_MS


def partition_of(user: str, partitions: int) -> int:
    """The partition librdkafka's default partitioner (``consistent_random``: CRC32 of the key) gives ``user``."""
    return zlib.crc32(user.encode()) % partitions


def templates(n: int, days: int, seed: int) -> list[bytes]:
    """Encoded states of up to ``n`` generated users (those with an event), each due at the end of the last day."""
    users = generator.make_users(n, days, seed, prefix="rescore-template")
    events = generator.simulate(users, days, seed)
    due_ms, _ = frame(days, 0)
    out = []
    for evs in accept((e["type"], orjson.dumps(e)) for e in events).values():
        state = UserState()
        for ev in evs:
            apply(state, ev)
        state.rescored_ms = due_ms - DAY_MS  # scored by time up to the day before: one day end is due
        out.append(encode_state(state))
    return out


def seed(
    r: redis.Redis, blobs: Sequence[bytes], users: int, prefix: str, partitions: int, due_ms: int, clock_ms: int
) -> dict[int, int]:
    """Write ``users`` states (``<prefix>-<i>``) and their due index entries, then the clocks; returns the users per
    partition."""
    per: dict[int, int] = dict.fromkeys(range(partitions), 0)
    cycle = itertools.cycle(blobs)
    for start in range(0, users, 10_000):
        index: dict[int, dict[str, int]] = {}
        with r.pipeline(transaction=False) as pipe:
            for i in range(start, min(users, start + 10_000)):
                user = f"{prefix}-{i}"
                pipe.set(state_key(user), next(cycle))
                index.setdefault(partition_of(user, partitions), {})[user] = due_ms
            for p, members in index.items():
                pipe.zadd(due_key(p), members)
                per[p] += len(members)
            pipe.execute()
    r.zadd(WATERMARKS, {str(p): clock_ms for p in range(partitions)})
    return per


def due_left(r: redis.Redis, partitions: int, due_ms: int) -> int:
    """Seeded users not rescored yet: due index entries at or before ``due_ms`` (a rescored user's next day end,
    and a backlog user's first, are later)."""
    return sum(int(r.zcount(due_key(p), "-inf", due_ms)) for p in range(partitions))


def squeeze(events: list[dict], start_ms: int, span_ms: int) -> list[int]:
    """The events' times mapped linearly onto ``[start_ms, start_ms + span_ms]`` (in place), order kept."""
    lo, hi = events[0]["ts"], events[-1]["ts"]
    for e in events:
        e["ts"] = start_ms + (e["ts"] - lo) * span_ms // max(1, hi - lo)
    return [e["ts"] for e in events]


def backlog(users: int, days: int, seed_: int, prefix: str, start_ms: int) -> list[Record]:
    """Generated records of ``users`` new users (``<prefix>-<i>``), event times squeezed from ``start_ms``."""
    events = generator.simulate(generator.make_users(users, days, seed_, prefix=prefix), days, seed_)
    squeeze(events, start_ms, BACKLOG_SPAN_MS)
    return generator.arrivals(events, seed_)
