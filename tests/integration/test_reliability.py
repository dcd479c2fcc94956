"""Faults on the real stack: crashes, outages of Redis, ClickHouse and Kafka, a rebalance and a slow sink.

Every test streams generated events with faults (1% malformed, 1% duplicates, 5% out of order) while the fault
happens, and ends with the exact end-state checks of :mod:`tests.integration.endstate`: features equal the
offline recomputation, one prediction per (event, task, model kind), each dead letter once.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra import clickhouse_db, kafka_broker, redis_server
from infra import stack as infra_stack
from infra.processes import ManagedProcess, free_port
from models.experiments import Experiments
from models.registry import Registry
from streams.lag import group_lag
from streams.scrape import Scrape
from tests.conftest import StackHandle
from tests.integration.endstate import (
    Workload,
    assert_exact_end_state,
    processed,
    processed_at,
    readyz,
    stop_merges,
    wait_progress,
)
from tests.integration.learning_check import assert_labels_learned_once, wait_learning_settled
from tests.integration.support import fit, promote_new

pytestmark = pytest.mark.slow
OUTAGE_S = 30
RECOVERY_S = 10


def own(stack: StackHandle, name: str) -> StackHandle:
    """The session's services with topics, group, registry and Redis database of this test's own, and a champion
    for both tasks: with the online model, every event gets four prediction rows."""
    isolated = stack.isolated(name)
    promote_new(Registry(isolated.settings.registry_dir()), "logreg", 7)
    return isolated


def run_with_api(stack: StackHandle, name: str) -> tuple[ManagedProcess, int]:
    """``churnstream run`` (worker and API in one process, as embedded mode runs) and its API port."""
    port = free_port()
    proc = stack.spawn_worker(name, command="run", CHURNSTREAM_API_PORT=str(port))
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 120, stack.settings.dir("logs") / f"{name}.log")
    return proc, port


def watch_readyz(port: int, seconds: float) -> list[dict[str, object]]:
    """/readyz bodies polled once a second for ``seconds``."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = readyz(port)
        seen.append({"status": status, **body})
        time.sleep(1)
    return seen


def test_sigkill_five_times_while_200k_events_stream_in(stack: StackHandle) -> None:
    """Also checks the online models: every label resolved was learned exactly once (learning_check); and runs a
    churn champion/challenger experiment throughout: one row per (event or day end, task, model kind, variant)."""
    stack = own(stack, "crash")  # own topics, group, registry and Redis database (own label counters)
    registry = Registry(stack.settings.registry_dir())
    experiment = Experiments(registry.root).start(registry.save("churn", fit("logreg", 8), {}), 0.5, "served")  # type: ignore[arg-type]
    wl = Workload.generate("crash", users=4200, days=90, seed=21, activity=0.8)
    assert wl.events >= 200_000
    rng = random.Random(5)
    wl.stream(stack.settings, rate=4000)
    proc = stack.spawn_worker("crash")
    try:
        for _ in range(5):
            wait_progress(stack)  # started and processing: then kill it at a random moment
            time.sleep(rng.uniform(0.5, 8))
            assert proc.kill()
            proc = stack.spawn_worker("crash")
        wl.join()
        stack.wait_consumed(timeout=900, worker=proc)
        wait_learning_settled(stack.settings)
    finally:
        proc.stop()
    learned = assert_labels_learned_once(stack.settings, wl)
    print(f"online labels: {learned}")
    assert_exact_end_state(stack, wl, experiment=experiment)


@dataclass
class Outage:
    readyz: list[dict[str, object]]  # polled once a second while the service was down
    recovered_in: float  # seconds from the service answering again to the worker's next progress
    readyz_after: int


