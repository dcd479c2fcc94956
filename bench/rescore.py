"""`churnstream bench rescore`: how fast one worker rescores users due by time, and what that costs the events.

One run, two phases on the same topics (one backlog of generated events, :mod:`bench.rescore_seed`), each with
one real worker with all models on (champions and the online models), its own consumer group, its own Redis
database (flushed before and after: the bench owns ``ALONE_DB`` and ``DUE_DB``) and its own chDB path:

1. ``alone``: no user is due; the partitions' clocks are set, the worker applies the backlog.
2. ``due``: ``users`` users are due by time in the partitions' due indexes; the worker applies the same backlog
   while it rescores them, then rescores the rest.

Once a second the bench reads the worker's Prometheus counters ``churnstream_events_total`` (every outcome) and
``churnstream_rescored_users_total``, and counts the seeded users still due in Redis (:func:`due_left`). Rates
are taken between two samples, as the difference of a counter over the time between them (:func:`rate`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict
from typing import Any

import redis
from rich.console import Console

from bench import features_throughput as ft
from bench.e2e import _link
from bench.records import Run
from bench.report import update_section
from bench.rescore_rates import Sample, rate, seconds, windows
from bench.rescore_seed import backlog, due_left, frame, seed, templates
from churnstream.demo import ensure_models
from churnstream.settings import Settings
from core.keys import WATERMARKS
from core.tasks import TASKS
from infra import clickhouse_db, stack
from infra.processes import free_port
from models.registry import Registry
from simulation.generator import Record
from streams.produce import produce_records
from streams.scrape import Scrape

ALONE_DB, DUE_DB = 14, 15
KINDS = ("pretrained", "online")


def watch(port: int, r: redis.Redis, proc: Any, events: int, due_ms: int, partitions: int) -> list[Sample]:
    """Sample the worker once a second until it has processed ``events`` records and no seeded user is due."""
    samples: list[Sample] = []
    start = time.monotonic()
    last_change, last = start, (-1.0, -1.0)
    while True:
        try:
            scrape = Scrape.read(f"http://127.0.0.1:{port}/metrics", timeout=2)
            n, k = scrape.total("churnstream_events_total"), scrape.total("churnstream_rescored_users_total")
        except OSError:  # not up yet
            n = k = 0.0
        sample = Sample(round(time.monotonic() - start, 3), n, k, due_left(r, partitions, due_ms))
        samples.append(sample)
        if n >= events and sample.left == 0:
            return samples
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited (code {proc.returncode}); see its log in <home>/logs")
        if (n, k) != last:
            last, last_change = (n, k), time.monotonic()
        elif time.monotonic() - last_change > 180 and (n or k):
            raise TimeoutError(f"stalled at {n:,.0f} events, {k:,.0f} users rescored, {sample.left:,} due")
        time.sleep(1.0)


def phase(
    settings: Settings, name: str, topics: tuple[str, str, str], db: int, events: int, due_ms: int
) -> list[Sample]:
    """One worker with all models on, in its own group, Redis database and chDB path, watched until done."""
    port = free_port()
    url = f"{settings.redis_url.rsplit('/', 1)[0]}/{db}"
    env = ft.worker_env(settings, topics, f"{topics[0].split('.')[0]}-{name}", port) | {
        "CHURNSTREAM_REDIS_URL": url,
        "CHURNSTREAM_CLICKHOUSE_DSN": dsn(settings, topics, name),
    }
    proc = ft.spawn_worker(env, f"bench-rescore-{name}.log")
    try:
        return watch(port, redis.Redis.from_url(url), proc, events, due_ms, settings.partitions)
    finally:
        ft.stop([proc])


def dsn(settings: Settings, topics: tuple[str, str, str], name: str) -> str:
    return stack.clickhouse_beside(settings, f"{topics[0].split('.')[0]}-{name}")


def time_rows(dsn: str) -> tuple[int, int]:
    """(time rows, distinct users with one) in a phase's ``predictions``, counted raw after its worker stopped."""
    client = clickhouse_db.connect(dsn)
    try:
        row = client.query("SELECT count(), uniqExact(user_id) FROM predictions WHERE trigger = 'time'").first_row
    finally:
        client.close()
    return int(row[0]), int(row[1])


