"""The benchmark commands (``churnstream bench features|recommend|train|import|e2e|api|profile|rescore|online|
dashboard``), each on its module in ``bench/``.

``churnstream/cli.py`` registers :data:`bench_app` as the ``bench`` group.
"""

from __future__ import annotations

import typer

from churnstream.console import console
from churnstream.settings import get_settings

bench_app = typer.Typer(
    help="Benchmarks on the local stack; each run writes a record to docs/benchmark-runs/ and updates "
    "docs/benchmarks.md and .json.",
    no_args_is_help=True,
)


@bench_app.command("features")
def bench_features(
    users: int = typer.Option(6000, help="simulated users"),
    days: int = typer.Option(90, help="days of history"),
) -> None:
    """Feature-path events/s vs a do-nothing Faust agent and a bare aiokafka loop; Redis bytes per user."""
    from bench.run_features import run

    run(get_settings(), console, users=users, days=days)


@bench_app.command("recommend")
def bench_recommend(
    users: int = typer.Option(3_000, help="simulated users"),
    days: int = typer.Option(365, help="days of history"),
    seed: int = typer.Option(0, help="generator seed"),
    split_day: int = typer.Option(300, help="the test split: fit before this day, measure the next 30 days"),
) -> None:
    """Recommendations offline: HR@10 and NDCG@10 of the hybrid, CF, content and popularity on a time split."""
    from bench.recommend import run

    run(console, users=users, days=days, seed=seed, split_day=split_day)


@bench_app.command("train")
def bench_train(
    users: int = typer.Option(5_000, help="simulated users (5,000 x 365 days is about 1.1M events)"),
    days: int = typer.Option(365, help="days of history"),
) -> None:
    """Wall time to train all models for both tasks on about 1M generated events."""
    from bench.train_time import run

    run(console, users=users, days=days)


@bench_app.command("import")
def bench_import(
    users: int = typer.Option(6_600, help="simulated users (6,600 x 365 days is about 1M events)"),
    days: int = typer.Option(365, help="days of history"),
) -> None:
    """Rows per second of `churnstream import` on a CRM-style CSV of about 1M events (first import and again)."""
    from bench.import_rate import run

    run(get_settings(), console, users=users, days=days)


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
    endpoint: str = typer.Option("scores", help="what to look up: scores or recommendations"),
) -> None:
    """Lookup latency of one API process at a fixed request rate; answers per status code, 5xx fails."""
    from bench.api_latency import ENDPOINTS, run

    if endpoint not in ENDPOINTS:
        raise typer.BadParameter(f"choose from {', '.join(ENDPOINTS)}")
    run(get_settings(), console, rate=rate, seconds=seconds, endpoint=endpoint)


@bench_app.command("profile")
def bench_profile(
    users: int = typer.Option(3000, help="simulated users in the backlog"),
    days: int = typer.Option(90, help="days of history"),
    seconds: int = typer.Option(30, help="seconds of profile once the worker is busy"),
) -> None:
    """A py-spy profile of one worker on a backlog: the share of time per layer and the top functions."""
    import sys

    from bench.profile_worker import run

    run(get_settings(), console, sys.argv, users=users, days=days, seconds=seconds)


@bench_app.command("rescore")
def bench_rescore(
    users: int = typer.Option(1_000_000, help="users due by time, seeded in Redis (try 20,000 for a quick run)"),
    backlog_users: int = typer.Option(1000, help="new users whose generated events make the backlog (28 days: ~43k)"),
    days: int = typer.Option(28, help="days of generated history of the due users and of the backlog"),
    template_users: int = typer.Option(3000, help="generated users whose states are copied to the due users"),
) -> None:
    """Users rescored by time per second on one worker (all models on), and its events/s on a backlog while they
    are due vs. the same backlog with none due."""
    import sys

    from bench.rescore import run

    run(
        get_settings(),
        console,
        sys.argv,
        users=users,
        backlog_users=backlog_users,
        days=days,
        template_users=template_users,
    )


@bench_app.command("online")
def bench_online(
    users: int = typer.Option(1000, help="simulated users in the stream"),
    days: int = typer.Option(180, help="days of history"),
    batch: list[int] = typer.Option([250, 1000], help="events per micro-batch whose labels are learned together"),
) -> None:
    """Online models' progressive-validation AUC learning each label at once vs. a micro-batch's labels together."""
    from bench.online_batches import run

    run(console, get_settings().registry_dir(), users=users, days=days, batches=batch)


@bench_app.command("dashboard")
def bench_dashboard(
    users: int = typer.Option(1_000_000, help="users in the generated ClickHouse"),
    events: int = typer.Option(10_000_000, help="rows in `events`"),
    predictions: int = typer.Option(10_000_000, help="rows in `predictions`"),
    days: int = typer.Option(120, help="days the rows span"),
    repeats: int = typer.Option(5, help="timed runs of each query after one warm-up"),
) -> None:
    """Every named dashboard query on an embedded ClickHouse of 1M users and 10M predictions (target <= 200 ms)."""
    from bench.dashboard_queries import run_bench

    run_bench(console, users=users, events=events, predictions=predictions, days=days, repeats=repeats)