def outage(stack: StackHandle, wl: Workload, name: str, stop: Any, start: Any, seconds: int) -> Outage:
    """Stream ``wl`` into ``churnstream run``; ``stop`` a service mid-stream for ``seconds`` (watching /readyz),
    ``start`` it again, and wait until everything is consumed."""
    proc, port = run_with_api(stack, name)
    try:
        wl.stream(stack.settings, rate=1000)
        wait_progress(stack)
        stop()
        during = watch_readyz(port, seconds)
        start()
        recovered_in = wait_progress(stack, timeout=60, since=processed(stack))
        wl.join()
        stack.wait_consumed(timeout=600, worker=proc)
        after = readyz(port)[0]
    finally:
        proc.stop()
    return Outage(during, recovered_in, after)


def test_a_backlog_is_caught_up_without_loss(stack: StackHandle) -> None:
    """Catching up on a backlog, the small topics run ahead in event time and wait in the aligner. Nothing may
    be lost or reordered: the worker once paused partitions that ran ahead, and faust dropped records fetched
    before the pause, then skipped their offsets as a gap (12,792 records lost in a 1M-record run)."""
    stack = own(stack, "backlog")
    wl = Workload.generate("backlog", users=1000, days=90, seed=26)
    wl.stream(stack.settings, rate=0)
    wl.join()
    with stack.worker("backlog") as proc:
        stack.wait_consumed(timeout=500, worker=proc)
    assert_exact_end_state(stack, wl)


def test_redis_down_for_30s(stack: StackHandle) -> None:
    stack = own(stack, "redis")
    wl = Workload.generate("redis", users=1000, days=60, seed=22)

    def start() -> None:
        redis_server.start(stack.settings)
        redis_server.wait_ready(stack.settings)

    out = outage(stack, wl, "redis-outage", redis_server.process(stack.settings).stop, start, OUTAGE_S)
    assert all(r["status"] == 503 and r["redis"] != "ok" for r in out.readyz[2:]), out.readyz
    assert out.recovered_in <= RECOVERY_S and out.readyz_after == 200, out
    assert_exact_end_state(stack, wl)


def table_dirs(stack: StackHandle) -> list[Path]:
    """Data directories of the tables the worker inserts into (read while no worker holds the chDB path)."""
    client = clickhouse_db.connect(stack.settings.clickhouse_dsn)
    try:
        rows = client.query(
            "SELECT data_paths FROM system.tables WHERE database = currentDatabase() "
            "AND name IN ('events', 'predictions', 'latest_scores')"
        ).result_rows
    finally:
        client.close()
    root = Path(stack.settings.clickhouse_dsn.removeprefix("chdb://"))
    dirs = [Path(p) if Path(p).is_absolute() else root / p for (paths,) in rows for p in paths]
    assert len(dirs) == 3 and all(d.is_dir() for d in dirs), dirs
    return dirs


