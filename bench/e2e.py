"""`churnstream bench e2e`: the whole worker (features, Redis, both tasks, pretrained and online models,
ClickHouse rows) against the framework's floor, on the same topics in the same run; then the naive baseline
(micro-batches of one event), two workers in one group, event-to-score latency at fixed offered loads, and the
worker's memory with many users' state in Redis.

One invocation is one run: every figure of every stage goes into one run record (``bench/records.py``), and each
ratio is taken between two figures of that run. Latency percentiles come from the worker's per-event HDR
histograms (``CHURNSTREAM_LATENCY_LOG``, ``streams/latency.py``), not from Prometheus bucket bounds."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from typing import Any

import orjson
import redis
from rich.console import Console

from bench import features_throughput as ft
from bench import noop_consumers
from bench.latency import read_log, summary
from bench.records import Run
from bench.report import update_section
from churnstream.demo import ensure_models
from churnstream.settings import Settings
from core.keys import pending_key, score_key, state_key
from features.offline import accept
from features.state import UserState, apply, encode_state
from infra import stack
from infra.processes import free_port
from simulation import generator
from streams.produce import producer
from streams.scrape import Scrape

LOADS = (1000, 5000, 10000)
STAGES = ("noop", "throughput", "two", "latency")


def clear_users(settings: Settings, user_prefix: str) -> int:
    """Forget the state, scores and snapshots of the bench's users, so the next worker starts from nothing."""
    r = redis.Redis.from_url(settings.redis_url)
    n = 0
    for user_key in (state_key, score_key, pending_key):
        batch = []
        for key in r.scan_iter(match=user_key(f"{user_prefix}*"), count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                n += r.delete(*batch)
                batch = []
        if batch:
            n += r.delete(*batch)
    return n


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _ms(value: float | None) -> str:
    return "none recorded" if value is None else f"{value:,g}"


def seed_users(settings: Settings, n: int) -> None:
    """``n`` users' state in Redis (a realistic 60-day state under n keys), so memory is measured at that scale."""
    events = generator.simulate(generator.make_users(1, 61, 5, prefix="seed"), 61, 5)
    state = UserState()
    for ev in next(iter(accept((e["type"], orjson.dumps(e)) for e in events).values()), []):
        apply(state, ev)
    blob = encode_state(state)
    r = redis.Redis.from_url(settings.redis_url)
    for start in range(0, n, 10_000):
        with r.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + 10_000)):
                pipe.set(state_key(f"million-{i}"), blob)
            pipe.execute()


def offered_load(settings: Settings, console: Console, rate: int, seconds: int) -> dict[str, Any]:
    """Produce at ``rate`` events/s for ``seconds`` while one worker runs; latency from its per-event HDR log."""
    prefix = f"lat{rate}-{uuid.uuid4().hex[:5]}"
    topics = ft.make_topics(settings, prefix)
    port = free_port()
    latency_log = settings.dir("run") / f"latency-{prefix}.jsonl"
    env = ft.worker_env(settings, topics, f"{prefix}-w", port) | {"CHURNSTREAM_LATENCY_LOG": str(latency_log)}
    proc = ft.spawn_worker(env, f"bench-{prefix}.log")
    try:
        events = generator.simulate(generator.make_users(4000, 60, 9, prefix=prefix), 60, 9)
        records = generator.arrivals(events, 9)
        mapping = dict(zip(("page_views", "cart_events", "purchases"), topics, strict=True))
        p = producer(settings)
        # warm up: the first records wait for the group to form and the models to load; measure after them
        warm = 200
        for rec in records[:warm]:
            p.produce(mapping[rec.topic], value=rec.value, key=rec.key)
        p.flush(30)
        ft.measure([port], warm, [proc], "warm-up")
        time.sleep(2)  # the warm-up's latencies are in log intervals that end before ``since``
        since = time.time()
        records = records[warm:]
        n, started = 0, time.monotonic()
        with console.status(f"offering {rate:,} events/s for {seconds}s"):
            while time.monotonic() - started < seconds and n < len(records):
                due = min(len(records), int((time.monotonic() - started) * rate))
                while n < due:
                    rec = records[n]
                    try:
                        p.produce(mapping[rec.topic], value=rec.value, key=rec.key)
                    except BufferError:
                        p.poll(0.05)
                        continue
                    n += 1
                p.poll(0)
                time.sleep(0.001)
            p.flush(30)
            achieved = n / (time.monotonic() - started)
            drained = ft.measure([port], warm + n, [proc], "drain")
        time.sleep(2.5)  # the worker writes its latency log once a second
        histograms = read_log(latency_log, since)
        row: dict[str, Any] = {
            "offered": rate,
            "achieved_produce": round(achieved),
            "events": n,
            "drain_seconds_after_produce": round(drained.seconds, 1),
            "latency_log": str(latency_log),
        }
        for metric, short in (("event_to_score", "score"), ("event_to_clickhouse", "clickhouse")):
            lat = summary(histograms[metric]) if metric in histograms else {}
            # every measured event is recorded once: a count that differs says the window or the hook is wrong
            row[f"{short}_recorded"] = lat.get("count", 0)
            for q in ("p50", "p95", "p99", "max"):
                row[f"{short}_{q}_ms"] = lat.get(f"{q}_ms")
        return row
    finally:
        ft.stop([proc])


