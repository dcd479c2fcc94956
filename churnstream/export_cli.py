"""``churnstream export at-risk``: the at-risk list to a CSV file (written atomically) or a Kafka topic, recorded in
ClickHouse ``exports`` (:mod:`serving.exports_job`).

It reads ClickHouse directly (a server DSN, or the embedded path when no process holds it). While ``churnstream
run`` or ``api`` holds the embedded path, it asks the running API instead (``GET /v1/at-risk`` with a ``read`` key
from ``--key`` or ``CHURNSTREAM_API_KEY``), writes the file the same way and records it through
``POST /v1/exports``.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from churnstream.console import console
from churnstream.settings import get_settings

if TYPE_CHECKING:
    from serving.exports_job import ExportSpec

export_app = typer.Typer(help="Export the at-risk list (CSV file or Kafka topic), recorded in ClickHouse `exports`")


def _held(exc: Exception) -> bool:
    """chDB could not open the path: another process (``churnstream run`` or ``api``) holds it."""
    return any(s in str(exc) for s in ("Cannot lock file", "Error initializing EmbeddedServer", "Unable to open"))


def _via_api(out: Path, params: dict[str, str | int | float], key: str) -> tuple[int, str, str]:
    """Download the list from the running API into ``out`` atomically; (rows, sha256, as_of ms or '')."""
    import httpx

    s = get_settings()
    base = f"http://{s.api_host}:{s.api_port}"
    headers = {"X-API-Key": key} if key else {}
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    digest, lines = hashlib.sha256(), 0
    try:
        with (
            httpx.stream("GET", f"{base}/v1/at-risk", params=params, headers=headers, timeout=600) as r,
            open(tmp, "wb") as f,
        ):
            if r.status_code != 200:
                r.read()
                raise typer.BadParameter(f"the API answered {r.status_code}: {r.text[:300]}")
            for chunk in r.iter_bytes():
                digest.update(chunk)
                lines += chunk.count(b"\n")
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
            as_of = r.headers.get("X-Scores-As-Of-Ms", "")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return max(lines - 1, 0), digest.hexdigest(), as_of


@export_app.command("at-risk")
def at_risk(
    task: str = typer.Option("churn", help="churn or purchase"),
    min_score: float = typer.Option(0.7, min=0, max=1, help="the lowest latest score listed"),
    limit: int = typer.Option(10_000_000, min=1, help="the most rows"),
    model_kind: str = typer.Option("pretrained", help="pretrained (the champion) or online"),
    out: Path | None = typer.Option(None, help="the CSV file to write (atomically: written beside it, then renamed)"),
    topic: str = typer.Option("", help="send the list to this Kafka topic instead of a file"),
    key: str = typer.Option("", envvar="CHURNSTREAM_API_KEY", help="a read key, when the running API must answer"),
) -> None:
    """Users whose latest score (event or time rescoring) is at least --min-score, highest first."""
    from infra import clickhouse_db
    from serving.exports_job import ExportSpec, to_file, to_kafka

    if (out is None) == (not topic):
        raise typer.BadParameter("give exactly one of --out FILE or --topic TOPIC")
    s, spec = get_settings(), ExportSpec(task, min_score, limit, model_kind)
    started = time.monotonic()
    try:
        client = clickhouse_db.connect(s.clickhouse_dsn)
        client.query("SELECT 1")  # an embedded path held by another process fails here
    except Exception as exc:
        if not (s.embedded_clickhouse and _held(exc) and out is not None):
            raise
        console.print("the embedded ClickHouse is held by the running API: asking it")
        _export_via_api(out, spec, key)
        return
    try:
        with console.status("exporting"):
            if out is not None:
                rec = to_file(client, spec, s.api_risk_thresholds, out)
            else:
                rec = to_kafka(client, spec, s.api_risk_thresholds, s.kafka_bootstrap, topic)
    finally:
        client.close()
    console.print(
        f"{rec.rows:,} rows to {rec.destination} in {time.monotonic() - started:.1f} s (export {rec.export_id})"
    )


def _export_via_api(out: Path, spec: ExportSpec, key: str) -> None:
    import httpx

    s = get_settings()
    started_ms = time.time_ns() // 1_000_000
    params: dict[str, str | int | float] = {
        "task": spec.task,
        "min_score": spec.min_score,
        "limit": spec.limit,
        "model_kind": spec.model_kind,
    }
    rows, sha, as_of = _via_api(out, params, key)
    body = {**params, "destination": str(out.resolve()), "rows": rows, "sha256": sha, "started_ms": started_ms,
            "as_of_ms": int(as_of) if as_of else None}  # fmt: skip
    r = httpx.post(f"http://{s.api_host}:{s.api_port}/v1/exports", json=body,
                   headers={"X-API-Key": key} if key else {}, timeout=60)  # fmt: skip
    r.raise_for_status()
    console.print(f"{rows:,} rows to {out} (export {r.json()['export_id']})")