@pytest.fixture
def read_only(stack: StackHandle) -> Iterator[list[Path]]:
    """Table directories to freeze with ``chattr +i`` (as when a disk remounts read-only); always thawed."""
    if not stack.settings.embedded_clickhouse:
        pytest.skip("freezes embedded chDB's table directories")
    dirs = table_dirs(stack)
    try:
        yield dirs
    finally:
        subprocess.run(["chattr", "-i", *map(str, dirs)], check=False)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_clickhouse_writes_fail_for_30s_and_memory_stays_bounded(stack: StackHandle, read_only: list[Path]) -> None:
    stack = own(stack, "chfail")
    wl = Workload.generate("chfail", users=3000, days=60, seed=23, activity=0.8)
    proc, port = run_with_api(stack, "clickhouse-outage")
    pid = proc.pid()
    assert pid is not None
    try:
        wl.stream(stack.settings, rate=2500)  # about 40 s of events: they keep coming during the whole outage
        wait_progress(stack)
        time.sleep(3)
        subprocess.run(["chattr", "+i", *map(str, read_only)], check=True)
        rss: list[float] = []

        def sample() -> None:
            for _ in range(OUTAGE_S):
                rss.append(rss_mb(pid))
                time.sleep(1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        during = watch_readyz(port, OUTAGE_S // 2)
        half_lag = group_lag(stack.settings)
        during += watch_readyz(port, OUTAGE_S // 2)
        sampler.join()
        end_lag = group_lag(stack.settings)
        metrics = Scrape.read(f"http://127.0.0.1:{stack.metrics_port}/metrics")
        subprocess.run(["chattr", "-i", *map(str, read_only)], check=True)
        recovered_in = wait_progress(stack, timeout=60, since=processed(stack))
        wl.join()
        stack.wait_consumed(timeout=900, worker=proc)
    finally:
        proc.stop()
    assert any(r["status"] == 503 and "writes failing" in str(r["clickhouse"]) for r in during), during
    assert metrics.by_label("churnstream_dependency_up", "dependency")["clickhouse"] == 0
    # backpressure: nothing is acknowledged while ClickHouse refuses rows, the backlog stays in Kafka, and the
    # worker's memory levels off instead of growing with it
    half = len(rss) // 2
    growth = max(rss[half:]) - rss[half]
    print(f"RSS during the outage (MB): {[round(x) for x in rss]}; backlog {half_lag:,} -> {end_lag:,}")
    assert end_lag > half_lag + 20_000, (half_lag, end_lag)
    assert growth < 32, growth
    assert recovered_in <= RECOVERY_S, recovered_in
    assert_exact_end_state(stack, wl)


def test_kafka_broker_restart(stack: StackHandle) -> None:
    stack = own(stack, "kafka")
    wl = Workload.generate("kafka", users=1000, days=60, seed=24)

    def start() -> None:
        kafka_broker.start(stack.settings)
        kafka_broker.wait_ready(stack.settings)

    out = outage(stack, wl, "kafka-restart", kafka_broker.process(stack.settings).stop, start, 10)
    assert any(r["status"] == 503 and r["kafka"] != "ok" for r in out.readyz), out.readyz
    assert out.recovered_in <= RECOVERY_S and out.readyz_after == 200, out
    assert_exact_end_state(stack, wl)


def test_a_second_worker_joins_and_leaves(stack: StackHandle) -> None:
    stack = own(stack, "rebalance")
    wl = Workload.generate("rebal", users=2000, days=60, seed=25)
    # embedded chDB allows one process per data path: the second worker writes to its own (with the schema)
    second_dsn = infra_stack.clickhouse_beside(stack.settings, "rebalance-b")
    if second_dsn != stack.settings.clickhouse_dsn:
        stop_merges(second_dsn)
    with stack.worker("rebalance-a") as first:
        wl.stream(stack.settings, rate=1200)
        wait_progress(stack)
        second_port = free_port()
        second = stack.spawn_worker(
            "rebalance-b", CHURNSTREAM_METRICS_PORT=str(second_port), CHURNSTREAM_CLICKHOUSE_DSN=second_dsn
        )
        try:
            deadline = time.monotonic() + 120
            while processed_at(second_port) <= 0:  # it joined, got partitions and processed some of them
                assert second.running() and time.monotonic() < deadline, stack.worker_log("rebalance-b")
                time.sleep(0.5)
            time.sleep(10)
        finally:
            second.stop()  # leaves the group: its partitions move back to the first worker
        wl.join()
        stack.wait_consumed(timeout=600, worker=first)
    others = (second_dsn,) if second_dsn != stack.settings.clickhouse_dsn else ()
    # a batch the old owner finishes for a partition revoked meanwhile may write rows the new owner writes too
    # (docs/reliability.md, "When a duplicate row can still occur"): exact after dedup, raw count reported
    # dead letters of a few early records are sometimes sent twice across the rebalance (open, docs/reliability.md):
    # printed, not asserted here; every malformed record must still be there with its reason
    assert_exact_end_state(stack, wl, clickhouse_dsns=others, raw_exact=False, dlq_once=False)