def two_workers(settings: Settings, console: Console, run: Run, users: int, days: int, seed: int) -> dict[str, Any]:
    """One worker, then two workers in one group, over the same 4 partitions of the same topics, same run."""
    prefix = f"two-{uuid.uuid4().hex[:6]}"
    topics = ft.make_topics(settings, prefix)
    with console.status(f"producing {users:,} users x {days} days of events to {prefix}.*"):
        n = ft.produce(settings, topics, users, days, seed)
    dsns = [stack.clickhouse_beside(settings, f"{prefix}-{i}") for i in range(2)]
    results = {}
    for workers in (1, 2):
        ports = [free_port() for _ in range(workers)]
        clear_users(settings, f"{prefix}-u")
        procs = [
            ft.spawn_worker(
                ft.worker_env(settings, topics, f"{prefix}-g{workers}", port) | {"CHURNSTREAM_CLICKHOUSE_DSN": dsns[i]},
                f"bench-two-{workers}-{i}.log",
            )
            for i, port in enumerate(ports)
        ]
        try:
            with console.status(f"{workers} worker(s), one group, {settings.partitions} partitions"):
                results[workers] = ft.measure(ports, n, procs, f"{workers} worker(s)")
        finally:
            ft.stop(procs)
        console.print(f"{workers} worker(s): {results[workers].events_per_s:,.0f} events/s")
    figures = {
        "one_worker_events_per_s": round(results[1].events_per_s),
        "two_workers_events_per_s": round(results[2].events_per_s),
    }
    run.figures.update(figures)
    figures["two_workers_scaling"] = run.ratio(
        "two_workers_scaling", "two_workers_events_per_s", "one_worker_events_per_s", 2
    )
    run.details["two"] = {"records": n, "users": users, "days": days}
    clickhouse = (
        "each worker on its own embedded chDB path, as chDB allows one process per data path"
        if settings.embedded_clickhouse
        else "both on the same ClickHouse server"
    )
    md = [
        "## Two workers in one consumer group",
        "",
        f"Command: `{run.command}` (stage two, {users:,} users): {n:,} generated records over "
        f"{settings.partitions} partitions of each input topic; first one worker, then two workers in one group "
        f"({clickhouse}), same topics, same run, all models on. Run record: {_link(run)}.",
        "",
        "| workers | events/s | vs one worker |",
        "|---:|---:|---:|",
        f"| 1 | {results[1].events_per_s:,.0f} | 1.00x |",
        f"| 2 | {results[2].events_per_s:,.0f} | {figures['two_workers_scaling']:.2f}x |",
        "",
        "This machine has 2 cores, shared by the broker, Redis, ClickHouse and the workers, so a second worker "
        "mostly competes for the same CPU; on separate machines throughput grows with workers up to the "
        "partition count (see [scaling.md](scaling.md)).",
    ]
    update_section("two", "\n".join(md))
    return figures


