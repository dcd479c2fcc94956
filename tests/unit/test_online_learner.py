"""The online learner against a real Redis: every resolved label is learned exactly once, whenever the worker dies.

A crash is simulated by dropping the learner (everything in memory is gone) and restoring a new one from Redis,
at the points where a SIGKILL can land: between batches, between a checkpoint and the trim of the label logs,
and before the first checkpoint. The labels learned (count and digest, kept in the checkpoint) must equal those
of the same batches without a crash, and the Redis counters must account for every snapshot taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis

from core.contracts import Event
from core.keys import checkpoint_key, counts_key, digest_key, log_key, pending_key
from core.tasks import TASKS
from features.compute import FEATURE_NAMES
from features.state import DAY_MS
from models.online import DIGEST_MODULUS, OnlineModel
from streams.labels import trim_logs
from streams.online import OnlineLearner, _dec
from streams.sinks import ListSink

KEY = b"test-key"
PARTITIONS = range(4)


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return client


def workload(seed: int, users: int = 40, days: int = 220) -> list[list[Event]]:
    """Batches of events in time order: visits with gaps (some longer than the churn horizon), some purchases."""
    rng = random.Random(seed)
    events: list[Event] = []
    for u in range(users):
        t = rng.randrange(0, 20 * DAY_MS)
        while t < days * DAY_MS:
            if rng.random() < 0.25:
                events.append(Event("purchase", f"e{len(events)}", f"u{u}", t))
            else:
                events.append(Event("page_view", f"e{len(events)}", f"u{u}", t))
            t += rng.choice([rng.randrange(3_600_000, 3 * DAY_MS), rng.randrange(10 * DAY_MS, 80 * DAY_MS)])
    events.sort(key=lambda e: e.ts_ms)
    batches, i = [], 0
    while i < len(events):
        n = rng.randrange(1, 30)
        batches.append(events[i : i + n])
        i += n
    return batches


@dataclass
class Outcome:
    learned: dict[str, int]  # task -> labels learned, from the checkpoint
    digest: dict[str, int]  # task -> digest of the labels learned, from the checkpoint
    resolved: set[tuple[Any, ...]]  # `resolved_scores` rows written (ClickHouse keeps one per key: FINAL)
    resolved_raw: int  # how many were written, duplicates included (a crash after a write, before the checkpoint)


async def until_ok(fn: Any, *args: Any) -> Any:
    """``await fn(*args)`` until it does not lose its connection (as ``streams.retry.until_done``)."""
    while True:
        try:
            return await fn(*args)
        except redis.ConnectionError:
            continue


async def drive(
    url: str,
    batches: Sequence[list[Event]],
    crashes: set[int] = frozenset(),  # type: ignore[assignment]
    torn_checkpoints: set[int] = frozenset(),  # type: ignore[assignment]
    checkpoint_every: int = 7,
    learner_class: type[OnlineLearner] = OnlineLearner,
) -> Outcome:
    """Feed ``batches`` as the worker does (on_batch, then an expiry tick, a checkpoint now and then); after
    batch ``i`` in ``crashes`` the learner dies; after one in ``torn_checkpoints`` it dies between writing a
    checkpoint and trimming the logs. Ends with a last expiry and checkpoint, as a running worker would."""
    client = aioredis.Redis.from_url(url)
    resolved = ListSink()  # ClickHouse: it outlives every crash

    async def start() -> OnlineLearner:
        return await learner_class.restore(
            client, "logreg", KEY, partitions=PARTITIONS, metrics=ListSink(), resolved=resolved
        )

    learner = await start()
    last: dict[str, int] = {}
    for i, batch in enumerate(batches):
        for ev in batch:
            last[ev.user_id] = max(last.get(ev.user_id, 0), ev.ts_ms)
        users = dict.fromkeys(ev.user_id for ev in batch)
        rows = {u: (last[u], int(u[1:]) % len(PARTITIONS), [float(last[u] % 97)] * len(FEATURE_NAMES)) for u in users}
        scores = {u: {task: {"online": 0.5} for task in TASKS} for u in users}
        await until_ok(learner.on_batch, batch, rows, scores)  # the processor retries the step
        with contextlib.suppress(redis.ConnectionError):  # the timer tries again on its next tick
            await learner.expire(PARTITIONS)
            if i % checkpoint_every == 0:
                await learner.checkpoint()
        if i in torn_checkpoints:
            await learner.write_checkpoint()  # ... and the SIGKILL lands before the trim
            learner = await start()
        if i in crashes:
            learner = await start()
        assert learner.watermark_ms == max(ev.ts_ms for b in batches[: i + 1] for ev in b), "the watermark survives"
    await until_ok(learner.expire, PARTITIONS)
    await until_ok(learner.checkpoint)
    await client.aclose()
    sync = redis.Redis.from_url(url)
    models = {t: OnlineModel.loads(cast(bytes, sync.get(checkpoint_key(t, "logreg"))), KEY) for t in TASKS}
    rows = {tuple(row[:7]) + tuple(row[8:]) for row in resolved.rows}  # not resolved_at: the watermark when learned
    return Outcome(
        {t: m.learned for t, m in models.items()}, {t: m.digest for t, m in models.items()}, rows, len(resolved.rows)
    )


def accounting(r: redis.Redis) -> dict[str, dict[str, int]]:
    """The Redis side: snapshots taken, labels resolved, their digest, and snapshots still pending, per task."""
    pending = {t: 0 for t in TASKS}
    for key in r.scan_iter(match=pending_key("*")):
        for task in _dec.decode(r.get(key)):  # type: ignore[arg-type]
            pending[task] += 1
    out = {}
    for task in TASKS:
        counts = {k.decode(): int(v) for k, v in r.hgetall(counts_key(task)).items()}  # type: ignore[union-attr]
        (digest,) = r.bitfield(digest_key(task)).get("u63", 0).execute()
        out[task] = {
            "taken": counts.get("taken", 0),
            "resolved": counts.get("resolved", 0),
            "digest": digest,
            "pending": pending[task],
        }
    return out


def test_without_crashes_every_resolved_label_is_learned_once_and_accounted_for(r: redis.Redis, redis_url: str) -> None:
    batches = workload(1)
    got = asyncio.run(drive(redis_url, batches))
    books = accounting(r)
    for task in TASKS:
        assert got.learned[task] == books[task]["resolved"] > 100, (task, got, books)
        assert got.digest[task] == books[task]["digest"] % DIGEST_MODULUS, task
        assert books[task]["taken"] == books[task]["resolved"] + books[task]["pending"], (task, books)
        # one `resolved_scores` row per label and model kind (here `online` only), written once without crashes
        assert sum(row[0] == task for row in got.resolved) == books[task]["resolved"], task
    assert got.resolved_raw == len(got.resolved)
    assert all(r.xlen(log_key(p)) == 0 for p in PARTITIONS), "the last checkpoint includes every logged label"


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_crashes_anywhere_lose_no_label_and_learn_none_twice(r: redis.Redis, redis_url: str, seed: int) -> None:
    batches = workload(seed)
    reference = asyncio.run(drive(redis_url, batches))
    r.flushdb()
    rng = random.Random(seed)
    crashes = set(rng.sample(range(len(batches)), 12)) | {0, 1}  # also before any checkpoint includes anything
    torn = set(rng.sample(range(len(batches)), 4))
    got = asyncio.run(drive(redis_url, batches, crashes, torn))
    books = accounting(r)
    assert (got.learned, got.digest) == (reference.learned, reference.digest), (got, reference)
    assert got.resolved == reference.resolved, "every label's `resolved_scores` row, whatever the crashes"
    print(f"resolved_scores: {got.resolved_raw} rows written for {len(got.resolved)} labels")  # raw, reported
    for task in TASKS:
        assert got.learned[task] == books[task]["resolved"], task
        assert books[task]["taken"] == books[task]["resolved"] + books[task]["pending"], (task, books)


class LosesAnswers(OnlineLearner):
    """Every third transaction that resolves labels is applied, but its answer is lost (the connection drops
    after EXEC): the caller sees an error and tries again."""

    calls = 0

    async def follow(self, partitions: Iterable[int], since: Any = None, chunk: int = 10_000) -> int:
        LosesAnswers.calls += since is None
        if since is None and LosesAnswers.calls % 3 == 0:
            raise redis.ConnectionError("connection lost after EXEC")
        return await super().follow(partitions, since, chunk)


def test_a_transaction_whose_answer_is_lost_still_has_its_labels_learned_once(r: redis.Redis, redis_url: str) -> None:
    # a lost answer in an expiry tick delays expiries, which changes which snapshots later batches take: the
    # labels differ from a run without faults, so the check is the accounting of this run
    got = asyncio.run(drive(redis_url, workload(5), crashes={3, 40}, learner_class=LosesAnswers))
    assert LosesAnswers.calls > 30
    books = accounting(r)
    for task in TASKS:
        assert got.learned[task] == books[task]["resolved"] > 100, (task, got, books)
        assert got.digest[task] == books[task]["digest"] % DIGEST_MODULUS, task
        assert books[task]["taken"] == books[task]["resolved"] + books[task]["pending"], (task, books)


class DeletesAtOnce(OnlineLearner):
    """The old behaviour: a resolved label's record is gone as soon as it is learned in memory."""

    async def on_batch(self, *args: Any) -> int:
        n = await super().on_batch(*args)
        await trim_logs(self.redis, self.positions)
        return n

    async def expire(self, partitions: Iterable[int], limit: int = 5000) -> int:
        n = await super().expire(partitions, limit)
        await trim_logs(self.redis, self.positions)
        return n


