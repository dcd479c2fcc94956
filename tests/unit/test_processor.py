"""The batch processor with in-memory sinks: parity with the offline builder, replay, duplicates, too_late."""

from __future__ import annotations

import asyncio
import random
import zlib

import orjson
import pytest

from features import offline
from features.compute import features
from features.state import DAY_MS, decode_state
from features.store import MemoryStateStore
from simulation.generator import TOPIC_OF, arrivals, make_users, simulate
from streams.dlq import ListDeadLetters
from streams.processor import FeatureProcessor
from streams.records import RawRecord
from streams.sinks import ListSink

TOPICS = ("page_views", "cart_events", "purchases")
KIND_OF = {v: k for k, v in TOPIC_OF.items()}


def make_processor() -> tuple[FeatureProcessor, MemoryStateStore, ListSink, ListDeadLetters]:
    store, bronze, dlq = MemoryStateStore(), ListSink(), ListDeadLetters()
    return FeatureProcessor(TOPICS, store, bronze, dlq), store, bronze, dlq


BROKER_TS = 1_900_000_000_000


def to_raw(records: list, partitions: int = 4) -> list[RawRecord]:
    """Give records partition offsets as a broker would (key-hash partitioning)."""
    next_offset: dict[tuple[str, int], int] = {}
    out = []
    for r in records:
        p = zlib.crc32(r.key or b"") % partitions  # stable: hash() of bytes changes with PYTHONHASHSEED
        off = next_offset.get((r.topic, p), 0)
        next_offset[(r.topic, p)] = off + 1
        out.append(RawRecord(r.topic, p, off, BROKER_TS, r.key, r.value))
    return out


def run(processor: FeatureProcessor, raw: list[RawRecord], seed: int) -> None:
    rng = random.Random(seed)
    i = 0
    while i < len(raw):
        n = rng.randint(1, 700)
        asyncio.run(processor.process(raw[i : i + n]))
        i += n


def test_stream_equals_offline_builder_and_replay_changes_nothing() -> None:
    users = make_users(150, days=90, seed=3)
    events = simulate(users, 90, seed=3)
    records = arrivals(events, 3, out_of_order=0.2, duplicates=0.02, malformed=0.02, now_ms=BROKER_TS)
    raw = to_raw(records)
    processor, store, bronze, dlq = make_processor()
    run(processor, raw, seed=1)

    accepted = offline.accept((KIND_OF[r.topic], r.value, BROKER_TS) for r in records)
    as_of = offline.latest(accepted)
    assert set(as_of) == set(store.data)
    expected = dict(zip(as_of, offline.build(accepted, as_of.items()), strict=True))
    for user, blob in store.data.items():
        state = decode_state(blob)
        assert state.last_ms == as_of[user]
        assert features(state, state.last_ms) == expected[user]

    assert len(bronze.rows) == sum(len(v) for v in accepted.values()) == len({e["event_id"] for e in events})
    reasons = {reason for _, reason, _ in dlq.sent}
    assert reasons == {kind for r in records if (kind := r.malformed)}
    originals = {(r.topic, r.partition, r.offset): r.value for r in raw}
    assert all(originals[(r.topic, r.partition, r.offset)] == r.value for r, _, _ in dlq.sent)

    # replay everything in different batches: no state, row or DLQ change except malformed re-sent
    snapshot = dict(store.data)
    n_rows = len(bronze.rows)
    run(processor, raw, seed=2)
    assert store.data == snapshot
    assert len(bronze.rows) == n_rows


def test_too_late_goes_to_dlq_with_its_source_offset() -> None:
    processor, store, bronze, dlq = make_processor()
    base = 20_000 * DAY_MS

    def pv(i: int, ts: int) -> bytes:
        return orjson.dumps({"event_id": f"e{i}", "user_id": "u", "ts": ts, "page_type": "home"})

    asyncio.run(
        processor.process(
            [
                RawRecord("page_views", 0, 0, None, b"u", pv(0, base)),
                RawRecord("page_views", 0, 1, None, b"u", pv(1, base - 61 * DAY_MS)),
                RawRecord("page_views", 0, 2, None, b"u", pv(2, base - 60 * DAY_MS)),
            ]
        )
    )
    assert [(r.offset, reason) for r, reason, _ in dlq.sent] == [(1, "too_late")]
    assert len(bronze.rows) == 2
    assert decode_state(store.data["u"]).offsets == {0: 2}


