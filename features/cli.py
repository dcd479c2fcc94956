"""The offline feature command: ``churnstream features build`` (on :mod:`features.offline`, the same feature
function as the stream). ``churnstream/cli.py`` registers :data:`features_app` as the ``features`` group.
"""

from __future__ import annotations

from pathlib import Path

import typer

from churnstream.console import console
from churnstream.settings import get_settings

features_app = typer.Typer(
    help="Offline, point-in-time features (the same function as the stream).", no_args_is_help=True
)


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
