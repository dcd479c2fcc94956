"""Exports of the at-risk list (:mod:`serving.at_risk`) to a CSV file or a Kafka topic, each recorded in ClickHouse
``exports``.

A file is written beside its final name (``.<name>.<id>.tmp``), flushed to disk and renamed into place, so a
reader sees the previous complete file or the new complete file, never a partial one. Kafka records are one JSON
object per user (the CSV columns, plus ``export_id``), keyed by user id, sent by an idempotent producer and
acknowledged before the export is recorded.

>>> file_name("churn", 1_792_000_000_123)
'at-risk-churn-20261014T174640Z.csv'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from serving.at_risk import COLUMNS, iter_csv, list_as_of, rows

RECORD_COLUMNS = (
    "export_id", "kind", "destination", "task", "model_kind", "min_score", "max_rows", "rows", "as_of",
    "started_at", "finished_at", "sha256",
)  # fmt: skip


@dataclass(frozen=True)
class ExportSpec:
    task: str = "churn"
    min_score: float = 0.7
    limit: int = 10_000_000
    model_kind: str = "pretrained"


@dataclass(frozen=True)
class ExportRecord:
    export_id: str
    kind: str  # file | kafka | api
    destination: str
    spec: ExportSpec
    rows: int
    as_of_ms: int | None
    started_ms: int
    finished_ms: int
    sha256: str = ""

    def row(self) -> list[Any]:
        ts = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC)  # noqa: E731
        s = self.spec
        return [self.export_id, self.kind, self.destination, s.task, s.model_kind, s.min_score, s.limit, self.rows,
                None if self.as_of_ms is None else ts(self.as_of_ms), ts(self.started_ms), ts(self.finished_ms),
                self.sha256]  # fmt: skip


def file_name(task: str, started_ms: int) -> str:
    return f"at-risk-{task}-{dt.datetime.fromtimestamp(started_ms / 1000, dt.UTC):%Y%m%dT%H%M%SZ}.csv"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Counted:
    """Rows passed through, counted."""

    def __init__(self, source: Iterator[tuple[Any, ...]]) -> None:
        self.source, self.n = source, 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for row in self.source:
            self.n += 1
            yield row


def record(client: Any, rec: ExportRecord) -> ExportRecord:
    """Write the export's row to ClickHouse ``exports`` (its id as the insert's deduplication token)."""
    client.insert("exports", [rec.row()], column_names=list(RECORD_COLUMNS),
                  settings={"insert_deduplication_token": rec.export_id})  # fmt: skip
    return rec


def to_file(client: Any, spec: ExportSpec, thresholds: tuple[float, float], path: Path) -> ExportRecord:
    """Write the list to ``path`` atomically and record it; ``path`` may be a directory (a timestamped name)."""
    started, export_id = _now_ms(), uuid.uuid4().hex
    if path.is_dir():
        path = path / file_name(spec.task, started)
    path.parent.mkdir(parents=True, exist_ok=True)
    as_of = list_as_of(client, spec.task, spec.model_kind)
    listed = Counted(rows(client, spec.task, spec.model_kind, spec.min_score, spec.limit, thresholds))
    tmp = path.with_name(f".{path.name}.{export_id}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for chunk in iter_csv(iter(listed)):
                data = chunk.encode()
                digest.update(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    rec = ExportRecord(export_id, "file", str(path), spec, listed.n, as_of, started, _now_ms(), digest.hexdigest())
    return record(client, rec)


def to_kafka(
    client: Any, spec: ExportSpec, thresholds: tuple[float, float], bootstrap: str, topic: str
) -> ExportRecord:
    """Send the list to ``topic`` (one record per user, keyed by user id) and record it once all are acked."""
    from confluent_kafka import Producer

    started, export_id = _now_ms(), uuid.uuid4().hex
    as_of = list_as_of(client, spec.task, spec.model_kind)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    n = 0
    for row in rows(client, spec.task, spec.model_kind, spec.min_score, spec.limit, thresholds):
        value = orjson.dumps(dict(zip(COLUMNS, row, strict=True)) | {"export_id": export_id})
        while True:
            try:
                producer.produce(topic, value, key=str(row[0]).encode(), on_delivery=delivered,
                                 headers={"export_id": export_id})  # fmt: skip
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
        producer.poll(0)
    if producer.flush(60) or failures:
        raise RuntimeError(f"export {export_id}: {len(failures)} records not acknowledged: {failures[:3]}")
    return record(client, ExportRecord(export_id, "kafka", topic, spec, n, as_of, started, _now_ms()))