def run(
    settings: Settings,
    console: Console,
    argv: list[str],
    users: int,
    backlog_users: int = 1000,
    days: int = 28,
    template_users: int = 3000,
    seed_: int = 1,
) -> dict[str, Any]:
    run = Run.start("rescore", argv)
    lateness_ms = int(settings.label_lateness_s * 1000)
    due_ms, clock_ms = frame(days, lateness_ms)
    run.sizes = {
        "users": users,
        "backlog_users": backlog_users,
        "days": days,
        "template_users": template_users,
        "seed": seed_,
        "partitions": settings.partitions,
        "rescore_batch": settings.rescore_batch,
        "rescore_share": settings.rescore_share,
        "batch_size": settings.batch_size,
        "due_ms": due_ms,
        "clock_ms": clock_ms,
    }
    with console.status("stack up"):
        stack.up(settings)
    settings.dir("logs")
    ensure_models(settings, console, users=1000)
    registry = Registry(settings.registry_dir())
    run.details["champions"] = {t: str(getattr(registry.champion(t), "model", None)) for t in TASKS}
    run.details["online_model"] = settings.online_model
    prefix = f"rescore-{uuid.uuid4().hex[:6]}"
    topics = ft.make_topics(settings, prefix)
    with console.status(f"producing the backlog of {backlog_users:,} users to {prefix}.*"):
        records = backlog(backlog_users, days, seed_, f"{prefix}-u", clock_ms)
        mapping = dict(zip(("page_views", "cart_events", "purchases"), topics, strict=True))
        n = produce_records(settings, [Record(mapping[r.topic], r.key, r.value) for r in records])
    console.print(f"{n:,} records in {', '.join(topics)} ({settings.partitions} partitions each)")
    base = settings.redis_url.rsplit("/", 1)[0]
    dbs = {db: redis.Redis.from_url(f"{base}/{db}") for db in (ALONE_DB, DUE_DB)}
    try:
        for r in dbs.values():
            r.flushdb(asynchronous=True)
        dbs[ALONE_DB].zadd(WATERMARKS, {str(p): clock_ms for p in range(settings.partitions)})
        with console.status("phase alone: the backlog with no user due"):
            alone = phase(settings, "alone", topics, ALONE_DB, n, due_ms)
        with console.status(f"seeding {users:,} users due by time"):
            started = time.monotonic()
            blobs = templates(template_users, days, seed_)
            per = seed(dbs[DUE_DB], blobs, users, f"{prefix}-due", settings.partitions, due_ms, clock_ms)
        run.details["seed_seconds"] = round(time.monotonic() - started, 1)
        run.details["template_states"] = len(blobs)  # the template users with an event in the days generated
        console.print(f"{users:,} users due ({len(blobs):,} template states), per partition {per}")
        with console.status(f"phase due: the same backlog while {users:,} users are due"):
            due = phase(settings, "due", topics, DUE_DB, n, due_ms)
    except BaseException as exc:
        console.print(f"[red]bench rescore failed:[/] {exc!r} (record: {run.save(f'failed: {exc!r}')})")
        raise
    finally:  # FLUSHDB ASYNC: a synchronous flush of a million users outlasts the client's socket timeout
        for r in dbs.values():
            r.flushdb(asynchronous=True)
    rows, rows_users = time_rows(dsn(settings, topics, "due"))
    figures = summarize(run, alone, due, n, users)
    run.details |= {
        "records": n,
        "users_per_partition": per,
        "rescored_users_counted": due[-1].rescored,
        "time_rows": rows,
        "time_rows_users": rows_users,
        "time_rows_expected": users * len(TASKS) * len(KINDS),
        "samples": {"alone": [asdict(s) for s in alone], "due": [asdict(s) for s in due]},
    }
    report(run, settings, n, users, figures)
    console.print(figures)
    console.print(f"run record: {run.save()}")
    return figures


def summarize(run: Run, alone: list[Sample], due: list[Sample], events: int, users: int) -> dict[str, Any]:
    """The run's figures from the two phases' samples; the event rate with users due is taken only over the part
    of the event window in which users were being rescored."""
    a, d = windows(alone, events), windows(due, events)
    lo = max((s for s in (d["events_from"], d["rescore_from"]) if s), key=lambda s: s.t, default=None)
    hi = min((s for s in (d["events_to"], d["rescore_to"]) if s), key=lambda s: s.t, default=None)
    after = d["events_to"] if d["events_to"] and d["rescore_to"] and d["events_to"].t < d["rescore_to"].t else None

    def rounded(x: float | None) -> int | None:
        return None if x is None else round(x)

    run.figures.update(
        {
            "rescore_due_users": users,
            "rescore_users_per_s": rounded(rate(d["rescore_from"], d["rescore_to"], "rescored")),
            "rescore_users_per_s_with_events": rounded(rate(lo, hi, "rescored")),
            "rescore_users_per_s_after_events": rounded(rate(after, d["rescore_to"], "rescored")),
            "rescore_seconds": seconds(d["rescore_from"], d["rescore_to"]),
            "rescore_events_alone_per_s": rounded(rate(a["events_from"], a["events_to"], "events")),
            "rescore_event_throughput_per_s": rounded(rate(lo, hi, "events")),
            "rescore_events_share_while_rescoring": lo and hi and round((hi.events - lo.events) / events, 3),
        }
    )
    if run.figures["rescore_event_throughput_per_s"] and run.figures["rescore_events_alone_per_s"]:
        run.ratio("rescore_event_throughput_ratio", "rescore_event_throughput_per_s", "rescore_events_alone_per_s")
    run.details["windows"] = {
        "alone": {k: v and asdict(v) for k, v in a.items()},
        "due": {k: v and asdict(v) for k, v in d.items()},
        "events_while_rescoring": {"from": lo and asdict(lo), "to": hi and asdict(hi)},
    }
    run.details["seconds"] = {
        "events_alone": seconds(a["events_from"], a["events_to"]),
        "events_while_rescoring": seconds(lo, hi),
        "rescoring_after_events": seconds(after, d["rescore_to"]),
    }
    return dict(run.figures)


