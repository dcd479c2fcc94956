"""`churnstream demo`: the whole pipeline on this machine, live.

It brings the stack up, trains the models on generated history if the registry has no champion, starts the
worker and the API in one process (`churnstream run`), creates an API key, and streams generated shop traffic at
a steady rate. A live line shows events/s, consumer lag and p99 event-to-score latency, and ready-to-paste curl
commands show the API. Ctrl-C (or ``--duration``) stops everything the demo started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator

import redis
from rich.console import Console
from rich.live import Live

from churnstream.settings import Settings
from core.keys import score_key
from infra import kafka_broker, redis_server, stack
from infra.processes import ManagedProcess
from simulation import generator
from streams.produce import producer
from streams.scrape import Scrape, quantile

DAY_MS = 86_400_000


def run_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("run", settings.dir("run") / "demo-run.pid")


def ensure_models(settings: Settings, console: Console, users: int = 2000, days: int = 240) -> None:
    """Train every model on generated history unless each task already has a champion that loads (one trained on
    another feature list, by an earlier version, is refused: it is trained again)."""
    import orjson

    from core.tasks import TASKS
    from features import offline
    from models.registry import ModelRejected, Registry
    from models.train import train_task

    registry = Registry(settings.registry_dir())

    def serves(task: str) -> bool:
        ref = registry.champion(task)
        try:
            return ref is not None and bool(registry.load(ref))
        except ModelRejected as exc:
            console.print(f"[yellow]{exc}[/]")
            return False

    if all([serves(t) for t in TASKS]):
        return
    with console.status(f"no trained models yet: simulating {users:,} users over {days} days") as status:
        us = generator.make_users(users, days, seed=7)
        history = generator.simulate(us, days, seed=7)
        accepted = offline.accept((e["type"], orjson.dumps(e)) for e in history)
        for task in TASKS:
            report = train_task(accepted, task, registry, progress=lambda m: status.update(m))
            auc = report["models"][report["champion"]]["roc_auc"]
            console.print(f"trained {task}: champion [bold]{report['champion']}[/] (test ROC-AUC {auc:.3f})")


def create_key(settings: Settings, name: str = "demo", scopes: tuple[str, ...] = ("read", "write")) -> str:
    import redis.asyncio as aioredis

    from serving.keys import KeyStore

    async def create() -> str:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            return await KeyStore(client).create(name, scopes)
        finally:
            await client.aclose()

    return asyncio.run(create())


def live_events(users: int, seed: int) -> Iterator[generator.Record]:
    """Endless generated traffic: 60 days of history for ``users`` users ending now, then the next batch."""
    while True:
        start_ms = (int(time.time() * 1000) // DAY_MS - 60) * DAY_MS
        us = generator.make_users(users, 60, seed, start_ms=start_ms, prefix=f"demo{seed % 100000}")
        events = generator.simulate(us, 60, seed, start_ms=start_ms)
        yield from generator.arrivals(events, seed, out_of_order=0.02, duplicates=0.005, malformed=0.002)
        seed += 1


def curl_commands(base: str, key: str, user: str) -> str:
    """Ready-to-paste calls of the API for one user of the demo's traffic."""
    h = f"-H 'X-API-Key: {key}'"
    js = "-H 'content-type: application/json'"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = f'{{"type":"page_view","event_id":"curl-1","user_id":"{user}","ts":"{now}","page_type":"product"}}'
    score = f'{{"user_id":"{user}","model":"xgboost"}}'
    ids = f"$'user_id\\n{user}\\n'"
    return "\n".join(
        [
            f"curl -s {h} {base}/v1/users/{user}/scores",
            f"curl -s {h} {base}/v1/users/{user}/features",
            f"curl -s {h} {js} {base}/v1/score -d '{score}'",
            f"curl -s {h} {base}/v1/models",
            f"curl -s {h} '{base}/v1/at-risk?task=purchase&min_score=0.8&limit=20&format=csv'",
            f"curl -s {h} -H 'content-type: text/csv' '{base}/v1/batch-score?model=logreg' --data-binary {ids}",
            f"curl -s {h} {js} {base}/v1/events -d '{event}'",
            f"curl -s {base}/readyz",
            f"curl -s {base}/metrics | grep churnstream_event_to_score",
            f"# OpenAPI: {base}/docs",
        ]
    )


