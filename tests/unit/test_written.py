"""Rows written once: insert deduplication tokens for redone batches, and the recovery guard for the rows a
crashed predecessor wrote without recording its records in Redis. Raw rows are counted, with no set()."""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from core.tasks import TASKS
from features.compute import FEATURE_NAMES
from features.store import MemoryStateStore, Scores
from models.champions import Champions
from models.pretrained import create
from models.registry import Registry
from simulation.generator import arrivals, make_users, simulate
from streams.dlq import ListDeadLetters
from streams.ledger import MemoryLedger
from streams.processor import FeatureProcessor
from streams.records import RawRecord
from streams.retry import Conflict, EffectFailed
from streams.scoring import Scorer
from streams.sinks import ListSink
from streams.written import EventKey, RecoveryGuard, batch_token

TOPICS = ("page_views", "cart_events", "purchases")


class Killed(BaseException):
    """The process dies here: nothing after this point of the batch happens (not an Exception: never retried)."""


class DiesOnWrite(MemoryStateStore):
    """Redis that the worker never reaches on its ``n``-th state write: the worker is killed just before."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.writes_left = n

    async def write_many(
        self,
        states: Mapping[str, bytes],
        scores: Scores | None = None,
        previous: Mapping[str, bytes | None] | None = None,
    ) -> set[str]:
        self.writes_left -= 1
        if self.writes_left == 0:
            raise Killed
        return await super().write_many(states, scores, previous)


def raw_records(seed: int = 5) -> list[RawRecord]:
    users = make_users(120, days=40, seed=seed)
    records = arrivals(simulate(users, 40, seed), seed, out_of_order=0.1)
    offsets: Counter[tuple[str, int]] = Counter()
    out = []
    for r in records:
        p = zlib.crc32(r.key or b"") % 4  # stable across interpreter runs, unlike hash()
        out.append(RawRecord(r.topic, p, offsets[(r.topic, p)], 1_900_000_000_000, r.key, r.value))
        offsets[(r.topic, p)] += 1
    return out


@pytest.fixture(scope="module")
def champions(tmp_path_factory: pytest.TempPathFactory) -> Champions:
    root: Path = tmp_path_factory.mktemp("registry")
    registry = Registry(root)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, len(FEATURE_NAMES)))
    for task in TASKS:
        registry.promote(registry.save(task, create("logreg", 0).fit(X, (X[:, 0] > 0).astype(np.int8)), {}))
    found = Champions(root)
    found.refresh(force=True)
    return found


def lookup_in(bronze: ListSink, predictions: ListSink):  # type: ignore[no-untyped-def]
    async def lookup(keys: Sequence[EventKey]) -> tuple[set[str], set[str]]:
        ids = {e for _, e in keys}
        return {r[0] for r in bronze.rows if r[0] in ids}, {r[0] for r in predictions.rows if r[0] in ids}

    return lookup


def processor(
    store: MemoryStateStore,
    bronze: ListSink,
    predictions: ListSink,
    champions: Champions,
    guard: bool,
    ledger: MemoryLedger,
) -> FeatureProcessor:
    return FeatureProcessor(
        TOPICS,
        store,
        bronze,
        ListDeadLetters(),
        scorer=Scorer(champions),
        predictions=predictions,
        guard=RecoveryGuard(ledger, lookup_in(bronze, predictions)) if guard else None,
    )


def run_batches(p: FeatureProcessor, raw: list[RawRecord], size: int) -> None:
    for i in range(0, len(raw), size):
        asyncio.run(p.process(raw[i : i + size]))


def duplicates(bronze: ListSink, predictions: ListSink) -> tuple[int, int]:
    """Raw rows beyond the first per event, and per (event, task, model kind)."""
    events = Counter(r[0] for r in bronze.rows)
    scores = Counter((r[0], r[4], r[5]) for r in predictions.rows)
    return sum(n - 1 for n in events.values()), sum(n - 1 for n in scores.values())


@pytest.mark.parametrize("guard", [True, False])
def test_a_worker_killed_between_the_inserts_and_redis_leaves_no_duplicate_row(
    champions: Champions, guard: bool
) -> None:
    raw = raw_records()
    bronze, predictions, ledger = ListSink(), ListSink(), MemoryLedger()
    dying = DiesOnWrite(n=4)
    with pytest.raises(Killed):  # batches 1-3 complete; batch 4's rows are inserted, its states never written
        run_batches(processor(dying, bronze, predictions, champions, guard, ledger), raw, 500)
    # the next owner gets everything again from the last committed offset (here: the start), cut differently
    survivor = MemoryStateStore()
    survivor.data = dict(dying.data)
    run_batches(processor(survivor, bronze, predictions, champions, guard, ledger), raw, 333)

    events = {r[0] for r in bronze.rows}
    if guard:
        assert duplicates(bronze, predictions) == (0, 0)
        assert len(predictions.rows) == len(events) * len(TASKS)  # one champion row per (event, task)
    else:  # the hole the guard closes: batch 4's rows are written twice
        dup_events, dup_scores = duplicates(bronze, predictions)
        assert dup_events > 0 and dup_scores == dup_events * len(TASKS)


def test_a_batch_redone_after_a_lost_race_adds_no_row(champions: Champions) -> None:
    """Another worker wrote a user first: the batch is redone from the fresh state under the same token."""
    raw = raw_records(seed=6)[:800]

    class LosesOnce(MemoryStateStore):
        lost = False

        async def write_many(self, states, scores=None, previous=None):  # type: ignore[no-untyped-def]
            if not self.lost:
                self.lost = True
                return {next(iter(states))}  # as if another worker had written this user since the read
            return await super().write_many(states, scores, previous)

    bronze, predictions = ListSink(), ListSink()
    p = processor(LosesOnce(), bronze, predictions, champions, True, MemoryLedger())
    with pytest.raises(Conflict):
        asyncio.run(p.process(raw))
    asyncio.run(p.process(raw))  # the redo: the same records, so the same token
    assert duplicates(bronze, predictions) == (0, 0)
    assert bronze.tokens == [batch_token(raw)] and predictions.tokens == [batch_token(raw)]
    assert len(bronze.rows) > 0


class FailsLeavingItsToken(ListSink):
    """A table whose ``n``-th insert fails after its token reached the deduplication log, with no row committed:
    what embedded chDB does when an insert fails at the wrong moment (``bench/dedup_after_failure.py``)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.writes_left = n

    async def write(self, rows, token=None):  # type: ignore[no-untyped-def]
        self.writes_left -= 1
        if self.writes_left == 0 and rows:
            self.tokens.append(token)
            raise ConnectionError("insert failed")
        return await super().write(rows, token)