def test_latency_observed_in_bulk_equals_one_observe_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from streams import processor as module

    buckets = (0.005, 0.05, 0.5, 5)
    bulk, single = (Histogram(n, "t", buckets=buckets, registry=CollectorRegistry()) for n in ("bulk", "single"))
    produced = [1_000_000, 999_990, 999_000, None, 990_000, 1_000_500]  # ms; the last is "in the future"
    monkeypatch.setattr(module.time, "time", lambda: 1000.0)
    module.observe_since(bulk, produced)
    for ts in produced:
        if ts is not None:
            single.observe(max(0.0, 1_000_000 - ts) / 1000)

    def counts(h: Histogram) -> list[tuple[str, float]]:
        return [(s.name[len(h._name) :], s.value) for s in h.collect()[0].samples if not s.name.endswith("_created")]

    assert counts(bulk) == counts(single)


def test_every_dead_letter_also_gets_a_clickhouse_row_with_its_coordinates_and_reason() -> None:
    store, bronze, dlq, dead = MemoryStateStore(), ListSink(), ListDeadLetters(), ListSink()
    processor = FeatureProcessor(TOPICS, store, bronze, dlq, dead_letters=dead)
    base = 20_000 * DAY_MS
    good = orjson.dumps({"event_id": "e0", "user_id": "u", "ts": base, "page_type": "home"})
    late = orjson.dumps({"event_id": "e1", "user_id": "u", "ts": base - 61 * DAY_MS, "page_type": "home"})
    batch = [
        RawRecord("page_views", 0, 0, None, b"u", good),
        RawRecord("page_views", 0, 1, None, b"u", b"{not json"),
        RawRecord("page_views", 0, 2, None, b"u", late),
    ]
    asyncio.run(processor.process(batch))
    rows = [(topic, partition, offset, reason) for topic, partition, offset, reason, _ in dead.rows]
    assert rows == [(r.topic, r.partition, r.offset, reason) for r, reason, _ in dlq.sent]
    assert [reason for *_, reason in rows] == ["invalid_json", "too_late"]
    asyncio.run(processor.process(batch))  # the same batch again: the token makes ClickHouse drop the second write
    assert len(dead.rows) == 2


def test_a_partition_revoked_while_its_batch_ran_gets_no_state_so_its_next_owner_dead_letters_too_late_again() -> None:
    """The old owner's batch skips the dead letters of a partition revoked meanwhile (streams/ownership.py). Had it
    written the users' states, with their offsets, the next owner would take the records for replays and the
    ``too_late`` letter would be lost (the rebalance test: one ``too_late`` letter short)."""
    base = 20_000 * DAY_MS

    def pv(i: int, ts: int) -> bytes:
        return orjson.dumps({"event_id": f"e{i}", "user_id": "u", "ts": ts, "page_type": "home"})

    first = [RawRecord("page_views", 0, 0, None, b"u", pv(0, base))]
    batch = [
        RawRecord("page_views", 0, 1, None, b"u", pv(1, base)),
        RawRecord("page_views", 0, 2, None, b"u", pv(2, base - 61 * DAY_MS)),
    ]
    store, owned = MemoryStateStore(), {"now": True}

    class Revoking(ListDeadLetters):
        async def flush(self) -> int:  # the rebalance starts while the batch sends its dead letters: it skips them
            owned["now"] = False
            self._buffer.clear()
            return 0

    old = FeatureProcessor(TOPICS, store, ListSink(), ListDeadLetters(), owned=lambda _s: owned["now"])
    asyncio.run(old.process(first))
    old.dlq = Revoking()
    asyncio.run(old.process(batch))
    assert decode_state(store.data["u"]).offsets == {0: 0}, "the revoked partition's states are left to its next owner"

    new_dlq = ListDeadLetters()
    new = FeatureProcessor(TOPICS, store, ListSink(), new_dlq)
    asyncio.run(new.process(batch))  # fetched again from the committed offset
    assert [(r.offset, reason) for r, reason, _ in new_dlq.sent] == [(2, "too_late")]
    assert decode_state(store.data["u"]).offsets == {0: 2}
