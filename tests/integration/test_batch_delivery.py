"""Batch delivery (``streams/delivery.py`` on the ``churnstream-kafka://`` consumer, ``streams/transport.py``)
against a real broker: every record handed over exactly once, and faust commits exactly the end offsets.

The agent is ``bench/faust_noop.py`` in mode ``batch`` in its own process, as the worker runs: it acks each message
with faust's per-message ack and writes ``topic partition offset`` of each handed-over message to a log of its own.
Each test has its own topics and consumer group (:meth:`StackHandle.isolated`).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from streams.produce import producer
from tests.conftest import StackHandle

PER_TOPIC = 3_000  # records per topic, keys spread over its partitions


# retried while the group coordinator is still being elected (NOT_COORDINATOR right after a broker start)
@retry(retry=retry_if_exception_type(KafkaException), wait=wait_fixed(0.5), stop=stop_after_delay(30), reraise=True)
def committed_and_end(handle: StackHandle) -> dict[tuple[str, int], tuple[int, int]]:
    """``(topic, partition) -> (committed offset, end offset)`` for the group, raw (-1001 when nothing is committed)."""
    settings = handle.settings
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": settings.app_id, "log_level": 0})
    try:
        md = consumer.list_topics(timeout=10)
        tps = [TopicPartition(t, p) for t in settings.input_topics for p in md.topics[t].partitions]
        out = {}
        for tp in consumer.committed(tps, timeout=10):
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            out[(tp.topic, tp.partition)] = (tp.offset, high)
        return out
    finally:
        consumer.close()


def produce(handle: StackHandle, per_topic: int) -> dict[tuple[str, int], tuple[int, int]]:
    """``per_topic`` records to each input topic; returns the group's (committed, end) per partition."""
    settings = handle.settings
    p = producer(settings)
    for topic in settings.input_topics:
        for i in range(per_topic):
            p.produce(topic, key=f"user-{i % 97}".encode(), value=b'{"n": %d}' % i)
    assert p.flush(30) == 0
    ends = committed_and_end(handle)
    assert len(ends) == len(settings.input_topics) * settings.partitions == 12
    assert sum(high for _, high in ends.values()) == 3 * per_topic
    assert all(high > 0 for _, high in ends.values()), ends  # every partition has records
    return ends


def spawn_agent(handle: StackHandle, name: str, n: int, mode: str = "batch", **env: str) -> subprocess.Popen[bytes]:
    settings = handle.settings
    log = settings.dir("logs") / f"{name}-offsets.txt"
    log.unlink(missing_ok=True)
    env = handle.env | {"CHURNSTREAM_BENCH_FAUST_MODE": mode, "CHURNSTREAM_BENCH_NOOP_LOG": str(log)} | env
    topics = settings.input_topics
    with open(settings.dir("logs") / f"{name}.log", "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.faust_noop", settings.kafka_bootstrap, settings.app_id, str(n), *topics],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def run_until_committed(
    handle: StackHandle, procs: dict[str, subprocess.Popen[bytes]], timeout: float = 180
) -> dict[tuple[str, int], tuple[int, int]]:
    """Wait until every partition's committed offset is its end offset, then 3 s more; the final state."""
    logs = handle.settings.dir("logs")
    deadline = time.monotonic() + timeout
    state = committed_and_end(handle)
    while any(committed != high for committed, high in state.values()):
        for name, proc in procs.items():
            assert proc.poll() is None, f"agent {name} died:\n{(logs / f'{name}.log').read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"commits never reached the end: {state}"
        time.sleep(0.5)
        state = committed_and_end(handle)
    time.sleep(3)  # anything handed over twice, or committed past the end, would show by now
    return committed_and_end(handle)


def assert_each_once(handle: StackHandle, names: list[str], ends: dict[tuple[str, int], tuple[int, int]]) -> None:
    """Every record handed over exactly once over all agents: counted raw by (topic, partition, offset)."""
    logs = handle.settings.dir("logs")
    lines = [line for name in names for line in (logs / f"{name}-offsets.txt").read_text().splitlines()]
    counts = collections.Counter(tuple(line.split()) for line in lines)
    twice = {k: c for k, c in counts.items() if c != 1}
    assert not twice, f"handed over more than once: {sorted(twice.items())[:10]}"
    expected = {(t, str(part), str(o)) for (t, part), (_, high) in ends.items() for o in range(high)}
    assert len(lines) == sum(high for _, high in ends.values())
    assert set(counts) == expected


def test_every_record_handed_over_once_and_commits_reach_the_end(module_stack: StackHandle) -> None:
    ends = produce(module_stack, PER_TOPIC)
    proc = spawn_agent(module_stack, "batch-one", 3 * PER_TOPIC)
    try:
        state = run_until_committed(module_stack, {"batch-one": proc})
    finally:
        stop(proc)
    # committed offsets equal the end offsets exactly, per partition
    assert state == {tp: (high, high) for tp, (_, high) in ends.items()}
    assert_each_once(module_stack, ["batch-one"], ends)


def test_a_rebalance_mid_stream_loses_nothing_and_commits_exactly(stack: StackHandle) -> None:
    """A second agent joins the group while the first is mid-stream (each batch of up to 1,000 takes 1 s more).

    faust is at-least-once across a rebalance: records handed over but not yet committed when a partition moves
    are handed over again by the new owner, from the committed offset on (the stock agent does the same in this
    scenario). So: nothing lost, commits exactly at the end, and on each partition the records handed over twice
    are one contiguous run of offsets, none of them three times."""
    handle = stack.isolated("batchrebal")
    ends = produce(handle, PER_TOPIC)
    delay = {"CHURNSTREAM_BENCH_NOOP_DELAY_S": "1.0"}
    procs = {"batch-a": spawn_agent(handle, "batch-a", 3 * PER_TOPIC, **delay)}
    logs = handle.settings.dir("logs")
    try:
        deadline = time.monotonic() + 120
        a_log = logs / "batch-a-offsets.txt"
        while not a_log.exists() or len(a_log.read_text(errors="replace").splitlines()) < 1000:
            assert time.monotonic() < deadline and procs["batch-a"].poll() is None, "agent a handed over nothing"
            time.sleep(0.2)
        procs["batch-b"] = spawn_agent(handle, "batch-b", 3 * PER_TOPIC, **delay)
        state = run_until_committed(handle, procs)
    finally:
        for proc in procs.values():
            stop(proc)
    assert state == {tp: (high, high) for tp, (_, high) in ends.items()}
    lines = [
        line.split()
        for name in ("batch-a", "batch-b")
        for line in (logs / f"{name}-offsets.txt").read_text().splitlines()
    ]
    assert any(True for _ in (logs / "batch-b-offsets.txt").read_text().splitlines()), "no rebalance mid-stream"
    counts = collections.Counter((t, int(part), int(o)) for t, part, o in lines)
    assert set(counts) == {(t, part, o) for (t, part), (_, high) in ends.items() for o in range(high)}  # none lost
    assert max(counts.values()) <= 2, sorted((k, c) for k, c in counts.items() if c > 2)[:10]
    for tp in ends:
        again = sorted(o for (t, part, o), c in counts.items() if (t, part) == tp and c == 2)
        assert not again or again == list(range(again[0], again[-1] + 1)), (tp, again[:20])
