"""The stack commands: ``churnstream stack up|fetch|down|status`` and ``churnstream init``.

``churnstream/cli.py`` registers :data:`stack_app` as the ``stack`` group and :func:`init` as a top-level command.
"""

from __future__ import annotations

import typer
from rich.table import Table

from churnstream.console import console
from churnstream.settings import get_settings

stack_app = typer.Typer(
    help="The local stack: Kafka (KRaft), Redis and ClickHouse (embedded chDB).", no_args_is_help=True
)


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
    print_status()


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
    if not print_status():
        raise typer.Exit(1)


def print_status() -> bool:
    """Print a table of the stack's components; True when every one is up."""
    from infra import stack

    table = Table(title=f"churnstream stack ({get_settings().home})")
    for col in ("component", "state", "version", "address", "detail"):
        table.add_column(col)
    rows = stack.status(get_settings())
    for row in rows:
        table.add_row(row.name, "[green]up[/]" if row.up else "[red]down[/]", row.version, row.address, row.detail)
    console.print(table)
    return all(r.up for r in rows)


def init() -> None:
    """Create topics and apply ClickHouse migrations on the configured services (starts nothing)."""
    from infra import stack

    stack.init(get_settings(), on_step=console.log)