def test_the_check_fails_when_labels_are_deleted_before_the_checkpoint_includes_them(
    r: redis.Redis, redis_url: str
) -> None:
    batches = workload(2)
    reference = asyncio.run(drive(redis_url, batches))
    r.flushdb()
    crashes = set(random.Random(2).sample(range(len(batches)), 12))
    got = asyncio.run(drive(redis_url, batches, crashes, learner_class=DeletesAtOnce))
    books = accounting(r)
    for task in TASKS:
        assert got.learned[task] < reference.learned[task], task
        assert got.learned[task] < books[task]["resolved"], task


class Interrupted(OnlineLearner):
    """Another worker (a rebalance) rewrites a user's snapshots after this learner read them, before its
    transaction: here it settled them and removed them."""

    url = ""
    done = False

    def _queue_labels(self, pipe: Any, labels: Sequence[Any]) -> None:
        if labels and not Interrupted.done:
            Interrupted.done = True
            redis.Redis.from_url(Interrupted.url).delete(pending_key("u1"))
        super()._queue_labels(pipe, labels)


def test_a_transaction_over_snapshots_another_worker_changed_is_redone_from_a_fresh_read(
    r: redis.Redis, redis_url: str
) -> None:
    Interrupted.url = redis_url
    t0 = 100 * DAY_MS
    x = [0.0] * len(FEATURE_NAMES)
    scores = {"u1": {task: {"online": 0.5} for task in TASKS}}

    async def run() -> int:
        client = aioredis.Redis.from_url(redis_url)
        learner = await Interrupted.restore(client, "logreg", KEY, partitions=PARTITIONS, metrics=ListSink())
        await learner.on_batch([Event("page_view", "e0", "u1", t0)], {"u1": (t0, 0, x)}, scores)
        t1 = t0 + DAY_MS  # a purchase a day later settles both snapshots ... which the other worker already did
        n = await learner.on_batch([Event("purchase", "e1", "u1", t1)], {"u1": (t1, 0, x)}, scores)
        await client.aclose()
        return n

    assert asyncio.run(run()) == 0
    assert Interrupted.done
    books = accounting(r)
    assert {t: b["resolved"] for t, b in books.items()} == {"churn": 0, "purchase": 0}, books
    assert {t: b["taken"] for t, b in books.items()} == {"churn": 2, "purchase": 2}, books  # e0's, then e1's
    assert r.xlen(log_key(0)) == 0


def test_labels_snapshotted_under_another_feature_list_are_counted_not_learned(r: redis.Redis, redis_url: str) -> None:
    """After an upgrade that changed the feature list, the label logs may still hold snapshots of the old one: the
    learner must not crash on them (found on a Redis a 41-feature worker had used); they are counted, not learned."""
    from models.online import Snapshot
    from streams.online import Label, _enc

    old = Label("churn", "u1", Snapshot(0, [1.0] * 41, {"online": 0.5}, 0), 1)
    new = Label("churn", "u2", Snapshot(0, [1.0] * len(FEATURE_NAMES), {"online": 0.5}, 0), 0)
    for lab in (old, new):
        r.xadd(log_key(0), {"l": _enc.encode(lab)})

    async def go() -> OnlineLearner:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await OnlineLearner.restore(client, "logreg", KEY, partitions=PARTITIONS, metrics=ListSink())
        finally:
            await client.aclose()

    model = asyncio.run(go()).models["churn"]
    assert model.learned == 2 and model.digest == (old.hash + new.hash) % DIGEST_MODULUS
    assert model.model["StandardScaler"].counts[FEATURE_NAMES[0]] == 1  # only the label of this feature list
