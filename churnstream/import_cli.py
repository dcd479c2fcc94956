"""``churnstream import FILE``: history from a CRM or warehouse export into the stream (:mod:`churnstream.imports`).

Valid rows are produced to the input topics, keyed by user, through the idempotent producer, with a progress bar and
the throughput at the end; rejected rows go to the reject report (``FILE.rejects.csv`` by default). ``--dry-run``
validates and writes the report without producing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import typer

from churnstream.console import console
from churnstream.imports import normalise, parse_mapping, read_rows, write_rejects
from churnstream.settings import get_settings


def import_file(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV, JSONL or Parquet export"),
    kind: str = typer.Option(
        "", help="the event type of every row (page_view, cart, purchase); default: column `type`"
    ),
    mapping: str = typer.Option("", "--map", help="event field=column pairs, e.g. user_id=client_id,ts=created_at"),
    mapping_file: Path | None = typer.Option(None, help="a saved mapping: a JSON object of event field -> column"),
    ts_format: str = typer.Option("", help="strptime format of text timestamps; default ISO 8601"),
    tz: str = typer.Option("UTC", help="time zone of timestamps without one (e.g. Europe/Berlin)"),
    rejects: Path | None = typer.Option(None, help="the reject report (CSV); default: FILE.rejects.csv"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and report, send nothing"),
) -> None:
    """Import events or orders from a file: map the columns, validate every row with the stream's contracts, send the
    valid ones to Kafka (stable ids; import a file once: see docs/events.md), report the rest (line, field,
    reason)."""
    from simulation.faults import TOPIC_OF, Record
    from streams.produce import produce_records

    fields = json.loads(mapping_file.read_text()) if mapping_file else {}
    fields |= parse_mapping(mapping)
    started = time.monotonic()
    with console.status(f"reading and validating {path.name}"):
        out = normalise(read_rows(path), kind or None, fields, ts_format or None, tz)
    report = rejects or path.with_name(path.name + ".rejects.csv")
    write_rejects(out.rejects, report)
    console.print(f"{out.lines:,} rows: {len(out.events):,} valid, {len(out.rejects):,} rejected (report: {report})")
    if dry_run or not out.events:
        return
    records = [Record(TOPIC_OF[e["type"]], e["user_id"].encode(), orjson.dumps(e)) for _, e in out.events]
    sent = produce_records(get_settings(), records, progress=console)
    seconds = time.monotonic() - started
    console.print(f"sent {sent:,} events in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f} rows/s)")
