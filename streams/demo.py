"""`churnstream demo`: the stack, the worker and a stream of generated events, with what arrived."""

from __future__ import annotations

import os
import sys
import time
import uuid

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from churnstream.settings import Settings
from infra import clickhouse_db, kafka_broker, redis_server, stack
from infra.processes import ManagedProcess
from streams.produce import produce_events
from streams.smoke import TOTAL_KEY, generate_page_views


def worker_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("worker", settings.dir("run") / "worker.pid")


def start_worker(settings: Settings) -> ManagedProcess:
    proc = worker_process(settings)
    if not proc.running():
        proc.spawn(
            [sys.executable, "-m", "churnstream.cli", "worker"],
            settings.dir("logs") / "worker.log",
            env={**os.environ, "CHURNSTREAM_HOME": str(settings.home)},
        )
    return proc


def run_demo(settings: Settings, console: Console, events: int, users: int) -> None:
    was_up = kafka_broker.process(settings).running() and redis_server.process(settings).running()
    with console.status("bringing the stack up (first run downloads Kafka from Maven Central)") as status:
        stack.up(settings, on_step=lambda msg: status.update(msg))
    worker = start_worker(settings)
    r = redis.Redis.from_url(settings.redis_url)
    before = int(r.get(TOTAL_KEY) or 0)
    run_id = uuid.uuid4().hex[:8]
    try:
        console.print(f"[bold]producing {events:,} page views for {users:,} users[/] to {settings.topic_page_views}")
        produce_events(settings, settings.topic_page_views, generate_page_views(events, users, run_id=run_id))
        with Progress(
            TextColumn("worker"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("consumed", total=events)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = int(r.get(TOTAL_KEY) or 0) - before
                progress.update(task, completed=done)
                if done >= events:
                    break
                if not worker.running():
                    raise SystemExit(f"the worker exited; see {settings.home / 'logs' / 'worker.log'}")
                time.sleep(0.2)
    finally:
        worker.stop()
    client = clickhouse_db.connect(settings.clickhouse_dsn)
    try:
        rows = client.query(
            "SELECT partition, count(), uniqExact(user_id) FROM smoke_page_views FINAL "
            "WHERE startsWith(event_id, {run:String}) GROUP BY partition ORDER BY partition",
            parameters={"run": run_id},
        ).result_rows
    finally:
        client.close()
    table = Table(title=f"what arrived (run {run_id})")
    for col in ("partition", "ClickHouse rows", "users"):
        table.add_column(col, justify="right")
    for partition, count, distinct in rows:
        table.add_row(str(partition), f"{count:,}", f"{distinct:,}")
    console.print(table)
    console.print(
        f"Redis per-user counters incremented {int(r.get(TOTAL_KEY) or 0) - before:,} times; "
        f"ClickHouse holds {sum(c for _, c, _ in rows):,} rows for this run."
    )
    if not was_up:
        stack.down(settings)
        console.print("stack stopped (it was started by this demo)")
    else:
        console.print("the stack was already up and keeps running: `make stack-down` stops it")
