"""Feature-path throughput against the framework's floor, same topics, same run.

1. ``bare``: an aiokafka ``getmany`` + orjson decode loop (no framework);
2. ``faust_noop``: a do-nothing Faust agent (``bench/faust_noop.py``);
3. ``features``: the real worker (validation, state, Redis, ClickHouse ``events``, DLQ), measured from its
   Prometheus counter between the first and the last processed record.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from churnstream.settings import Settings
from simulation import generator
from streams.produce import produce_records
from streams.scrape import Scrape


@dataclass
class Result:
    name: str
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def make_topics(settings: Settings, prefix: str) -> tuple[str, str, str]:
    names = (f"{prefix}.page_views", f"{prefix}.cart_events", f"{prefix}.purchases")
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for fut in admin.create_topics([NewTopic(t, settings.partitions, 1) for t in (*names, f"{prefix}.dlq")]).values():
        fut.result()
    return names


def produce(settings: Settings, topics: tuple[str, str, str], users: int, days: int, seed: int) -> int:
    """Generated events (no faults), mapped onto the bench topics; returns the record count."""
    # users unique to these topics: a user's state remembers offsets per (topic index, partition), so users
    # reused from an earlier run on other topics would look like replays
    prefix = topics[0].split(".")[0]
    events = generator.simulate(generator.make_users(users, days, seed, prefix=f"{prefix}-u"), days, seed)
    records = generator.arrivals(events, seed)
    mapping = dict(zip(("page_views", "cart_events", "purchases"), topics, strict=True))
    return produce_records(settings, [generator.Record(mapping[r.topic], r.key, r.value) for r in records])


async def _bare(settings: Settings, topics: tuple[str, ...], expected: int) -> Result:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"bare-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    n, t0 = 0, 0.0
    try:
        while n < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for r in records:
                    orjson.loads(r.value)
                    n += 1
                    if n == 1:
                        t0 = time.perf_counter()
    finally:
        await consumer.stop()
    return Result("bare aiokafka getmany + orjson", n - 1, time.perf_counter() - t0)


def bare(settings: Settings, topics: tuple[str, ...], expected: int) -> Result:
    return asyncio.run(_bare(settings, topics, expected))


def faust_noop(settings: Settings, topics: tuple[str, ...], expected: int, mode: str = "default") -> Result:
    """The do-nothing agent (``bench/faust_noop.py``) with faust's defaults, the worker's settings or tuned."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.faust_noop",
            settings.kafka_bootstrap,
            f"noop-{uuid.uuid4().hex[:8]}",
            str(expected),
            *topics,
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        env=os.environ | {"CHURNSTREAM_BENCH_FAUST_MODE": mode},
    )
    # the Faust worker routes stdout through its logger: find the JSON inside the log line
    text = out.stdout + out.stderr
    start = text.find('{"events"')
    if start < 0:
        raise RuntimeError(f"the Faust no-op agent printed no result:\n{text[-2000:]}")
    r = json.loads(text[start : text.index("}", start) + 1])
    return Result("do-nothing Faust agent", r["events"], r["seconds"])


def _processed(port: int) -> float:
    """Records the worker has handled so far (every outcome), or 0 while its endpoint is not up."""
    try:
        return Scrape.read(f"http://127.0.0.1:{port}/metrics", timeout=2).total("churnstream_events_total")
    except OSError:
        return 0.0


def worker_env(settings: Settings, topics: tuple[str, str, str], group: str, port: int) -> dict[str, str]:
    """The environment of a real worker on the bench topics, in its own consumer group."""
    return {
        **os.environ,
        "CHURNSTREAM_HOME": str(settings.home),
        "CHURNSTREAM_APP_ID": group,
        "CHURNSTREAM_TOPIC_PAGE_VIEWS": topics[0],
        "CHURNSTREAM_TOPIC_CART": topics[1],
        "CHURNSTREAM_TOPIC_PURCHASES": topics[2],
        "CHURNSTREAM_TOPIC_DLQ": f"{topics[0].split('.')[0]}.dlq",
        "CHURNSTREAM_METRICS_PORT": str(port),
        "CHURNSTREAM_KAFKA_PORT": str(settings.kafka_port),
        "CHURNSTREAM_REDIS_URL": settings.redis_url,
        "CHURNSTREAM_CLICKHOUSE_DSN": settings.clickhouse_dsn,
    }


def spawn_worker(env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    log = open(Path(env["CHURNSTREAM_HOME"]) / "logs" / log_name, "w")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "churnstream.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def measure(
    ports: list[int], expected: int, procs: list[subprocess.Popen[bytes]], name: str, stall_s: float = 180.0
) -> Result:
    """Events/s summed over the workers' counters, between the first and the last processed record.

    Raises when a worker exits, or when the count has not moved for ``stall_s`` once the first record is in.
    """
    first_n, first_t = 0.0, 0.0
    last_n, last_change = -1.0, time.monotonic()
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        n = sum(_processed(p) for p in ports)
        now = time.perf_counter()
        if n and not first_t:
            first_n, first_t = n, now
        if n >= expected:
            return Result(name, int(n - first_n), now - first_t)
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a worker exited; see {procs[0].args}")
        if n != last_n:
            last_n, last_change = n, time.monotonic()
        elif n and time.monotonic() - last_change > stall_s:
            raise TimeoutError(f"{name}: stalled at {n:,.0f} of {expected:,} records for {stall_s:.0f} s")
        # a scrape renders every metric (about 7% of a worker's CPU at 5 per second, in a py-spy profile):
        # poll once a second, as a Prometheus server would at most
        time.sleep(1.0)
    raise TimeoutError(f"{name} did not finish")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()


def features(settings: Settings, topics: tuple[str, str, str], prefix: str, expected: int, port: int) -> Result:
    # the feature path alone: no champion in this bench home, and the online models off
    env = worker_env(settings, topics, f"{prefix}-features", port) | {"CHURNSTREAM_ONLINE_MODEL": "off"}
    settings.dir("logs")
    proc = spawn_worker(env, "bench-worker.log")
    try:
        return measure([port], expected, [proc], "churnstream feature path")
    finally:
        stop([proc])
