"""The ``churnstream`` command: a thin typer entry point.

The commands that drive one package live next to it and are registered here: ``stack`` and ``init`` in
``infra/cli.py``, ``keys`` in ``serving/cli.py``, ``features`` in ``features/cli.py``, ``train`` and ``models`` in
``models/cli.py``, ``bench`` in ``bench/cli.py``. The process commands (``generate``, ``worker``, ``api``, ``run``,
``demo``) start what several packages make up, so they stay here.
"""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli import bench_app
from churnstream.console import console
from churnstream.export_cli import export_app
from churnstream.import_cli import import_file
from churnstream.settings import get_settings
from features.cli import features_app
from infra.cli import init, stack_app
from models.cli import models_app, retrain, train
from serving.cli import keys_app
from streams.recommend_cli import recommend_app

app = typer.Typer(help="churnstream: real-time churn and purchase scoring from event streams.", no_args_is_help=True)
app.command()(init)


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


app.command()(train)
app.command("import")(import_file)
app.command()(retrain)
app.add_typer(stack_app, name="stack")
app.add_typer(keys_app, name="keys")
app.add_typer(features_app, name="features")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(recommend_app, name="recommend")
app.add_typer(export_app, name="export")


if __name__ == "__main__":
    app()
