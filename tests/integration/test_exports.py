"""Exports of the at-risk list on the real stack: ``churnstream run`` (worker and API in one process, holding the
embedded chDB) exports on a schedule every second while the worker streams, to a file and to a Kafka topic, and
``churnstream export at-risk`` asks the running API. A reader polling the file never sees a partial one: every
version it reads is byte for byte one whose sha256 a finished export recorded in ClickHouse ``exports``."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.days import DAY_MS
from infra import clickhouse_db
from infra.processes import free_port
from models.registry import Registry
from serving.at_risk import COLUMNS
from simulation.generator import arrivals, make_users, simulate
from streams.produce import produce_records
from tests.conftest import StackHandle
from tests.integration.support import new_key, promote_trained

START = 1_787_000_000_000 // DAY_MS * DAY_MS


def exports_table(dsn: str, since_ms: int) -> list[dict[str, Any]]:
    client = clickhouse_db.connect(dsn)
    try:
        result = client.query(
            "SELECT export_id, kind, destination, rows, sha256, min_score FROM exports "
            "WHERE started_at >= fromUnixTimestamp64Milli({t:Int64})",
            parameters={"t": since_ms},
        )
        return list(result.named_results())
    finally:
        client.close()


def topic_records(bootstrap: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"read-{time.time_ns()}", "enable.auto.commit": False}
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        out, seen = [], dict.fromkeys(parts, 0)
        deadline = time.monotonic() + 60
        while any(seen[p] < ends[p] for p in parts) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            seen[msg.partition()] = msg.offset() + 1
            headers = dict(msg.headers() or [])
            out.append((headers["export_id"].decode(), orjson.loads(msg.value())))
        return out
    finally:
        consumer.close()


def test_scheduled_exports_are_complete_files_and_topic_batches_while_the_worker_streams(
    module_stack: StackHandle, tmp_path: Path
) -> None:
    s = module_stack.settings
    prefix = f"exp{time.time_ns() % 10**7}-"
    users = make_users(150, 150, 53, prefix=prefix, start_ms=START)
    events = simulate(users, 150, 53, start_ms=START)
    promote_trained(Registry(s.registry_dir()), events)
    records = arrivals(events, 53, out_of_order=0.0)
    half = len(records) // 2
    produce_records(s, records[:half])
    topic = f"{s.app_id}.exports"
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    out_dir, port, key = tmp_path / "exports", free_port(), new_key(module_stack, "read")
    path = out_dir / "at-risk-churn.csv"
    started_ms = time.time_ns() // 1_000_000
    seen: Counter[str] = Counter()
    env = {
        "CHURNSTREAM_ONLINE_MODEL": "off",
        "CHURNSTREAM_API_PORT": str(port),
        "CHURNSTREAM_EXPORT_CRON": "* * * * * *",  # every second
        "CHURNSTREAM_EXPORT_DIR": str(out_dir),
        "CHURNSTREAM_EXPORT_TOPIC": topic,
        "CHURNSTREAM_EXPORT_MIN_SCORE": "0",
    }
    with module_stack.worker(command="run", **env) as run:
        slices = [records[half + i :: 3] for i in range(3)]  # the second half arrives in slices while exports run
        deadline, until = time.monotonic() + 240, None
        while until is None or time.monotonic() < until:
            assert run.running() and time.monotonic() < deadline, module_stack.worker_log()
            if seen and slices and sum(seen.values()) % 50 == 0:
                produce_records(s, slices.pop())
                until = time.monotonic() + 10 if not slices else None
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                time.sleep(0.01)
                continue
            seen[hashlib.sha256(data).hexdigest()] += 1
            rows = list(csv.reader(io.StringIO(data.decode())))
            assert tuple(rows[0]) == COLUMNS and all(len(r) == len(COLUMNS) for r in rows[1:])
            time.sleep(0.01)
        module_stack.wait_consumed(worker=run)
        via_api = tmp_path / "churners.csv"
        cli = module_stack.cli("export", "at-risk", "--task", "churn", "--min-score", "0.5", "--out", str(via_api),
                               "--key", key, CHURNSTREAM_API_PORT=str(port))  # fmt: skip
        assert "asking it" in cli.stdout, cli.stdout
    assert not [p for p in out_dir.iterdir() if p.name != path.name]  # no temporary file left behind

    recorded = exports_table(s.clickhouse_dsn, started_ms)
    files = {r["sha256"]: r for r in recorded if r["kind"] == "file"}
    assert set(seen) <= set(files), "a reader saw a file no finished export wrote (a partial file)"
    assert len(seen) >= 3 and len({files[h]["rows"] for h in seen}) > 1  # the list changed as events streamed
    file_ids = [r["export_id"] for r in recorded if r["kind"] == "file"]
    assert len(file_ids) == len(set(file_ids)) >= len(seen)  # each export recorded once, raw
    api = [r for r in recorded if r["kind"] == "api"]
    assert len(api) == 1 and api[0]["destination"] == str(via_api.resolve())
    assert api[0]["sha256"] == hashlib.sha256(via_api.read_bytes()).hexdigest()
    assert api[0]["rows"] == len(via_api.read_text().splitlines()) - 1 > 0

    batches = Counter(export_id for export_id, _ in topic_records(s.kafka_bootstrap, topic))
    kafka = {r["export_id"]: r["rows"] for r in recorded if r["kind"] == "kafka"}
    assert kafka and {e: batches[e] for e in kafka} == kafka  # every recorded batch complete, raw count
    assert len(set(batches) - set(kafka)) <= 1  # at most the batch a stop cut short, never recorded
