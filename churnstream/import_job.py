"""One import, start to end, for ``churnstream import`` and ``POST /v1/imports``: read and validate the file
(:mod:`churnstream.imports`), write the reject report, drop what an earlier import sent
(:mod:`churnstream.import_ledger`), produce the rest through the idempotent producer, then record it in the ledger.

``on_progress`` receives the :class:`ImportProgress` at each phase and every 1,000 records sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis

from churnstream.import_ledger import ImportLedger
from churnstream.imports import normalise, read_rows, write_rejects
from churnstream.settings import Settings


@dataclass
class ImportProgress:
    phase: str = "queued"  # queued | validating | checking | sending | done | failed
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    already_imported: int = 0
    new: int = 0
    sent: int = 0
    seconds: float = 0.0
    rows_per_s: float = 0.0
    error: str = ""
    rejects: str = ""  # the reject report's path
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_import(
    settings: Settings,
    path: Path,
    kind: str | None,
    mapping: Mapping[str, str],
    ts_format: str | None,
    tz: str,
    rejects: Path,
    dry_run: bool = False,
    on_progress: Callable[[ImportProgress], None] = lambda _p: None,
    console: Any = None,
) -> ImportProgress:
    from simulation.faults import TOPIC_OF, Record
    from streams.produce import produce_records

    p, started = ImportProgress(rejects=str(rejects)), time.monotonic()

    def phase(name: str) -> None:
        p.phase, p.seconds = name, round(time.monotonic() - started, 3)
        on_progress(p)

    phase("validating")
    out = normalise(read_rows(path), kind, mapping, ts_format, tz)
    write_rejects(out.rejects, rejects)
    p.rows, p.valid, p.rejected = out.lines, len(out.events), len(out.rejects)
    phase("checking")
    client = redis.Redis.from_url(settings.redis_url)
    try:
        ledger = ImportLedger(client)
        try:
            fresh = ledger.unsent([e for _, e in out.events]) if out.events else []
        except redis.ConnectionError:
            if not dry_run:
                raise
            fresh, p.error = [e for _, e in out.events], "Redis unreachable: the import ledger was not checked"
        p.already_imported, p.new = len(out.events) - len(fresh), len(fresh)
        if fresh and not dry_run:
            phase("sending")
            records = [Record(TOPIC_OF[e["type"]], e["user_id"].encode(), orjson.dumps(e)) for e in fresh]

            def sent(n: int) -> None:
                p.sent = n
                phase("sending")

            p.sent = produce_records(settings, records, progress=console, on_sent=sent)
            ledger.remember(fresh)
    finally:
        client.close()
    p.rows_per_s = round(p.rows / max(time.monotonic() - started, 1e-9))
    phase("done")
    return p