def latency(settings: Settings, console: Console, run: Run, load_seconds: int) -> dict[str, Any]:
    rows = [offered_load(settings, console, rate, load_seconds) for rate in LOADS]
    for row in rows:
        console.print(row)
    figures: dict[str, Any] = {}
    for r in rows:
        at = f"{r['offered'] // 1000}k"
        figures |= {
            f"latency_events_at_{at}": r["events"],
            f"p50_event_to_score_ms_at_{at}": r["score_p50_ms"],
            f"p99_event_to_score_ms_at_{at}": r["score_p99_ms"],
            f"p99_event_to_clickhouse_ms_at_{at}": r["clickhouse_p99_ms"],
        }
    run.figures.update(figures)
    run.details["latency"] = rows
    lat_rows = [
        f"| {r['offered']:,}/s | {r['achieved_produce']:,}/s | {r['events']:,} | {r['drain_seconds_after_produce']} s "
        f"| {_ms(r['score_p50_ms'])} / {_ms(r['score_p95_ms'])} / **{_ms(r['score_p99_ms'])}** / "
        f"{_ms(r['score_max_ms'])} ms ({r['score_recorded']:,}) "
        f"| {_ms(r['clickhouse_p50_ms'])} / {_ms(r['clickhouse_p95_ms'])} / **{_ms(r['clickhouse_p99_ms'])}** / "
        f"{_ms(r['clickhouse_max_ms'])} ms ({r['clickhouse_recorded']:,}) |"
        for r in rows
    ]
    md = [
        "## Event-to-score latency at fixed offered loads",
        "",
        f"Command: `{run.command}` (latency stage): one worker with all "
        f"models on, fresh topics per load, {load_seconds} s of generated events produced at the offered rate "
        "after a warm-up of 200 events. Latency runs from each record's broker timestamp to its score being in "
        "Redis, and to its prediction rows being inserted in ClickHouse. The worker records every event's latency "
        "in an HDR histogram (`CHURNSTREAM_LATENCY_LOG`, 3 significant digits) and the percentiles come from "
        "those recorded values; in brackets, how many events were recorded (it should equal the events column). "
        "When the offered load exceeds what one worker sustains, the backlog grows and so does the latency: the "
        f"drain column says how long the worker needed after the producer stopped. Run record: {_link(run)}.",
        "",
        "| offered | produced | events | drain after | to Redis p50 / p95 / p99 / max (recorded) "
        "| to ClickHouse p50 / p95 / p99 / max (recorded) |",
        "|---:|---:|---:|---:|---:|---:|",
        *lat_rows,
        "",
        "Targets: p99 <= 50 ms to Redis and <= 1 s to ClickHouse at 5,000 events/s.",
    ]
    update_section("latency", "\n".join(md))
    return figures


