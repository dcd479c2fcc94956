"""A generated workload with faults, and the exact end-state checks every reliability test ends with:

1. for every user, the features in Redis equal the offline recomputation from the same records;
2. every valid event has exactly one prediction per (task, model kind) in ClickHouse after dedup
   (``FINAL``; with several chDB paths, over their union), and one ``events`` row;
3. every malformed (or ``too_late``) record is in the DLQ exactly once, with its reason.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
from confluent_kafka import Consumer, TopicPartition

from churnstream.settings import Settings
from features import offline
from features.compute import FEATURE_NAMES, features
from features.state import UserState, apply, decode_state, state_key
from infra import clickhouse_db
from models.tasks import TASKS
from streams.contracts import Rejection, decode
from streams.generator import TOPIC_OF, Record, arrivals, make_users, simulate
from streams.produce import produce_records
from streams.scrape import Scrape
from tests.conftest import StackHandle

KIND_OF = {v: k for k, v in TOPIC_OF.items()}
MODEL_KINDS = ("pretrained", "online")


@dataclass
class Workload:
    prefix: str
    user_ids: list[str]
    records: list[Record]
    produced_at: int
    events: int
    producer: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def generate(cls, name: str, users: int, days: int, seed: int, activity: float = 0.5) -> Workload:
        prefix = f"{name}{int(time.time() * 1000) % 10**7}-"
        generated = make_users(users, days, seed, prefix=prefix, activity=activity)
        events = simulate(generated, days, seed)
        produced_at = int(time.time() * 1000)
        records = arrivals(events, seed, out_of_order=0.05, duplicates=0.01, malformed=0.01, now_ms=produced_at)
        return cls(prefix, [u.user_id for u in generated], records, produced_at, len(events))

    def stream(self, settings: Settings, rate: float) -> None:
        """Produce the records at ``rate`` per second in the background; :meth:`join` waits for the end."""
        self.producer = threading.Thread(target=produce_records, args=(settings, self.records, rate), daemon=True)
        self.producer.start()

    def join(self, timeout: float = 900) -> None:
        if self.producer is not None:
            self.producer.join(timeout)
            assert not self.producer.is_alive(), "the producer did not finish"

    def accepted(self) -> offline.Accepted:
        return offline.accept((KIND_OF[r.topic], r.value, self.produced_at) for r in self.records)

    def dead_letters(self) -> Counter[str]:
        """The reasons the worker must dead-letter, record by record, in arrival order."""
        states: dict[str, UserState] = {}
        dead: Counter[str] = Counter()
        for r in self.records:
            ev = decode(KIND_OF[r.topic], r.value, self.produced_at)
            if isinstance(ev, Rejection):
                dead[ev.reason] += 1
            elif apply(states.setdefault(ev.user_id, UserState()), ev) == "too_late":
                dead["too_late"] += 1
        return dead


def processed_at(port: int) -> float:
    """Records the worker with metrics on ``port`` has handled (every outcome), or -1 while it does not answer."""
    try:
        return Scrape.read(f"http://127.0.0.1:{port}/metrics", timeout=2).total("churnstream_events_total")
    except OSError:
        return -1.0


def processed(stack: StackHandle) -> float:
    return processed_at(stack.metrics_port)


def wait_progress(stack: StackHandle, timeout: float = 120, since: float | None = None) -> float:
    """Block until the worker has processed more than ``since`` records (or any); returns seconds waited."""
    start = time.monotonic()
    base = processed(stack) if since is None else since
    while processed(stack) <= max(base, 0):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"no progress within {timeout}s\n{stack.worker_log()}")
        time.sleep(0.2)
    return time.monotonic() - start


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def read_dlq(settings: Settings, prefix: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers, value) of every dead letter whose key starts with ``prefix``."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"dlq-check-{time.time()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    md = consumer.list_topics(timeout=10)
    consumer.assign([TopicPartition(settings.topic_dlq, p, 0) for p in md.topics[settings.topic_dlq].partitions])
    dead: list[tuple[dict[str, str], bytes]] = []
    idle = 0
    while idle < 3:
        batch = consumer.consume(10_000, timeout=1.0)
        idle = 0 if batch else idle + 1
        for m in batch:
            if m.error() is None and (m.key() or b"").startswith(prefix.encode()):
                dead.append(({k: v.decode() for k, v in (m.headers() or [])}, m.value() or b""))
    consumer.close()
    return dead


def clickhouse_rows(dsn: str, prefix: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(event_id, task, model_kind) of the predictions and the event ids of the events table, after dedup."""
    client = clickhouse_db.connect(dsn)
    try:
        predictions = client.query(
            "SELECT event_id, task, model_kind FROM predictions FINAL WHERE startsWith(user_id, {p:String})",
            parameters={"p": prefix},
        ).result_rows
        events = client.query(
            "SELECT event_id FROM events FINAL WHERE startsWith(user_id, {p:String})", parameters={"p": prefix}
        ).result_rows
    finally:
        client.close()
    return [tuple(r) for r in predictions], [r[0] for r in events]  # type: ignore[misc]


def assert_exact_end_state(stack: StackHandle, wl: Workload, clickhouse_dsns: tuple[str, ...] = ()) -> None:
    """The three end-state checks (module docstring); ClickHouse read from the stack's DSN and any others."""
    accepted = wl.accepted()
    # 1. features
    as_of = offline.latest(accepted)
    r = redis.Redis.from_url(stack.settings.redis_url)
    blobs = dict(zip(wl.user_ids, r.mget([state_key(u) for u in wl.user_ids]), strict=True))
    states = {u: decode_state(b) for u, b in blobs.items() if b is not None}
    assert set(states) == set(as_of), (len(states), len(as_of))
    expected = dict(zip(as_of, offline.build(accepted, as_of.items()), strict=True))
    for user, state in states.items():
        assert state.last_ms == as_of[user], user
        got = features(state, state.last_ms)
        for name in FEATURE_NAMES:
            assert math.isclose(got[name], expected[user][name], abs_tol=1e-9), (user, name)

    # 2. one prediction per (event, task, model kind), one events row per event
    event_ids = {e.event_id for evs in accepted.values() for e in evs}
    predictions: Counter[tuple[str, str, str]] = Counter()
    bronze: set[str] = set()
    for dsn in (stack.settings.clickhouse_dsn, *clickhouse_dsns):
        rows, ids = clickhouse_rows(dsn, wl.prefix)
        predictions.update(set(rows))
        bronze.update(ids)
    want = {(e, t, k) for e in event_ids for t in TASKS for k in MODEL_KINDS}
    assert set(predictions) == want, (len(set(predictions) - want), len(want - set(predictions)))
    assert bronze == event_ids

    # 3. the DLQ: each malformed record once, with its reason
    dead = [headers for headers, _ in read_dlq(stack.settings, wl.prefix)]
    coordinates = Counter((h["source_topic"], h["source_partition"], h["source_offset"]) for h in dead)
    twice = {c: n for c, n in coordinates.items() if n > 1}
    assert not twice, f"{len(twice)} dead letters more than once, e.g. {list(twice.items())[:3]}"
    assert Counter(h["reason"] for h in dead) == wl.dead_letters()
