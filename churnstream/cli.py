"""The ``churnstream`` command."""

from __future__ import annotations

import sys
from pathlib import Path

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
    from streams import generator
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

    run_worker(get_settings())


@app.command()
def demo(
    users: int = typer.Option(1000, help="simulated users"),
    days: int = typer.Option(60, help="days of history to stream"),
) -> None:
    """Bring the stack up, stream generated events through the worker, and show the features that arrived."""
    from streams.demo import run_demo

    run_demo(get_settings(), console, users=users, days=days)


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


bench_app = typer.Typer(
    help="Benchmarks on the local stack; results go to docs/benchmarks.md and .json.", no_args_is_help=True
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


if __name__ == "__main__":
    app()
