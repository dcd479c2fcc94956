"""The ``churnstream`` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from churnstream.settings import get_settings

app = typer.Typer(help="churnstream: real-time churn and purchase scoring from event streams.", no_args_is_help=True)
stack_app = typer.Typer(
    help="The local stack: Kafka (KRaft), Redis and ClickHouse (embedded chDB).", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
console = Console(width=None if sys.stdout.isatty() else 140)


@stack_app.command("up")
def stack_up() -> None:
    """Start Kafka and Redis, create topics, apply the ClickHouse schema. Idempotent."""
    from infra import stack

    settings = get_settings()
    with console.status("bringing the stack up") as status:

        def step(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        stack.up(settings, on_step=step)
    _print_status()


@stack_app.command("fetch")
def stack_fetch() -> None:
    """Resolve the Kafka broker's jars from Maven Central into the cache (done by `up` too)."""
    from infra import kafka_broker

    console.print(f"Kafka jars in {kafka_broker.resolve_jars(get_settings())}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes `stack up` started (by pid file)."""
    from infra import stack

    stopped = stack.down(get_settings())
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Each component with its version and address; exit 1 if any is down."""
    if not _print_status():
        raise typer.Exit(1)


def _print_status() -> bool:
    from infra import stack

    table = Table(title=f"churnstream stack ({get_settings().home})")
    for col in ("component", "state", "version", "address", "detail"):
        table.add_column(col)
    rows = stack.status(get_settings())
    for row in rows:
        table.add_row(row.name, "[green]up[/]" if row.up else "[red]down[/]", row.version, row.address, row.detail)
    console.print(table)
    return all(r.up for r in rows)


@app.command()
def init() -> None:
    """Create topics and apply ClickHouse migrations on the configured services (starts nothing)."""
    from infra import stack

    stack.init(get_settings(), on_step=console.log)


@app.command()
def generate(
    users: int = typer.Option(2000, help="simulated users"),
    days: int = typer.Option(90, help="days of history"),
    seed: int = typer.Option(0, help="random seed (same seed, same stream)"),
    out: Path | None = typer.Option(None, help="write JSONL here instead of producing to Kafka"),
    rate: float = typer.Option(0.0, help="records per second to Kafka; 0 = as fast as possible"),
    out_of_order: float = typer.Option(0.0, help="fraction of events delayed by up to --max-delay-h"),
    max_delay_h: float = typer.Option(6.0, help="largest delay of an out-of-order event, hours"),
    duplicates: float = typer.Option(0.0, help="fraction of events sent twice (producer retries)"),
    malformed: float = typer.Option(0.0, help="fraction of events followed by a malformed record"),
) -> None:
    """Simulate users and produce their page views, cart events and purchases (to Kafka, or to a file)."""
    from simulation import generator
    from streams.produce import produce_records

    settings = get_settings()
    with console.status(f"simulating {users:,} users over {days} days"):
        events = generator.simulate(generator.make_users(users, days, seed), days, seed)
        records = generator.arrivals(
            events,
            seed,
            out_of_order=out_of_order,
            max_delay_ms=int(max_delay_h * 3.6e6),
            duplicates=duplicates,
            malformed=malformed,
        )
    if out is not None:
        generator.write_jsonl(records, out)
        console.print(f"wrote {len(records):,} records ({len(events):,} events) to {out}")
        return
    sent = produce_records(settings, records, rate=rate, progress=console)
    console.print(f"produced {sent:,} records ({len(events):,} events) to {', '.join(settings.input_topics)}")


@app.command()
def worker() -> None:
    """Run the stream worker (Faust agents)."""
    from streams.app import run_worker

    settings = get_settings()
    run_worker(settings, loglevel=settings.log_level)


@app.command()
def api() -> None:
    """Run the HTTP API alone (with a ClickHouse server DSN; with embedded chDB use `churnstream run`)."""
    from serving.server import run_api

    run_api(get_settings())


@app.command()
def run() -> None:
    """Run the worker and the API in one process (required with embedded chDB)."""
    from serving.server import run_with_worker

    run_with_worker(get_settings())


keys_app = typer.Typer(help="API keys: stored hashed in Redis, shown once.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _keys() -> Any:
    import redis.asyncio as aioredis

    from serving.keys import KeyStore

    return KeyStore(aioredis.Redis.from_url(get_settings().redis_url))


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="who or what uses the key, e.g. crm-export"),
    scope: list[str] = typer.Option(["read"], help="read, write or admin (admin implies all); repeat for several"),
) -> None:
    """Create a key and print it once (only its SHA-256 hash is stored)."""
    import asyncio

    try:
        token = asyncio.run(_keys().create(name, tuple(scope)))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"key for [bold]{name}[/] ({', '.join(scope)}); store it now, it is not shown again:")
    print(token)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the id (second part of cs_<id>_<secret>)")) -> None:
    """Revoke a key; API processes stop accepting it within CHURNSTREAM_API_KEY_CACHE_S seconds."""
    import asyncio

    from serving.keys import parse

    parsed = parse(key_id)
    if not asyncio.run(_keys().revoke(parsed[0] if parsed else key_id)):
        console.print(f"[red]no key with id {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, names, scopes and creation times (never the keys)."""
    import asyncio
    import datetime as dt

    table = Table("id", "name", "scopes", "created")
    for r in asyncio.run(_keys().list()):
        created = dt.datetime.fromtimestamp(r.created_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        table.add_row(r.key_id, r.name, ",".join(r.scopes), created)
    console.print(table)


@app.command()
def demo(
    users: int = typer.Option(2000, help="simulated users per round of generated traffic"),
    rate: float = typer.Option(500.0, help="events per second to produce"),
    duration: float = typer.Option(0.0, help="stop after this many seconds (0 = until Ctrl-C)"),
    train_users: int = typer.Option(2000, help="users of the generated history the models train on, if none exist"),
) -> None:
    """Stack up, models trained if missing, worker and API started, generated traffic streamed live."""
    from churnstream.demo import run_demo

    run_demo(get_settings(), console, users=users, rate=rate, duration=duration, train_users=train_users)


features_app = typer.Typer(
    help="Offline, point-in-time features (the same function as the stream).", no_args_is_help=True
)
app.add_typer(features_app, name="features")


@features_app.command("build")
def features_build(
    queries: Path = typer.Option(..., help="CSV with columns user_id,as_of (epoch ms or ISO-8601 with zone)"),
    out: Path = typer.Option(..., help="CSV to write: user_id, as_of_ms and every feature"),
    events: Path | None = typer.Option(
        None, help="history as JSONL (events with `type`) or CSV; default: the ClickHouse `events` table"
    ),
) -> None:
    """Point-in-time features for each (user_id, as_of), from a history file or the ClickHouse events table."""
    from features import offline

    qs = offline.read_queries(queries)
    if events is None:
        from infra import clickhouse_db

        client = clickhouse_db.connect(get_settings().clickhouse_dsn)
        try:
            accepted = offline.read_clickhouse(client, sorted({u for u, _ in qs}))
        finally:
            client.close()
    else:
        reader = offline.read_csv if events.suffix == ".csv" else offline.read_jsonl
        accepted = offline.accept(reader(events))
    rows = offline.build(accepted, qs)
    offline.write_csv(out, qs, rows)
    console.print(f"wrote {len(rows):,} feature rows to {out}")


models_app = typer.Typer(help="The model registry: list versions, promote a champion.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _registry():
    from models.registry import Registry

    return Registry(get_settings().registry_dir())


@app.command()
def train(
    users: int = typer.Option(5000, help="simulated users (when no --events is given)"),
    days: int = typer.Option(365, help="days of simulated history"),
    seed: int = typer.Option(0, help="random seed"),
    events: Path | None = typer.Option(None, help="train on this JSONL/CSV history instead of a simulation"),
    per_user: int = typer.Option(12, help="rows per training user, about (4x per validation and test user)"),
    report: bool = typer.Option(True, help="write docs/models.md and docs/models.json"),
    progressive_users: int = typer.Option(
        2000, help="users of the separate stream for progressive validation of the online models (0 = skip)"
    ),
) -> None:
    """Train logreg, SVM, random forest and XGBoost per task on point-in-time data; promote the best."""
    import numpy as np
    import orjson
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from features import offline
    from models import oracle
    from models import report as model_report
    from models.train import train_task
    from simulation import generator

    registry = _registry()
    reports = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        step = bar.add_task("preparing history", total=None)
        oracle_fn = None
        if events is None:
            bar.update(step, description=f"simulating {users:,} users over {days} days")
            simulated = generator.make_users(users, days, seed)
            history = generator.simulate(simulated, days, seed)
            accepted = offline.accept((e["type"], orjson.dumps(e)) for e in history)
            truth = oracle.Oracle(simulated, history, end_ms=generator.DEFAULT_START_MS + days * 86_400_000)
            source = f"{len(history):,} simulated events of {users:,} users over {days} days (seed {seed})."
        else:
            reader = offline.read_csv if events.suffix == ".csv" else offline.read_jsonl
            accepted = offline.accept(reader(events))
            source = f"history from {events}."
        for task in ("churn", "purchase"):
            if events is None:

                def oracle_fn(us: list[str], ts: list[int], task: str = task) -> np.ndarray:
                    return truth.scores(task, us, ts)

            reports[task] = train_task(
                accepted,
                task,
                registry,
                per_user=per_user,
                seed=seed,
                oracle=oracle_fn,
                progress=lambda msg: bar.update(step, description=msg),
            )
        bar.update(step, description="done")
    for task, r in reports.items():
        table = Table(title=f"{task}: test metrics (champion {r['champion']})")
        for col in ("model", "ROC-AUC", "PR-AUC", "log loss", "Brier", "1 row us", "batch us/row"):
            table.add_column(col)
        if "oracle" in r:
            table.add_row(
                "oracle",
                f"{r['oracle']['roc_auc']:.4f}",
                f"{r['oracle']['pr_auc']:.4f}",
                f"{r['oracle']['log_loss']:.4f}",
                f"{r['oracle']['brier']:.4f}",
                "-",
                "-",
            )
        for name, m in r["models"].items():
            table.add_row(
                name,
                f"{m['roc_auc']:.4f}",
                f"{m['pr_auc']:.4f}",
                f"{m['log_loss']:.4f}",
                f"{m['brier']:.4f}",
                f"{m['single_row_us']:.0f}",
                f"{m['batch_per_row_us']:.2f}",
            )
        console.print(table)
    progressive = None
    if events is None and progressive_users:
        from models import progressive as pv
        from models.registry import Registry as _Registry

        reg = _Registry(get_settings().registry_dir())
        with console.status(f"progressive validation on a separate stream of {progressive_users:,} users"):
            stream_users = generator.make_users(progressive_users, days, seed + 1)
            stream = generator.simulate(stream_users, days, seed + 1)
            champions = {t: reg.load(ref) for t in ("churn", "purchase") if (ref := reg.champion(t))}
            outcome = pv.run(offline.accept((e["type"], orjson.dumps(e)) for e in stream), champions)
            progressive = {t: o.later_half() for t, o in outcome.items()}
        for t, q in progressive.items():
            console.print(
                f"{t}: online ROC-AUC {q['online']['roc_auc']:.4f} vs champion "
                f"{q['champion']['roc_auc']:.4f} on the later half ({q['labels']['n']:,.0f} labels)"
            )
    if report:
        command = (
            f"churnstream train --users {users} --days {days} --seed {seed}"
            if events is None
            else (f"churnstream train --events {events}")
        )
        model_report.write(reports, command, source, progressive)
        console.print("wrote docs/models.md and docs/models.json")


@models_app.command("list")
def models_list() -> None:
    """Every registered version with its test AUC; the champion of each task is marked."""
    from models.registry import ModelRejected

    registry = _registry()
    table = Table()
    for col in ("task", "model", "version", "ROC-AUC", "champion"):
        table.add_column(col)
    for task in ("churn", "purchase"):
        champion = registry.champion(task)
        for model in ("logreg", "svm", "random_forest", "xgboost"):
            for ref in registry.versions(task, model):
                try:
                    auc = f"{registry.meta(ref)['metrics']['roc_auc']:.4f}"
                except (ModelRejected, KeyError):
                    auc = "unreadable"
                table.add_row(task, model, ref.version, auc, "*" if ref == champion else "")
    console.print(table)


@models_app.command("promote")
def models_promote(task: str, model: str, version: str = typer.Option("", help="default: the latest")) -> None:
    """Make a model version the champion of a task (checked before it takes effect)."""
    from models.registry import ModelRef, ModelRejected

    registry = _registry()
    ref = ModelRef(task, model, version) if version else registry.latest(task).get(model)
    if ref is None:
        raise typer.BadParameter(f"no {model} versions for {task}")
    try:
        registry.promote(ref)
    except ModelRejected as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"champion of {task} is now {ref}")


bench_app = typer.Typer(
    help="Benchmarks on the local stack; each run writes a record to docs/benchmark-runs/ and updates "
    "docs/benchmarks.md and .json.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


@bench_app.command("features")
def bench_features(
    users: int = typer.Option(6000, help="simulated users"),
    days: int = typer.Option(90, help="days of history"),
) -> None:
    """Feature-path events/s vs a do-nothing Faust agent and a bare aiokafka loop; Redis bytes per user."""
    from bench.run_features import run

    run(get_settings(), console, users=users, days=days)


@bench_app.command("train")
def bench_train(
    users: int = typer.Option(5_000, help="simulated users (5,000 x 365 days is about 1.1M events)"),
    days: int = typer.Option(365, help="days of history"),
) -> None:
    """Wall time to train all models for both tasks on about 1M generated events."""
    from bench.train_time import run

    run(console, users=users, days=days)


@bench_app.command("e2e")
def bench_e2e(
    users: int = typer.Option(10_000, help="simulated users (10,000 x 90 days is about 1M events)"),
    days: int = typer.Option(90, help="days of history"),
    redis_users: int = typer.Option(1_000_000, help="other users' state seeded in Redis for the memory figure"),
    load_seconds: int = typer.Option(30, help="seconds of traffic at each offered load"),
    stages: str = typer.Option("throughput,two,latency", help="comma-separated stages to run"),
    naive_records: int = typer.Option(30_000, help="records for the naive baseline (batches of one event)"),
) -> None:
    """End-to-end throughput (all models) vs. Faust no-op and bare consumer, naive baseline and worker memory
    with 1M users in Redis (throughput); one vs. two workers (two); latency at 1k/5k/10k events/s (latency)."""
    from bench.e2e import STAGES, run

    chosen = tuple(s.strip() for s in stages.split(",") if s.strip())
    if unknown := set(chosen) - set(STAGES):
        raise typer.BadParameter(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    run(
        get_settings(),
        console,
        users=users,
        days=days,
        redis_users=redis_users,
        load_seconds=load_seconds,
        stages=chosen,
        naive_records=naive_records,
    )


@bench_app.command("api")
def bench_api(
    rate: int = typer.Option(1000, help="offered requests per second"),
    seconds: int = typer.Option(30, help="measured duration"),
) -> None:
    """Score-lookup latency of one API process at a fixed request rate; answers per status code, 5xx fails."""
    from bench.api_latency import run

    run(get_settings(), console, rate=rate, seconds=seconds)


if __name__ == "__main__":
    app()
