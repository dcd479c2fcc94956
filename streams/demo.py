"""`churnstream demo`: the stack, the worker and a stream of generated events, with what arrived."""

from __future__ import annotations

import os
import sys
import time
import urllib.request

import redis
from rich.console import Console
from rich.table import Table

from churnstream.settings import Settings
from features.compute import features
from features.state import decode_state, state_key
from infra import clickhouse_db, kafka_broker, redis_server, stack
from infra.processes import ManagedProcess
from streams import generator
from streams.lag import group_lag
from streams.produce import produce_records


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


def dlq_counts(settings: Settings) -> dict[str, float]:
    """DLQ counts by reason from the worker's Prometheus endpoint."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("churnstream_dlq_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def run_demo(settings: Settings, console: Console, users: int, days: int) -> None:
    was_up = kafka_broker.process(settings).running() and redis_server.process(settings).running()
    with console.status("bringing the stack up (the first run downloads Kafka from Maven Central)") as status:
        stack.up(settings, on_step=lambda msg: status.update(msg))
    worker = start_worker(settings)
    seed = int(time.time())
    try:
        with console.status(f"simulating {users:,} users over {days} days"):
            start_ms = (int(time.time() * 1000) // 86_400_000 - days) * 86_400_000
            us = generator.make_users(users, days, seed, start_ms=start_ms, prefix=f"demo{seed % 100000}")
            events = generator.simulate(us, days, seed, start_ms=start_ms)
            records = generator.arrivals(events, seed, out_of_order=0.02, duplicates=0.005, malformed=0.002)
        console.print(
            f"[bold]producing {len(records):,} records[/] ({len(events):,} events, with 2% out of order, "
            "0.5% duplicates, 0.2% malformed)"
        )
        started = time.monotonic()
        produce_records(settings, records, progress=console)
        with console.status("worker consuming") as status:
            while (lag := group_lag(settings)) > 0:
                if not worker.running():
                    raise SystemExit(f"the worker exited; see {settings.home / 'logs' / 'worker.log'}")
                elapsed = time.monotonic() - started
                status.update(f"worker consuming: lag {lag:,} records, {elapsed:.0f}s")
                time.sleep(0.5)
        console.print(f"consumed in {time.monotonic() - started:.1f}s")
        _show_users(settings, console, [u.user_id for u in us])
        dlq = dlq_counts(settings)
    finally:
        worker.stop()
    table = Table(title="dead-letter topic events.dlq, by reason")
    table.add_column("reason")
    table.add_column("records", justify="right")
    for reason, n in sorted(dlq.items()):
        table.add_row(reason, f"{n:,.0f}")
    console.print(table)
    client = clickhouse_db.connect(settings.clickhouse_dsn)
    try:
        rows = client.query(
            "SELECT event_type, count() FROM events FINAL WHERE startsWith(user_id, {p:String}) "
            "GROUP BY event_type ORDER BY event_type",
            parameters={"p": us[0].user_id.split("-")[0] + "-"},
        ).result_rows
        scored = client.query(
            "SELECT task, model_kind, any(model), count() FROM predictions FINAL WHERE startsWith(user_id, {p:String}) "
            "GROUP BY task, model_kind ORDER BY task, model_kind",
            parameters={"p": us[0].user_id.split("-")[0] + "-"},
        ).result_rows
    finally:
        client.close()
    console.print("ClickHouse `events` rows for this run: " + ", ".join(f"{k} {v:,}" for k, v in rows))
    console.print(
        "ClickHouse `predictions` for this run: "
        + (", ".join(f"{t}/{k} ({m}) {n:,}" for t, k, m, n in scored) or "none")
    )
    if not was_up:
        stack.down(settings)
        console.print("stack stopped (it was started by this demo)")
    else:
        console.print("the stack was already up and keeps running: `make stack-down` stops it")


def _show_users(settings: Settings, console: Console, user_ids: list[str]) -> None:
    r = redis.Redis.from_url(settings.redis_url)
    blobs: list[bytes | None] = r.mget([state_key(u) for u in user_ids])  # type: ignore[assignment]
    states = [(u, decode_state(b)) for u, b in zip(user_ids, blobs, strict=True) if b]
    states.sort(key=lambda s: -s[1].events)
    cols = (
        "page_views_7d",
        "product_views_30d",
        "cart_adds_30d",
        "purchases_60d",
        "revenue_60d",
        "days_since_last_event",
        "tenure_days",
        "trend_30d",
    )
    title = f"features of the 8 busiest of {len(states):,} users (from Redis, as of each user's last event)"
    table = Table(title=title)
    table.add_column("user")
    for c in cols:
        table.add_column(c, justify="right")
    for u, s in states[:8]:
        f = features(s, s.last_ms)
        table.add_row(u, *(f"{f[c]:.2f}" for c in cols))
    console.print(table)
