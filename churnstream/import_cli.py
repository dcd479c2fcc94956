"""``churnstream import FILE``: history from a CRM or warehouse export into the stream (:mod:`churnstream.imports`).

Valid rows that no earlier import sent (the import ledger, :mod:`churnstream.import_ledger`) are produced to the
input topics, keyed by user, through the idempotent producer, with a progress bar and the throughput at the end;
rejected rows go to the reject report (``FILE.rejects.csv`` by default). ``--dry-run`` validates and writes the
report without producing.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from churnstream.console import console
from churnstream.import_job import run_import
from churnstream.imports import parse_mapping
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
    valid ones not sent by an earlier import to Kafka (stable ids, an import ledger in Redis), report the rest
    (line, field, reason)."""
    fields = json.loads(mapping_file.read_text()) if mapping_file else {}
    fields |= parse_mapping(mapping)
    report = rejects or path.with_name(path.name + ".rejects.csv")
    with console.status(f"reading and validating {path.name}") as status:
        done = run_import(
            get_settings(), path, kind or None, fields, ts_format or None, tz, report, dry_run,
            on_progress=lambda p: status.update(f"{p.phase}: {p.sent:,} sent") if p.phase == "sending" else None,
        )  # fmt: skip
    console.print(f"{done.rows:,} rows: {done.valid:,} valid, {done.rejected:,} rejected (report: {report})")
    console.print(done.error or f"{done.already_imported:,} already imported, {done.new:,} new")
    if done.sent:
        console.print(f"sent {done.sent:,} events in {done.seconds:.1f} s ({done.rows_per_s:,.0f} rows/s)")
