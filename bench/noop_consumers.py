"""The ``noop`` stage of ``churnstream bench e2e``: three do-nothing consumers on the same topics, in one run.

- ``bare_consumer_events_per_s``: aiokafka ``getmany`` with no framework (``bench/features_throughput.py`` ``bare``);
- ``faust_stock_noop_events_per_s``: the stock faust agent, ``noack_take`` + ``stream.ack`` per event, faust's
  defaults (``bench/faust_noop.py`` mode ``stock``);
- ``faust_batch_noop_events_per_s``: the batch delivery (``streams/delivery.py``) on the ``churnstream-kafka://``
  consumer (``streams/transport.py``), acked per message (``bench/faust_noop.py`` mode ``batch``).

Each consumer reads every record from the start in its own consumer group; the ratio
``faust_batch_vs_stock_noop_ratio`` is taken between two figures of the same run (target >= 3).
"""

from __future__ import annotations

import uuid
from typing import Any

from rich.console import Console

from bench import features_throughput as ft
from bench.records import Run
from bench.report import update_section
from churnstream.settings import Settings

CONSUMERS = (
    ("bare", "bare_consumer_events_per_s", "bare aiokafka consumer (`getmany`, JSON decode)"),
    ("stock", "faust_stock_noop_events_per_s", "stock faust agent (`noack_take` + ack), faust's defaults"),
    ("batch", "faust_batch_noop_events_per_s", "batch delivery agent (`BatchTopic` + `churnstream-kafka://`)"),
)


def measure(settings: Settings, console: Console, run: Run, topics: tuple[str, ...], n: int) -> dict[str, Any]:
    """Run the three consumers over ``topics`` (``n`` records), store their figures and the ratios in ``run``."""
    figures: dict[str, Any] = {}
    for kind, key, name in CONSUMERS:
        with console.status(f"{name} over {n:,} records"):
            result = ft.bare(settings, topics, n) if kind == "bare" else ft.faust_noop(settings, topics, n, kind)
        figures[key] = round(result.events_per_s)
        run.details.setdefault("noop", {})[key] = {"events": result.events, "seconds": round(result.seconds, 3)}
        console.print(f"{name}: {result.events_per_s:,.0f} events/s")
    run.figures.update(figures)
    figures["faust_batch_vs_stock_noop_ratio"] = run.ratio(
        "faust_batch_vs_stock_noop_ratio", "faust_batch_noop_events_per_s", "faust_stock_noop_events_per_s", 2
    )
    figures["faust_batch_vs_bare_ratio"] = run.ratio(
        "faust_batch_vs_bare_ratio", "faust_batch_noop_events_per_s", "bare_consumer_events_per_s", 3
    )
    return figures


def stage(settings: Settings, console: Console, run: Run, users: int, days: int, seed: int) -> dict[str, Any]:
    """Fresh topics with ``users`` x ``days`` generated records, the three consumers, and the docs section."""
    prefix = f"noop-{uuid.uuid4().hex[:6]}"
    topics = ft.make_topics(settings, prefix)
    with console.status(f"producing {users:,} users x {days} days of events to {prefix}.*"):
        n = ft.produce(settings, topics, users, days, seed)
    run.figures["noop_records"] = n
    figures = measure(settings, console, run, topics, n)
    stock = figures["faust_stock_noop_events_per_s"]
    rows = [f"| {name} | {figures[key]:,} | {figures[key] / stock:.2f}x |" for _, key, name in CONSUMERS]
    dirty = ", with uncommitted changes" if run.dirty else ""
    md = [
        "## Do-nothing consumers: stock faust, batch delivery, bare aiokafka",
        "",
        f"Command: `{run.command}` (stage noop): {n:,} generated records over {settings.partitions} partitions "
        f"of each of 3 input topics, read from the start by each consumer in turn in its own group, same run. "
        f"Run record: [`{run.run_id}`](benchmark-runs/{run.run_id}.json) (commit `{run.commit[:7]}`{dirty}, "
        f"{run.started_utc}).",
        "",
        "| consumer | events/s | vs stock faust |",
        "|---|---:|---:|",
        *rows,
        "",
        f"**Batch delivery = {figures['faust_batch_vs_stock_noop_ratio']}x the stock agent** (target >= 3x); "
        f"{figures['faust_batch_vs_bare_ratio']} of the bare consumer.",
    ]
    update_section("noop", "\n".join(md))
    return figures
