"""One micro-batch through the feature path: validate, fold into per-user state, write every sink, then ack.

Order of effects, each idempotent; a failed effect raises (:func:`streams.retry.effect`) and the worker redoes the
whole batch (:func:`streams.retry.until_done`), so retries happen at one level:
1. dead letters (malformed and ``too_late`` records) to ``events.dlq``;
2. how far this batch's ClickHouse rows go, per source partition (:mod:`streams.written`);
3. applied events to the ClickHouse ``events`` table;
4. prediction rows of the applied events to ClickHouse ``predictions`` (one per event, task and model kind,
   scored right after the event is applied);
5. the online learner's labels and snapshots (one Redis transaction, :mod:`streams.online`);
6. users' states to Redis with their per-partition offsets and latest scores (not of partitions revoked since 1.);
7. each user's next time to be scored by time and each partition's event-time clock (:mod:`streams.rescore`).
Redis goes last: once it holds the offsets, a redelivered record is skipped, so everything it produces
elsewhere must already be written. The caller acks the batch's records only after ``process`` returns.

Both inserts carry the batch's :func:`batch_token`, so a batch retried or redone adds no row; rows that a
crashed predecessor wrote for records it never recorded in Redis are found by the recovery guard and skipped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core.contracts import Event, Rejection, decode
from core.keys import CLICKHOUSE_LEDGER
from features.compute import vector
from features.interest import HALF_LIFE_DAYS
from features.state import HORIZON_DAYS, UserState, apply, decode_state, encode_state, partition_code
from features.store import StateStore
from streams.bronze import bronze_row
from streams.dlq import DeadLetterSink
from streams.latency import observe_since
from streams.ledger import RedisLedger, Source
from streams.metrics import (
    BATCH_SECONDS,
    BATCH_SIZE,
    EVENT_TO_CLICKHOUSE_SECONDS,
    EVENT_TO_SCORE_SECONDS,
    EVENTS,
)
from streams.records import RawRecord
from streams.retry import Conflict, EffectFailed, effect
from streams.scoring import EventRow, Scorer
from streams.sinks import Sink
from streams.written import RecoveryGuard, batch_token, clickhouse_lookup, retry_token

if TYPE_CHECKING:
    from churnstream.settings import Settings
    from features.store import RedisStateStore
    from streams.tables import Tables

log = logging.getLogger(__name__)


def source_offsets(records: Sequence[RawRecord]) -> dict[Source, int]:
    """The highest offset of each source partition in ``records``."""
    upto: dict[Source, int] = {}
    for rec in records:
        upto[(rec.topic, rec.partition)] = max(rec.offset, upto.get((rec.topic, rec.partition), -1))
    return upto


@dataclass
class BatchResult:
    outcomes: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    users: int = 0
    # (user_id, event) for every applied event, with the user's state after the batch: scoring hooks in here
    applied: list[Event] = field(default_factory=list)
    states: dict[str, UserState] = field(default_factory=dict)


class Schedule(Protocol):
    async def record(self, users: Mapping[int, Mapping[str, UserState]], clocks: Mapping[int, int]) -> None:
        """After a batch's states are written: each user's next time to score by partition, and each partition's
        latest event time (:class:`streams.rescore.Rescorer`)."""
        ...


class FeatureProcessor:
    """Applies micro-batches of raw records from the three input topics."""

    def __init__(
        self,
        topics: Sequence[str],
        store: StateStore,
        bronze: Sink,
        dlq: DeadLetterSink,
        scorer: Scorer | None = None,
        predictions: Sink | None = None,
        guard: RecoveryGuard | None = None,
        schedule: Schedule | None = None,
        dead_letters: Sink | None = None,
        owned: Callable[[Source], bool] = lambda _source: True,
        segments: Sink | None = None,
        half_life_days: float = HALF_LIFE_DAYS,
    ) -> None:
        from core.contracts import KINDS

        self.kind_of = dict(zip(topics, KINDS, strict=True))
        self.topic_index = {t: i for i, t in enumerate(topics)}
        self.store, self.bronze, self.dlq = store, bronze, dlq
        self.scorer, self.predictions, self.guard, self.schedule = scorer, predictions, guard, schedule
        self.dead_letters, self.owned = dead_letters, owned  # `dead_letters`: for the dashboard (the DLQ topic rules)
        self.segments, self.half_life_days = segments, half_life_days  # `user_segments`; priority categories

    @classmethod
    def from_tables(
        cls,
        settings: Settings,
        store: RedisStateStore,
        tables: Tables,
        dlq: DeadLetterSink,
        scorer: Scorer,
        schedule: Schedule,
        owned: Callable[[Source], bool],
    ) -> FeatureProcessor:
        """The worker's processor: the ClickHouse tables' sinks, the recovery guard over them, and the scorer's time
        path (its rescorer) as the schedule."""
        guard = RecoveryGuard(
            RedisLedger(store.redis, CLICKHOUSE_LEDGER), clickhouse_lookup(tables.events, tables.predictions)
        )
        return cls(
            settings.input_topics,
            store,
            tables.events,
            dlq,
            scorer=scorer,
            predictions=tables.predictions,
            guard=guard,
            schedule=schedule,
            dead_letters=tables.dead_letters,
            owned=owned,
            segments=tables.user_segments,
            half_life_days=settings.category_half_life_days,
        )

    def forget(self, sources: Sequence[Source]) -> None:
        """These partitions were revoked: their dead letters and recovery marks belong to the new owner."""
        self.dlq.forget(sources)
        if self.guard is not None:
            self.guard.forget(sources)

    def decode_one(self, rec: RawRecord) -> Event | Rejection:
        """The record's event, or the reason it is rejected."""
        kind = self.kind_of.get(rec.topic)
        return decode(kind, rec.value, rec.timestamp_ms) if kind else Rejection("unknown_type", rec.topic)

    def decode(self, records: Sequence[RawRecord]) -> list[tuple[RawRecord, Event | Rejection]]:
        """Each record with its event, or the reason it is rejected."""
        return [(rec, self.decode_one(rec)) for rec in records]

    async def process(self, records: Sequence[RawRecord]) -> BatchResult:
        """Apply a micro-batch of records (see the module docstring for the order of effects)."""
        return await self.process_decoded(self.decode(records))

    async def process_decoded(self, decoded: Sequence[tuple[RawRecord, Event | Rejection]]) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult()
        records = [rec for rec, _ in decoded]
        counts: Counter[tuple[str, str]] = Counter()  # (topic, outcome): one metric update per pair and batch
        valid: list[tuple[RawRecord, Event]] = []
        dead: list[tuple[Any, ...]] = []  # (topic, partition, offset, reason, detail) of this batch's dead letters
        for rec, ev in decoded:
            if isinstance(ev, Rejection):
                self.dlq.add(rec, ev.reason, ev.detail)
                dead.append((rec.topic, rec.partition, rec.offset, ev.reason, ev.detail[:512]))
                result.rejected[ev.reason] = result.rejected.get(ev.reason, 0) + 1
                counts[(rec.topic, "rejected")] += 1
            else:
                valid.append((rec, ev))

        upto = source_offsets(records)
        if self.guard is not None:
            await effect("redis", self.guard.load, upto)
        user_ids = list(dict.fromkeys(ev.user_id for _, ev in valid))
        blobs = await effect("redis", self.store.read_many, user_ids)
        blobs_by_user = dict(zip(user_ids, blobs, strict=True))
        states = {u: decode_state(b) for u, b in blobs_by_user.items()}
        changed: set[str] = set()
        partition_of: dict[str, int] = {}  # every user of the batch (co-partitioned topics: one partition each)
        clocks: dict[int, int] = {}  # per partition, the latest event time of the batch
        produced_ms: list[int | None] = []  # broker timestamps of the applied records
        applied: list[tuple[RawRecord, Event]] = []
        event_rows: list[EventRow] = []  # features right after each applied event, in apply order
        for rec, ev in valid:
            state = states[ev.user_id]
            partition_of[ev.user_id] = rec.partition
            clocks[rec.partition] = max(clocks.get(rec.partition, 0), ev.ts_ms)
            code = partition_code(self.topic_index[rec.topic], rec.partition)
            outcome = apply(state, ev, code, rec.offset, self.half_life_days)
            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
            counts[(rec.topic, outcome)] += 1
            if outcome == "replayed":
                continue
            changed.add(ev.user_id)
            if outcome == "applied":
                applied.append((rec, ev))
                result.applied.append(ev)
                produced_ms.append(rec.timestamp_ms)
                if self.scorer is not None:
                    event_rows.append(EventRow(ev, state.last_ms, vector(state, state.last_ms), rec.partition))
            elif outcome == "too_late":
                detail = f"ts is more than {HORIZON_DAYS} days before the user's latest event"
                self.dlq.add(rec, "too_late", detail)
                dead.append((rec.topic, rec.partition, rec.offset, "too_late", detail))
                result.rejected["too_late"] = result.rejected.get("too_late", 0) + 1

        in_events, in_predictions, looked_up = await self._written(applied)
        events_rows = [bronze_row(ev, rec) for rec, ev in applied if ev.event_id not in in_events]
        scored = self.scorer.score(event_rows, in_predictions) if self.scorer else None
        await effect("kafka", self.dlq.flush)
        if self.guard is not None:
            await effect("redis", self.guard.mark, upto)
        token = retry_token(batch_token(records)) if looked_up else batch_token(records)
        try:
            await effect("clickhouse", self.bronze.write, events_rows, token)
            if self.predictions is not None and scored is not None:
                await effect("clickhouse", self.predictions.write, scored.predictions, token)
            if self.segments is not None and scored is not None:
                await effect("clickhouse", self.segments.write, scored.segments, token)
            if self.dead_letters is not None and dead:
                await effect("clickhouse", self.dead_letters.write, dead, token)
        except EffectFailed:
            if self.guard is not None:  # some rows may be in: the redo asks which, and writes under a new token
                self.guard.unsure(upto)
            raise
        if scored is not None and scored.cache:
            observe_since(EVENT_TO_CLICKHOUSE_SECONDS, produced_ms)
        learner = self.scorer.learner if self.scorer else None
        if learner is not None and scored is not None:  # labels before states: see streams/online.py
            await effect("redis", learner.on_batch, result.applied, scored.rows, scored.scores)
        # partitions revoked since the dead letters (streams/ownership.py): no state, so their next owner redoes them
        gone = {p for t, p in upto if not self.owned((t, p))}
        changed = {u for u in changed if partition_of[u] not in gone}
        cache = {u: c for u, c in scored.cache.items() if u in changed} if scored else None
        states_out, previous = {u: encode_state(states[u]) for u in changed}, {u: blobs_by_user[u] for u in changed}
        conflicts = await effect("redis", self.store.write_many, states_out, cache, previous)
        if conflicts:  # another worker wrote these users since we read them (a rebalance): redo the batch
            raise Conflict(f"{len(conflicts)} users' state changed since it was read, e.g. {sorted(conflicts)[:3]}")
        if self.schedule is not None:  # after the states: the rescorer must not see time the states have not
            by_partition: dict[int, dict[str, UserState]] = {}
            for u, state in states.items():
                if partition_of[u] not in gone:
                    by_partition.setdefault(partition_of[u], {})[u] = state
            clocks = {p: ms for p, ms in clocks.items() if p not in gone}
            await effect("redis", self.schedule.record, by_partition, clocks)
        await effect("redis", self.dlq.commit, upto)
        if scored is not None and scored.cache:
            observe_since(EVENT_TO_SCORE_SECONDS, produced_ms)
        for (topic, what), n in counts.items():
            EVENTS.labels(topic, what).inc(n)
        result.users = len(changed)
        result.states = {u: states[u] for u in changed}
        BATCH_SIZE.observe(len(records))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return result

    async def _written(self, applied: Sequence[tuple[RawRecord, Event]]) -> tuple[set[str], set[str], bool]:
        """Event ids among ``applied`` whose ``events`` rows, and whose ``predictions`` rows, a predecessor (or a
        failed insert of this batch) wrote; and whether ClickHouse was asked."""
        if self.guard is None:
            return set(), set(), False
        guard = self.guard
        keys = [
            (ev.user_id, ev.event_id) for rec, ev in applied if guard.at_risk((rec.topic, rec.partition), rec.offset)
        ]
        in_events, in_predictions = await effect("clickhouse", self.guard.written, keys)
        return in_events, in_predictions, bool(keys)
