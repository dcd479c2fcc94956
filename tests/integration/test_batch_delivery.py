"""Batch delivery (``streams/delivery.py`` on the ``churnstream-kafka://`` consumer, ``streams/transport.py``)
against a real broker: every record handed over exactly once, and faust commits exactly the end offsets.

The agent is ``bench/faust_noop.py`` in mode ``batch`` in its own process, as the worker runs: it acks each message
with faust's per-message ack and writes ``topic partition offset`` of each handed-over message to a log.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer, TopicPartition

from streams.produce import producer
from tests.conftest import StackHandle

PER_TOPIC = 3_000  # records per topic, keys spread over its partitions


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


def test_every_record_handed_over_once_and_commits_reach_the_end(module_stack: StackHandle) -> None:
    settings = module_stack.settings
    topics = settings.input_topics
    p = producer(settings)
    for topic in topics:
        for i in range(PER_TOPIC):
            p.produce(topic, key=f"user-{i % 97}".encode(), value=b'{"n": %d}' % i)
    assert p.flush(30) == 0
    n = len(topics) * PER_TOPIC
    ends = committed_and_end(module_stack)
    assert len(ends) == len(topics) * settings.partitions == 12
    assert sum(high for _, high in ends.values()) == n
    assert all(high > 0 for _, high in ends.values()), ends  # every partition has records

    log = settings.dir("logs") / "batch-delivery-offsets.txt"
    log.unlink(missing_ok=True)
    env = module_stack.env | {"CHURNSTREAM_BENCH_FAUST_MODE": "batch", "CHURNSTREAM_BENCH_NOOP_LOG": str(log)}
    out_path = settings.dir("logs") / "batch-delivery-agent.log"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.faust_noop", settings.kafka_bootstrap, settings.app_id, str(n), *topics],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        state = committed_and_end(module_stack)
        while any(committed != high for committed, high in state.values()):
            assert proc.poll() is None, f"the agent died:\n{out_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"commits never reached the end: {state}\n{out_path.read_text()[-3000:]}"
            )
            time.sleep(0.5)
            state = committed_and_end(module_stack)
        time.sleep(3)  # anything handed over twice, or committed past the end, would show by now
        state = committed_and_end(module_stack)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    # committed offsets equal the end offsets exactly, per partition
    assert state == {tp: (high, high) for tp, (_, high) in ends.items()}
    # every record handed over exactly once: counted raw by (topic, partition, offset)
    counts = collections.Counter(tuple(line.split()) for line in log.read_text().splitlines())
    twice = {k: c for k, c in counts.items() if c != 1}
    assert not twice, f"handed over more than once: {sorted(twice.items())[:10]}"
    expected = {(t, str(part), str(o)) for (t, part), (_, high) in ends.items() for o in range(high)}
    assert sum(counts.values()) == n
    assert set(counts) == expected
