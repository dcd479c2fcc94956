"""`churnstream bench features`: the feature path against the framework's floor, and Redis bytes per user."""

from __future__ import annotations

import sys
import uuid

from rich.console import Console
from rich.table import Table

from bench import features_throughput as ft
from bench import redis_memory
from bench.records import Run
from bench.report import update_section
from churnstream.settings import Settings
from infra import stack
from infra.processes import free_port


def run(settings: Settings, console: Console, users: int, days: int, seed: int = 1) -> dict[str, float]:
    record = Run.start("features", sys.argv)
    record.sizes = {"users": users, "days": days, "seed": seed, "partitions": settings.partitions}
    with console.status("stack up"):
        stack.up(settings)
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    topics = ft.make_topics(settings, prefix)
    with console.status(f"producing {users:,} users x {days} days of events to {prefix}.*"):
        n = ft.produce(settings, topics, users, days, seed)
    console.print(f"{n:,} records in {', '.join(topics)} ({settings.partitions} partitions each)")
    results = []
    for name, fn in (
        ("bare", lambda: ft.bare(settings, topics, n)),
        ("faust no-op", lambda: ft.faust_noop(settings, topics, n)),
        ("features", lambda: ft.features(settings, topics, prefix, n, free_port())),
    ):
        with console.status(f"measuring {name}"):
            results.append(fn())
        console.print(f"{results[-1].name}: {results[-1].events_per_s:,.0f} events/s")
    bare, noop, feats = results
    with console.status("measuring Redis bytes per user"):
        memory = redis_memory.measure(settings.redis_url)
    # named apart from the e2e run's figures: each bench's no-op and bare figures belong to its own run
    record.figures = {
        "features_records": n,
        "features_events_per_s": round(feats.events_per_s),
        "features_faust_noop_events_per_s": round(noop.events_per_s),
        "features_bare_consumer_events_per_s": round(bare.events_per_s),
        "redis_bytes_per_user": memory["redis_bytes_per_user"],
    }
    record.ratio("features_ratio", "features_events_per_s", "features_faust_noop_events_per_s")
    record.details["redis_memory"] = memory
    figures = dict(record.figures)
    command = record.command
    table = Table()
    rows = [
        (r.name, f"{r.events_per_s:,.0f}", f"{r.events_per_s / noop.events_per_s:.2f}x", f"{r.events:,}")
        for r in results
    ]
    md = [
        "## Feature path throughput (one worker)",
        "",
        f"Command: `{command}`: {n:,} generated records over {settings.partitions} partitions of each input "
        "topic. All three consumers read the same topics in the same run. The feature path covers validation, "
        "arrival-order alignment, state folding, the Redis write, ClickHouse `events` rows and DLQ (no champion "
        "and online models off: scoring belongs to the end-to-end benchmark), and is "
        f"measured between its first and last processed record. Run record: [`{record.run_id}`]"
        f"(benchmark-runs/{record.run_id}.json) (commit `{record.commit[:7]}`, {record.started_utc}).",
        "",
        "| consumer | events/s | vs Faust no-op | events |",
        "|---|---:|---:|---:|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        f"**features_ratio = {figures['features_ratio']}** (target >= 0.6).",
        "",
        "## Redis bytes per user",
        "",
        f"Command: `{command}` (same run). `MEMORY USAGE` of 1,000 users, each active on all of the last 61 "
        f"days (2-8 page views a day, cart adds and removes, a purchase every third day): median "
        f"**{memory['redis_bytes_per_user']:.0f} bytes**, max {memory['redis_bytes_per_user_max']:.0f} "
        f"(msgpack value {memory['state_value_bytes']:.0f} bytes). Target <= 1 KB.",
    ]
    record.save()
    update_section("features", "\n".join(md))
    for col in ("consumer", "events/s", "vs Faust no-op", "events"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"Redis bytes per user: {memory['redis_bytes_per_user']:.0f} (docs/benchmarks.md updated)")
    return figures
