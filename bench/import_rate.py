"""`churnstream bench import`: rows per second of ``churnstream import`` on a CRM-style CSV of about 1M events.

The generated history is written as a CRM export (renamed columns, local ISO times with an offset, no event ids)
and imported twice through the real command, as a user runs it, into topics and a Redis database of the run's own
on the local stack: the first import validates and sends every row; the second finds every id in the import
ledger and sends nothing. Both are timed end to end (process start to exit).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console

from bench.records import Run
from bench.report import update_section
from churnstream.settings import Settings
from infra import kafka_broker
from simulation import generator

COLUMNS = {"user_id": "client_id", "ts": "created_at", "type": "kind", "order_id": "order_no"}
FIELDS = ("event_id", "session_id", "page_type", "product_id", "category", "action", "quantity", "price", "amount",
          "currency", "items")  # fmt: skip


def write_crm_csv(events: list[dict], path: Path) -> None:
    import datetime as dt

    zone = dt.timezone(dt.timedelta(hours=1))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS.values(), *(c for c in FIELDS if c != "event_id")])
        for e in events:
            ts = dt.datetime.fromtimestamp(e["ts"] / 1000, zone).isoformat(timespec="milliseconds")
            items = orjson.dumps(e["items"]).decode() if "items" in e else ""
            rest = ["" if e.get(c) is None else str(e.get(c, "")) for c in FIELDS if c not in ("event_id", "items")]
            w.writerow([e["user_id"], ts, e["type"], e.get("order_id", ""), *rest, items])


def run(settings: Settings, console: Console, users: int, days: int, seed: int = 0) -> dict[str, float]:
    record = Run.start("import", sys.argv)
    record.sizes = {"users": users, "days": days, "seed": seed}
    with console.status(f"simulating {users:,} users over {days} days"):
        events = generator.simulate(generator.make_users(users, days, seed, prefix="bimp-"), days, seed)
    name = f"bench-import-{time.time_ns() % 10**8}"
    overrides = {
        "topic_page_views": f"{name}.page_views", "topic_cart": f"{name}.cart_events",
        "topic_purchases": f"{name}.purchases", "topic_dlq": f"{name}.dlq", "topic_alerts": f"{name}.alerts",
        "redis_url": f"redis://127.0.0.1:{settings.redis_port}/14",
    }  # fmt: skip
    kafka_broker.ensure_topics(settings.model_copy(update=overrides))
    env = os.environ | {f"CHURNSTREAM_{k.upper()}": v for k, v in overrides.items()}
    mapping = ",".join(f"{k}={v}" for k, v in COLUMNS.items())
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crm.csv"
        with console.status(f"writing {len(events):,} rows"):
            write_crm_csv(events, path)
        timings["file_mb"] = path.stat().st_size / 1e6
        for attempt in ("first", "again"):
            t = time.perf_counter()
            with console.status(f"churnstream import ({attempt})"):
                out = subprocess.run([sys.executable, "-m", "churnstream.cli", "import", str(path), "--map", mapping],
                                     env=env, check=True, capture_output=True, text=True).stdout  # fmt: skip
            timings[f"{attempt}_s"] = time.perf_counter() - t
            record.details[f"{attempt}_output"] = out.strip().splitlines()[-3:]
    admin = kafka_broker.admin(settings)
    admin.delete_topics([overrides[k] for k in overrides if k.startswith("topic_")])
    n = len(events)
    rate = n / timings["first_s"]
    record.figures = {"import_rows": n, "import_seconds": round(timings["first_s"], 1),
                      "import_rows_per_s": round(rate), "reimport_seconds": round(timings["again_s"], 1)}  # fmt: skip
    record.details["timings"] = timings
    record.save()
    update_section(
        "import",
        "\n".join([
            "## Importing history",
            "",
            f"Command: `{record.command}`. A CRM-style CSV of **{n:,} rows** ({timings['file_mb']:.0f} MB: {users:,} "
            f"generated users over {days} days, renamed columns, local times with an offset, no event ids) imported "
            "with `churnstream import` into the local Kafka, end to end (process start to exit: read, map, "
            "validate, stable ids, the import ledger, produce with the idempotent producer, acknowledgements): "
            f"**{timings['first_s']:.0f} s, {rate:,.0f} rows/s**. Importing the same file again (every id in the "
            f"ledger, nothing sent): {timings['again_s']:.0f} s. "
            f"Run record: [`{record.run_id}`](benchmark-runs/{record.run_id}.json).",
        ]),
    )  # fmt: skip
    console.print(f"{n:,} rows imported in {timings['first_s']:.0f} s ({rate:,.0f} rows/s); again in "
                  f"{timings['again_s']:.0f} s")  # fmt: skip
    return timings
