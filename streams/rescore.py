"""Scores that follow time: users are rescored at day ends with no new event, driven by event time.

Each partition has an event-time clock: the latest event time applied from it (``cs:wm``, written after the
users' states, so it never runs ahead of them). Its watermark is the clock less the lateness
(``CHURNSTREAM_LABEL_LATENESS_S``); with ``CHURNSTREAM_CLOCK=wall`` the wall clock less the lateness advances it
too while the partition is caught up. Each user's next grid point (:func:`features.schedule.next_due`) sits in the
partition's due index (``cs:due:<partition>``), written after every batch. A step takes up to
``CHURNSTREAM_RESCORE_BATCH`` users whose grid point the watermark has passed, computes each due point's features
from the same :func:`~features.compute.features` (exact at day ends, :mod:`features.state`), scores them in one
call per model, writes the ``predictions`` time rows, then the states (``rescored_ms``, compare-and-set) with their
latest scores, then the index. Steps run between event batches, within a share of the worker's time while
events flow (:mod:`streams.budget`), so event processing is never starved.

Exactly once. Before a step's rows are written, its users join the partition's in-flight set
(``cs:rescoring:<partition>``); they leave it once their states are written. A step whose users are in flight
(a predecessor crashed, an insert failed, or a write lost a race) first asks ClickHouse which of their time rows
exist and writes only the others, under a new insert deduplication token (:func:`streams.written.retry_token`).
The rows themselves are a function of the events, not of when the step runs, so a replay gives the same rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from churnstream.settings import Settings
from core.contracts import Event, Rejection
from core.days import DAY_MS
from core.keys import WATERMARKS, due_key, rescoring_key
from features.compute import FEATURE_NAMES, as_of_view, vector
from features.schedule import due, next_due
from features.state import EXACT_DAYS, UserState, decode_state, encode_state
from features.store import RedisStateStore, StateStore
from features.weekly import WEEK_COLUMNS, weekly_activity
from models.drift import POPULATION_COLUMNS, in_sample
from streams.metrics import RESCORE_WATERMARK, RESCORED
from streams.records import RawRecord
from streams.retry import Conflict, effect
from streams.scoring import Scorer, TimeRow
from streams.sinks import ClickHouseSink, Sink
from streams.written import retry_token

SILVER_COLUMNS = ("user_id", "as_of", *FEATURE_NAMES, *WEEK_COLUMNS)  # ClickHouse `user_features_daily`
Lookup = Callable[[Sequence[str]], Awaitable[set[tuple[str, int]]]]


def time_rows_lookup(predictions: ClickHouseSink) -> Lookup:
    """(user, as_of ms) of the time rows that exist for ``users``, asked on the predictions sink's client."""

    async def lookup(users: Sequence[str]) -> set[tuple[str, int]]:
        rows = await predictions.query(
            "SELECT DISTINCT user_id, toUnixTimestamp64Milli(as_of) FROM predictions "
            "WHERE user_id IN {u:Array(String)} AND trigger = 'time'",
            {"u": list(users)},
        )
        return {(str(u), int(t)) for u, t in rows}

    return lookup


def split_by_event_time(
    decoded: Sequence[tuple[RawRecord, Event | Rejection]], clocks: Mapping[int, int], span_ms: int = DAY_MS
) -> list[list[tuple[RawRecord, Event | Rejection]]]:
    """Cut a batch where a partition's event time moves more than ``span_ms`` past where it stood at the start of
    the piece (``clocks``: each partition's clock before the batch), so the rescorer can catch up in between.

    >>> from core.contracts import Event
    >>> rec = lambda p, o: RawRecord("page_views", p, o, None, None, b"")
    >>> batch = [(rec(0, o), Event("page_view", str(o), "u", t)) for o, t in enumerate([5, DAY_MS, DAY_MS + 10, 9])]
    >>> [len(piece) for piece in split_by_event_time(batch, {0: 1})]
    [2, 2]
    """
    pieces: list[list[tuple[RawRecord, Event | Rejection]]] = [[]]
    base = {p: t for p, t in clocks.items() if t}
    seen = dict(base)
    for rec, ev in decoded:
        if isinstance(ev, Event):
            p = rec.partition
            start = base.setdefault(p, ev.ts_ms)
            if ev.ts_ms > start + span_ms and pieces[-1]:
                pieces.append([])
                base = dict(seen)
                base.setdefault(p, ev.ts_ms)
            seen[p] = max(seen.get(p, 0), ev.ts_ms)
        pieces[-1].append((rec, ev))
    return [piece for piece in pieces if piece]