def run(
    settings: Settings,
    console: Console,
    users: int,
    days: int,
    seed: int = 1,
    redis_users: int = 1_000_000,
    load_seconds: int = 30,
    stages: tuple[str, ...] = STAGES,
    naive_records: int = 30_000,
) -> dict[str, Any]:
    """The stages in order: ``noop`` (``bench/noop_consumers.py``),
    ``throughput`` (with the naive baseline and memory), ``two`` and ``latency``."""
    run = Run.start("e2e", sys.argv)
    run.sizes = {
        "users": users,
        "days": days,
        "seed": seed,
        "redis_users": redis_users,
        "load_seconds": load_seconds,
        "naive_records": naive_records,
        "stages": list(stages),
        "partitions": settings.partitions,
    }
    with console.status("stack up"):
        stack.up(settings)
    settings.dir("logs")
    if set(stages) - {"noop"}:  # the do-nothing consumers need no models
        ensure_models(settings, console, users=1000)
    figures: dict[str, Any] = {}
    stage = "start"
    try:
        if "noop" in stages:
            stage = "noop"
            figures |= noop_consumers.stage(settings, console, run, users, days, seed)
        if "throughput" in stages:
            stage = "throughput"
            figures |= throughput(settings, console, run, users, days, seed, redis_users, naive_records)
        if "two" in stages:
            stage = "two"
            figures |= two_workers(settings, console, run, max(1000, users // 5), days, seed)
        if "latency" in stages:
            stage = "latency"
            figures |= latency(settings, console, run, load_seconds)
    except BaseException as exc:  # the figures so far are kept in the record, and not published
        console.print(
            f"[red]bench e2e failed in stage {stage}:[/] {exc!r} (record: {run.save(f'failed: {stage}: {exc!r}')})"
        )
        raise
    console.print(f"run record: {run.save()}")
    return figures


def _link(run: Run) -> str:
    dirty = ", with uncommitted changes" if run.dirty else ""
    return f"[`{run.run_id}`](benchmark-runs/{run.run_id}.json) (commit `{run.commit[:7]}`{dirty}, {run.started_utc})"


ROW_ORDER = ("bare", "noop_default", "noop", "noop_tuned", "noop_stock", "noop_batch", "e2e", "naive")


def throughput(
    settings: Settings,
    console: Console,
    run: Run,
    users: int,
    days: int,
    seed: int,
    redis_users: int,
    naive_records: int,
) -> dict[str, Any]:
    prefix = f"e2e-{uuid.uuid4().hex[:6]}"
    topics = ft.make_topics(settings, prefix)
    with console.status(f"producing {users:,} users x {days} days of events to {prefix}.*"):
        n = ft.produce(settings, topics, users, days, seed)
    console.print(f"{n:,} records in {', '.join(topics)} ({settings.partitions} partitions each)")
    with console.status(f"seeding {redis_users:,} users' state in Redis"):
        seed_users(settings, redis_users)

    results: dict[str, ft.Result] = {}
    results["bare"] = ft.bare(settings, topics, n)
    console.print(f"bare consumer: {results['bare'].events_per_s:,.0f} events/s")
    results["noop_default"] = ft.faust_noop(settings, topics, n, "default")
    results["noop_default"].name = "do-nothing Faust agent, faust's defaults"
    results["noop"] = ft.faust_noop(settings, topics, n, "worker")
    results["noop"].name = "do-nothing Faust agent, the worker's settings (uvloop, lean monitor)"
    results["noop_tuned"] = ft.faust_noop(settings, topics, n, "tuned")
    results["noop_tuned"].name = "do-nothing Faust agent, tuned (the worker's + big fetches and buffers)"
    results["noop_stock"] = ft.faust_noop(settings, topics, n, "stock")
    results["noop_stock"].name = "stock faust agent (noack_take + ack per event), faust's defaults"
    results["noop_batch"] = ft.faust_noop(settings, topics, n, "batch")
    results["noop_batch"].name = "do-nothing agent on the worker's batch delivery (streams/delivery.py)"
    for key in ("noop_default", "noop", "noop_tuned", "noop_stock", "noop_batch"):
        console.print(f"{results[key].name}: {results[key].events_per_s:,.0f} events/s")

    port = free_port()
    clear_users(settings, f"{prefix}-u")
    proc = ft.spawn_worker(ft.worker_env(settings, topics, f"{prefix}-e2e", port), "bench-e2e.log")
    rss: list[float] = []
    sampler_stop = threading.Event()

    def sample() -> None:
        while not sampler_stop.wait(2):
            try:
                rss.append(rss_mb(proc.pid))
            except OSError:
                return

    threading.Thread(target=sample, daemon=True).start()
    try:
        with console.status("end to end, all models on"):
            results["e2e"] = ft.measure([port], n, [proc], "churnstream end to end (all models)")
            outcomes = Scrape.read(f"http://127.0.0.1:{port}/metrics").by_label("churnstream_events_total", "outcome")
    finally:
        sampler_stop.set()
        ft.stop([proc])
    console.print(f"end to end: {results['e2e'].events_per_s:,.0f} events/s, peak RSS {max(rss or [0]):,.0f} MB")
    console.print(f"outcomes: {outcomes}")

    naive_n = min(n, naive_records)
    port = free_port()
    clear_users(settings, f"{prefix}-u")
    env = ft.worker_env(settings, topics, f"{prefix}-naive", port) | {"CHURNSTREAM_BATCH_SIZE": "1"}
    proc = ft.spawn_worker(env, "bench-naive.log")
    try:
        with console.status(f"naive baseline (batches of one) over {naive_n:,} records"):
            results["naive"] = ft.measure([port], naive_n, [proc], "naive: micro-batches of one event")
    finally:
        ft.stop([proc])
    console.print(f"naive: {results['naive'].events_per_s:,.0f} events/s")

    e2e, noop = results["e2e"], results["noop"]
    run.figures.update(
        {
            "e2e_records": n,
            "e2e_events_per_s": round(e2e.events_per_s),
            "faust_noop_events_per_s": round(noop.events_per_s),
            "faust_noop_default_events_per_s": round(results["noop_default"].events_per_s),
            "faust_noop_tuned_events_per_s": round(results["noop_tuned"].events_per_s),
            "faust_stock_noop_events_per_s": round(results["noop_stock"].events_per_s),
            "faust_batch_noop_events_per_s": round(results["noop_batch"].events_per_s),
            "bare_consumer_events_per_s": round(results["bare"].events_per_s),
            "naive_events_per_s": round(results["naive"].events_per_s),
            "worker_peak_rss_mb": round(max(rss or [0])),
            "redis_seeded_users": redis_users,
        }
    )
    # ratios only between figures of this run
    run.ratio("e2e_ratio", "e2e_events_per_s", "faust_noop_events_per_s")
    run.ratio("e2e_ratio_vs_default_noop", "e2e_events_per_s", "faust_noop_default_events_per_s")
    run.ratio("e2e_vs_bare_ratio", "e2e_events_per_s", "bare_consumer_events_per_s", 4)
    run.ratio("e2e_vs_stock_noop_ratio", "e2e_events_per_s", "faust_stock_noop_events_per_s")
    run.ratio("faust_batch_vs_stock_noop_ratio", "faust_batch_noop_events_per_s", "faust_stock_noop_events_per_s")
    run.details["e2e_outcomes"] = outcomes
    figures = dict(run.figures)
    command = run.command
    rows = [
        f"| {r.name} | {r.events_per_s:,.0f} | {r.events_per_s / noop.events_per_s:.2f}x | {r.events:,} |"
        for r in (results.get(k) for k in ROW_ORDER)
        if r is not None
    ]
    md = [
        "## End to end (one worker, all models on)",
        "",
        f"Command: `{command}`: {n:,} generated records over {settings.partitions} partitions of each input topic, "
        "consumed from the start by each consumer in turn, in the same run. The worker validates, aligns, folds "
        "state, writes Redis, scores both tasks with the champion and the online model, learns from resolved "
        f"labels, and writes ClickHouse `events` and `predictions` rows. Redis holds {redis_users:,} other users' "
        f"state during the run. Run record: {_link(run)}.",
        "",
        "| consumer | events/s | vs Faust no-op (worker's settings) | events |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"**{figures['e2e_events_per_s']:,} events/s** end to end (target >= 15,000): "
        f"**{figures['e2e_vs_stock_noop_ratio']}x the stock do-nothing faust agent** (noack_take + ack; target "
        f">= 1.0), {figures['e2e_ratio']}x the do-nothing agent with the worker's faust settings. The do-nothing "
        f"agent on the batch delivery is {figures['faust_batch_vs_stock_noop_ratio']}x the stock one (target >= 3). "
        f"Outcomes: {', '.join(f'{k} {v:,.0f}' for k, v in sorted(outcomes.items()))}. "
        f"Worker peak RSS {figures['worker_peak_rss_mb']:,} MB with {redis_users:,} "
        "users' state in Redis (the worker holds no per-user state itself).",
        "",
        "The naive baseline is the same worker with `CHURNSTREAM_BATCH_SIZE=1`: one Redis round trip, one "
        "model call per task and model and one ClickHouse insert per event.",
    ]
    update_section("e2e", "\n".join(md))
    return figures