def _n(x: Any, unit: str = "") -> str:
    return "none measured" if x is None else f"{x:,}{unit}"


def report(run: Run, settings: Settings, events: int, users: int, f: dict[str, Any]) -> None:
    d, sec = run.details, run.details["seconds"]
    champions = ", ".join(f"{t}: {m}" for t, m in d["champions"].items())
    md = [
        "## Rescoring users due by time (one worker, all models on)",
        "",
        f"Command: `{run.command}`: {users:,} users due by time, seeded in Redis with realistic states "
        f"(the states of those of {run.sizes['template_users']:,} generated users with events in "
        f"{run.sizes['days']} days{template_states(d)}, folded by "
        "`features.state.apply`, copied under new ids), each in the due index of its key's partition with one day "
        "end due: the watermark has passed it, within the window where the worker interleaves rescoring with "
        f"events. The backlog: {events:,} generated records of {run.sizes['backlog_users']:,} new users, with "
        "event times squeezed into the 20 hours after the partitions' clocks (not late, and the watermark passes "
        "no further day end). One worker applies the backlog twice, each time in its own consumer group, Redis "
        "database and chDB: once with no user due, then while the seeded users are due; champions "
        f"({champions}) and the online models ({d['online_model']}) score both tasks "
        f"(`CHURNSTREAM_RESCORE_BATCH={run.sizes['rescore_batch']}`, `CHURNSTREAM_BATCH_SIZE="
        f"{run.sizes['batch_size']}`). Rates come from the worker's counters `churnstream_rescored_users_total` "
        "and `churnstream_events_total`, read once a second, between the first sample with a user rescored (or an "
        "event processed) and the first with no seeded user left due in Redis (or every record processed). "
        f"Load average at the start: {run.machine['load_average_at_start'][0]} on {run.machine['cores']} cores. "
        f"Run record: {_link(run)}.",
        "",
        "| phase | events/s | users rescored/s | seconds |",
        "|---|---:|---:|---:|",
        f"| backlog, no user due | {_n(f['rescore_events_alone_per_s'])} | - | {_n(sec['events_alone'])} |",
        f"| backlog while users are due | {_n(f['rescore_event_throughput_per_s'])} "
        f"| {_n(f['rescore_users_per_s_with_events'])} | {_n(sec['events_while_rescoring'])} |",
        f"| rescoring after the backlog | - | {_n(f['rescore_users_per_s_after_events'])} "
        f"| {_n(sec['rescoring_after_events'])} |",
        f"| all {users:,} due users | | **{_n(f['rescore_users_per_s'])}** | {_n(f['rescore_seconds'])} |",
        "",
        f"While users are being rescored the worker applies events at "
        f"**{f.get('rescore_event_throughput_ratio', 'n/a')}x** the rate it applies the same backlog with no user "
        f"due ({_n(f['rescore_events_share_while_rescoring'])} of the backlog was applied inside the rescoring "
        f"window). Checks: the counter rescored {d['rescored_users_counted']:,.0f} users for {users:,} seeded; "
        f"ClickHouse holds {d['time_rows']:,} time rows for {d['time_rows_users']:,} users (expected "
        f"{d['time_rows_expected']:,}: one per user, task and model kind), counted raw after the worker stopped.",
    ]
    update_section("rescore", "\n".join(md))


def template_states(details: dict[str, Any]) -> str:
    """How many template states a run used, when its record says so (records before it was kept do not).

    >>> template_states({"template_states": 2650}), template_states({})
    (': 2,650', '')
    """
    n = details.get("template_states")
    return f": {n:,}" if n is not None else ""