def rows_token(rows: Sequence[TimeRow]) -> str:
    """The insert deduplication token of a step's time rows: a digest of its (user, as_of) pairs."""
    text = ";".join(sorted(f"{r.user_id}@{r.as_of_ms}" for r in rows))
    return "time:" + hashlib.sha1(text.encode()).hexdigest()


class Rescorer:
    """The time path of one worker: clocks, due indexes and steps, for the partitions it is given."""

    def __init__(
        self,
        redis: aioredis.Redis,
        store: StateStore,
        scorer: Scorer,
        predictions: Sink,
        lookup: Lookup,
        every_ms: int = DAY_MS,
        lateness_ms: int = DAY_MS,
        batch: int = 5000,
        wall_clock: bool = False,
        population: Sink | None = None,
        sample: float = 0.0,
        segments: Sink | None = None,
        silver: Sink | None = None,
    ) -> None:
        self.redis, self.store, self.scorer, self.predictions, self.lookup = redis, store, scorer, predictions, lookup
        self.population, self.sample = population, sample  # `daily_features`: the sampled users' rows, for drift
        self.segments = segments  # `user_segments`: the rows' RFM segments
        self.silver = silver  # `user_features_daily`: every row's features and weekly activity flags
        self.every_ms, self.lateness_ms, self.batch, self.wall_clock = every_ms, lateness_ms, batch, wall_clock
        self.clocks: dict[int, int] = {}  # partition -> latest event time applied (restored from cs:wm)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: RedisStateStore,
        scorer: Scorer,
        predictions: ClickHouseSink,
        segments: Sink | None = None,
    ) -> Rescorer:
        """The worker's rescorer: its cadence, lateness, batch and clock, and the drift sample, from the settings."""
        return cls(
            store.redis,
            store,
            scorer,
            predictions,
            time_rows_lookup(predictions),
            every_ms=settings.rescore_every_s * 1000,
            lateness_ms=int(settings.label_lateness_s * 1000),
            batch=settings.rescore_batch,
            wall_clock=settings.clock == "wall",
            population=ClickHouseSink(settings.clickhouse_dsn, "daily_features", POPULATION_COLUMNS),
            sample=settings.drift_sample,
            segments=segments,
            silver=ClickHouseSink(settings.clickhouse_dsn, "user_features_daily", SILVER_COLUMNS),
        )

    # ---- clocks and the due index ---------------------------------------------------------------------------------
    async def restore(self, partitions: Iterable[int]) -> None:
        """Read the clocks of partitions this worker has not seen (after an assignment)."""
        new = [p for p in partitions if p not in self.clocks]
        if new:
            scores = await effect("redis", self.redis.zmscore, WATERMARKS, [str(p) for p in new])
            self.clocks.update({p: int(s or 0) for p, s in zip(new, scores, strict=True)})

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.clocks.pop(p, None)

    async def record(self, users: Mapping[int, Mapping[str, UserState]], clocks: Mapping[int, int]) -> None:
        """After a batch's states are written: each user's next grid point, then the partitions' clocks."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p, states in users.items():
                self._index(pipe, p, states)
            if clocks:
                pipe.zadd(WATERMARKS, {str(p): ts for p, ts in clocks.items()}, gt=True)
            await pipe.execute()
        for p, ts in clocks.items():
            self.clocks[p] = max(self.clocks.get(p, 0), ts)

    def _index(self, pipe: Any, partition: int, states: Mapping[str, UserState]) -> None:
        nexts = {u: next_due(s, self.every_ms) for u, s in states.items()}
        if scheduled := {u: t for u, t in nexts.items() if t is not None}:
            pipe.zadd(due_key(partition), scheduled)
        if lapsed := [u for u, t in nexts.items() if t is None]:
            pipe.zrem(due_key(partition), *lapsed)

    def watermark(self, partition: int, seen_ms: int | None = None) -> int:
        """Day ends at or before this are due in ``partition``.

        With the wall clock, ``seen_ms`` moves the clock on while the stream is quiet: when the ends of the
        partition's input topics were last fetched, with every record before them applied (None: not all
        applied). Not the time now: a partition's end last fetched before an outage says nothing of what came since.

        >>> r = Rescorer(None, None, None, None, None, lateness_ms=1_000, wall_clock=True)
        >>> r.clocks[0] = 5_000
        >>> r.watermark(0), r.watermark(0, seen_ms=9_000), r.watermark(0, seen_ms=3_000)
        (4000, 8000, 4000)
        """
        clock = self.clocks.get(partition, 0)
        if self.wall_clock and seen_ms:
            clock = max(clock, seen_ms)
        return clock - self.lateness_ms if clock else 0

    def must_catch_up(self, partition: int, oldest_due: int) -> bool:
        """A due point this far behind the partition's clock must be scored before more events are applied: the
        users' states answer exactly only for the last ``EXACT_DAYS`` day ends before their latest event."""
        return oldest_due <= self.clocks.get(partition, 0) - (EXACT_DAYS - 2) * DAY_MS

    async def oldest_due(self, partition: int) -> int | None:
        return (await self.oldest_dues([partition]))[partition]

    async def oldest_dues(self, partitions: Sequence[int]) -> dict[int, int | None]:
        """Each partition's earliest due day end (None: nobody due), in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.zrange(due_key(p), 0, 0, withscores=True)
            answers = await pipe.execute()
        return {p: int(first[0][1]) if first else None for p, first in zip(partitions, answers, strict=True)}

    # ---- steps ----------------------------------------------------------------------------------------------------
    async def step(self, partition: int, seen_ms: int | None = None) -> int:
        """Rescore up to ``batch`` users of ``partition`` whose next grid point the watermark has passed, and stop
        adding users once ``batch`` rows (user, day end) are due; returns how many users were looked at (0: none
        due)."""
        watermark = self.watermark(partition, seen_ms)
        RESCORE_WATERMARK.labels(str(partition)).set(watermark)
        if watermark <= 0:
            return 0
        members = await effect("redis", self.redis.zrangebyscore, due_key(partition), "-inf", watermark, 0, self.batch)
        if not members:
            return 0
        users = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        blobs = await effect("redis", self.store.read_many, users)
        rows: list[TimeRow] = []
        states: dict[str, UserState] = {}
        cache: set[str] = set()
        for u, blob in zip(users, blobs, strict=True):
            if len(rows) >= self.batch:  # a step is bounded by rows too: users far behind have many day ends due
                break
            state = decode_state(blob)
            states[u] = state
            points = due(state, watermark, self.every_ms)
            for point in points:
                rows.append(TimeRow(u, point, as_of_view(state, point).last_ms, vector(state, point)))
            if points:
                state.rescored_ms = points[-1]
                if points[-1] >= state.last_ms:  # no later event row: this is the user's latest score
                    cache.add(u)
        users, blobs = users[: len(states)], blobs[: len(states)]  # the others wait for the next step
        token = rows_token(rows)
        if in_flight := await effect("redis", self._in_flight, partition, users):
            written = await effect("clickhouse", self.lookup, in_flight)
            rows = [r for r in rows if (r.user_id, r.as_of_ms) not in written]
            token = retry_token(rows_token(rows))  # a failed insert may have left the old token behind
        scored = self.scorer.score_times(rows, cache)
        await effect("redis", self.redis.sadd, rescoring_key(partition), *users)
        if self.population is not None and (sampled := [r for r in rows if in_sample(r.user_id, self.sample)]):
            rows_out = [(r.user_id, r.as_of_ms, r.x) for r in sampled]  # before the time rows: found with them
            await effect("clickhouse", self.population.write, rows_out, token)
        if self.silver is not None:
            silver = [(r.user_id, r.as_of_ms, *r.x, *weekly_activity(states[r.user_id], r.as_of_ms)) for r in rows]
            await effect("clickhouse", self.silver.write, silver, token)
        await effect("clickhouse", self.predictions.write, scored.predictions, token)
        if self.segments is not None:
            await effect("clickhouse", self.segments.write, scored.segments, token)
        changed = {u: s for u, s in states.items() if s.events}
        conflicts = await effect(
            "redis",
            self.store.write_many,
            {u: encode_state(s) for u, s in changed.items()},
            scored.cache,
            {u: blobs[i] for i, u in enumerate(users) if u in changed},
        )
        if conflicts:
            raise Conflict(f"{len(conflicts)} users' state changed while they were rescored")
        async with self.redis.pipeline(transaction=False) as pipe:
            self._index(pipe, partition, changed)
            if gone := [u for u in users if u not in changed]:  # no state (deleted): nothing to score
                pipe.zrem(due_key(partition), *gone)
            pipe.srem(rescoring_key(partition), *users)
            await effect("redis", pipe.execute)
        RESCORED.inc(len(users))
        return len(users)

    async def _in_flight(self, partition: int, users: Sequence[str]) -> list[str]:
        flags = await self.redis.smismember(rescoring_key(partition), list(users))
        return [u for u, f in zip(users, flags, strict=True) if f]
