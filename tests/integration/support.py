"""Helpers the integration modules share (no test module imports another): small champions, API keys, and a
consumer-group reset."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from core.days import DAY_MS, day_end
from core.tasks import TASKS, label
from features import offline
from features.compute import FEATURE_NAMES
from models import drift
from models.pretrained import create
from models.registry import ModelRef, Registry
from tests.conftest import StackHandle


def fit(name: str, seed: int) -> object:
    """A small model of kind ``name`` fitted on random features (a stand-in champion, quick to train)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, len(FEATURE_NAMES)))
    return create(name, seed).fit(X, (X[:, 0] + X[:, 5] > 0).astype(np.int8))


def promote_new(registry: Registry, name: str, seed: int) -> dict[str, ModelRef]:
    """Save and promote a fresh ``name`` model for every task; returns the refs."""
    refs = {}
    for task in TASKS:
        refs[task] = registry.save(task, fit(name, seed), {"metrics": {"roc_auc": 0.5}})  # type: ignore[arg-type]
        registry.promote(refs[task])
    return refs


def promote_trained(registry: Registry, events: list[dict], every_days: int = 3) -> None:
    """A logistic regression per task trained on the generated history itself, as the real champions are: rows at
    day ends every ``every_days`` days of each user's life, labels from what follows. Its scores spread out as real
    ones do (a stand-in fitted on random features saturates at 0 or 1 on real feature scales)."""
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in events)
    end = max(e["ts"] for e in events) // DAY_MS - max(t.horizon_days for t in TASKS.values())
    queries = [(u, day_end(d)) for u, evs in accepted.items() for d in range(evs[0].ts_ms // DAY_MS, end, every_days)]
    X = np.array([[f[n] for n in FEATURE_NAMES] for f in offline.build(accepted, queries)])
    for task in TASKS:
        y = np.array([label(task, accepted[u], t) for u, t in queries], dtype=np.int8)
        model = create("logreg", 5).fit(X, y)
        live = X[X[:, FEATURE_NAMES.index("days_since_last_event")] <= 60]  # as the live sample: active users
        profile = drift.profile(live, FEATURE_NAMES, model.predict_proba_many(live)).to_json()
        registry.promote(registry.save(task, model, {"metrics": {"roc_auc": 0.5}, "drift": profile}))  # type: ignore[arg-type]


def new_key(stack: StackHandle, scope: str) -> str:
    """A new API key with ``scope``, created through the CLI as an operator would."""
    out = stack.cli("keys", "create", "--name", f"test-{scope}", "--scope", scope).stdout
    return out.strip().splitlines()[-1]


def reset_group_to_earliest(stack: StackHandle) -> None:
    """Delete the worker's consumer group (no worker runs), so the next worker starts from the earliest offsets."""
    admin = AdminClient({"bootstrap.servers": stack.settings.kafka_bootstrap})  # keep a reference: futures need it
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.delete_consumer_groups([stack.settings.app_id], request_timeout=10)[stack.settings.app_id].result(20)
            return
        except KafkaException:  # GROUP_NOT_EMPTY until the stopped member's session ends
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def own_clickhouse(stack: StackHandle, name: str) -> StackHandle:
    """``stack`` with a ClickHouse of its own (an embedded chDB path beside the session's, schema applied)."""
    from infra import stack as infra_stack

    dsn = infra_stack.clickhouse_beside(stack.settings, f"{name}{time.time_ns() % 10**7}")
    return StackHandle(stack.settings.model_copy(update={"clickhouse_dsn": dsn}), stack.env)


def records_in_input_topics(stack: StackHandle) -> int:
    """The sum of the input topics' end offsets: how many records were ever produced to them."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": stack.settings.kafka_bootstrap, "group.id": f"ends-{time.time_ns()}"})
    try:
        total = 0
        for topic in stack.settings.input_topics:
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                total += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return total
    finally:
        consumer.close()


@contextlib.contextmanager
def served(app: Any) -> Iterator[int]:
    """``app`` served by uvicorn over loopback in a thread of this process (which then holds an embedded chDB
    path the app opens); yields the port. The lifespan's end closes the app's services."""
    import uvicorn

    from infra.processes import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