def run_demo(
    settings: Settings, console: Console, users: int, rate: float, duration: float, train_users: int = 2000
) -> None:
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both stop what the demo started (SIGINT may arrive ignored, e.g. from `cmd &`)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    was_up = kafka_broker.process(settings).running() and redis_server.process(settings).running()
    with console.status("bringing the stack up (the first run downloads Kafka from Maven Central)") as status:
        stack.up(settings, on_step=lambda msg: status.update(msg))
    proc = run_process(settings)
    try:
        ensure_models(settings, console, users=train_users)
        key = create_key(settings)
        if proc.running():
            proc.stop()
        proc.spawn(
            [sys.executable, "-m", "churnstream.cli", "run"],
            settings.dir("logs") / "run.log",
            env={**os.environ, "CHURNSTREAM_HOME": str(settings.home)},
        )
        base = f"http://{settings.api_host}:{settings.api_port}"
        with console.status("starting the worker and the API (`churnstream run`)"):
            try:
                proc.wait_http(base + "/healthz", 120, settings.home / "logs" / "run.log")
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from None
        dashboard_key = create_key(settings, "demo-dashboard", ("read",))
        console.print(f"\n[bold]Dashboard:[/] {base}/dashboard  (log in with this read-only key)")
        console.print(f"dashboard key {dashboard_key}\n", markup=False, highlight=False, soft_wrap=True)
        stream(settings, console, proc, base, key, users, rate, duration)
    except KeyboardInterrupt:
        console.print("\nstopping")
    finally:
        proc.stop()
        if not was_up:
            stack.down(settings)
            console.print("stopped the worker, the API and the stack (the demo started them)")
        else:
            console.print("stopped the worker and the API; the stack was already up and keeps running")


def scrape(base: str, last: Scrape | None = None) -> Scrape:
    """The API's metrics; ``last`` (or, with none, a retry) while the worker keeps it too busy to answer in 15 s (a
    rescoring step of a replayed history competes with it for the interpreter)."""
    for attempt in range(4):
        try:
            return Scrape.read(base + "/metrics", timeout=15.0)
        except OSError:  # URLError and timeouts are OSErrors
            if last is not None:
                return last
            if attempt == 3:
                raise
    raise AssertionError("unreachable")


def stream(
    settings: Settings,
    console: Console,
    proc: ManagedProcess,
    base: str,
    key: str,
    users: int,
    rate: float,
    duration: float,
) -> None:
    topics = dict(zip(generator.TOPIC_OF.values(), settings.input_topics, strict=True))
    p = producer(settings)
    records = live_events(users, seed=int(time.time()))
    started = time.monotonic()
    sent = 0
    candidates: list[str] = []  # the first users produced: one of them is shown in the curl commands
    shown_curl = False
    r = redis.Redis.from_url(settings.redis_url)
    before = scrape(base)
    before_t = time.monotonic()
    line = "starting"
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while duration <= 0 or time.monotonic() - started < duration:
            if not proc.running():
                raise SystemExit(f"the worker exited; see {settings.home / 'logs' / 'run.log'}")
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                rec = next(records)
                if len(candidates) < 500 and not rec.malformed:
                    candidates.append(rec.key.decode())
                while True:
                    try:
                        p.produce(topics[rec.topic], value=rec.value, key=rec.key)
                        break
                    except BufferError:
                        p.poll(0.05)
                sent += 1
            p.poll(0)
            if time.monotonic() - before_t >= 1.0:
                if (now := scrape(base, before)) is before:  # the API was too busy to answer: keep the last line
                    continue
                elapsed = time.monotonic() - before_t
                applied = now.total("churnstream_events_total", outcome="applied")
                eps = (applied - before.total("churnstream_events_total", outcome="applied")) / elapsed
                latency = "churnstream_event_to_score_seconds"
                p99 = quantile(now.buckets(latency), before.buckets(latency), 0.99)
                p99_text = f"<= {p99 * 1000:,.0f} ms" if p99 is not None else "-"
                line = (
                    f"[bold]{eps:,.0f} events/s[/] scored | consumer lag {now.total('churnstream_consumer_lag'):,.0f}"
                    f" | p99 event-to-score {p99_text} | produced {sent:,} at {rate:,.0f}/s"
                    f" | {time.monotonic() - started:,.0f}s (Ctrl-C stops)"
                )
                before, before_t = now, time.monotonic()
                scored = [u for u in candidates[:50] if r.exists(score_key(u))] if not shown_curl else []
                if scored:
                    console.print(f"\nthe API is up at {base} (OpenAPI at {base}/docs). Try:\n")
                    console.print(curl_commands(base, key, scored[0]), markup=False, highlight=False, soft_wrap=True)
                    console.print()
                    shown_curl = True
            live.update(line)
            time.sleep(0.05)
    console.print()
    p.flush(10)