@pytest.mark.parametrize("table", ["events", "predictions"])
def test_a_batch_redone_after_an_insert_that_failed_leaving_its_token_loses_no_row(
    champions: Champions, table: str
) -> None:
    raw = raw_records(seed=7)[:900]
    bronze = FailsLeavingItsToken(2) if table == "events" else ListSink()
    predictions = FailsLeavingItsToken(2) if table == "predictions" else ListSink()
    p = processor(MemoryStateStore(), bronze, predictions, champions, True, MemoryLedger())
    asyncio.run(p.process(raw[:400]))
    with pytest.raises(EffectFailed):
        asyncio.run(p.process(raw[400:]))
    asyncio.run(p.process(raw[400:]))  # the redo: ClickHouse is asked, and the rows go under a new token
    clean_bronze, clean_predictions = ListSink(), ListSink()
    clean = processor(MemoryStateStore(), clean_bronze, clean_predictions, champions, True, MemoryLedger())
    asyncio.run(clean.process(raw[:400]))
    asyncio.run(clean.process(raw[400:]))
    assert duplicates(bronze, predictions) == (0, 0)  # raw rows: each once
    assert len(bronze.rows) == len(clean_bronze.rows) > 0  # and none lost
    assert len(predictions.rows) == len(clean_predictions.rows) == len(clean_bronze.rows) * len(TASKS)
