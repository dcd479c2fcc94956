"""Importing history from CRM and warehouse exports: rows of CSV, JSONL or Parquet to the stream's events.

Each row goes through the same steps, and either becomes an event or a line of the reject report (line, field,
reason, detail), never both:

1. **Mapping.** ``--map user_id=client_id,ts=created_at`` (or a saved mapping file) names the column that holds each
   event field; unmapped columns keep their names. ``--kind`` sets the event type of a file of one kind, else the
   ``type`` column does.
2. **Normalisation.** Timestamps become epoch milliseconds (UTC): numbers are taken as milliseconds (seconds if below
   1e11); text is parsed with ``--ts-format`` (``strptime``) or as ISO 8601; a time without a zone is in ``--tz``,
   one with an offset keeps it, so a file of mixed zones lands on one clock. Quantities and money become numbers and a
   purchase's ``items`` a list.
3. **Ids.** A row without ``event_id`` gets a stable one: a hash of its normalised content. Importing the same file
   again produces the same ids (the stream drops a repeat only among a user's 16 latest ids: importing a long history
   twice is not idempotent yet, docs/events.md); a row repeated within the file is
   reported (``duplicate_row``) and sent once.
4. **Validation** by the stream's own contracts (:func:`core.contracts.decode`): what the worker would dead-letter
   is rejected here with the same reason code and field, and never sent.

>>> out = normalise([{"client": "c1", "when": "2026-03-01 10:00:00", "page": "home"}], kind="page_view",
...                 mapping={"user_id": "client", "ts": "when", "page_type": "page"}, tz="Europe/Berlin")
>>> out.events[0][1]["ts"], out.events[0][1]["event_id"][:4], out.rejects
(1772355600000, 'imp-', [])
>>> normalise([{"user_id": "u", "ts": "yesterday", "page_type": "home"}], kind="page_view").rejects[0][1:3]
('ts', 'invalid_ts')
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from core.contracts import KINDS, Rejection, decode

INTS = {"quantity"}
FLOATS = {"price", "amount"}
REJECT_COLUMNS = ("line", "field", "reason", "detail")


@dataclass
class Normalised:
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (line, event)
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)  # (line, field, reason, detail)

    @property
    def lines(self) -> int:
        return len(self.events) + len(self.rejects)


def parse_mapping(text: str) -> dict[str, str]:
    """``user_id=client_id,ts=created_at`` -> {event field: column}.

    >>> parse_mapping("user_id=client_id, ts=created_at")
    {'user_id': 'client_id', 'ts': 'created_at'}
    """
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in pairs if p.count("=") != 1]
    if bad:
        raise ValueError(f"a mapping is field=column pairs separated by commas, got {bad[0]!r}")
    return dict(tuple(part.strip() for part in p.split("=")) for p in pairs)  # type: ignore[misc]


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a CSV (header first), JSONL (one object per line) or Parquet file, as dicts."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            yield from csv.DictReader(f)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    try:
                        row = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        row = {"__unparsable__": line.decode(errors="replace")[:200]}
                    yield row if isinstance(row, dict) else {"__unparsable__": str(row)[:200]}
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            yield from batch.to_pylist()
    else:
        raise ValueError(f"cannot read {path.name}: use .csv, .jsonl or .parquet")


def to_ms(value: Any, ts_format: str | None, tz: ZoneInfo) -> int:
    """Epoch milliseconds (UTC) of a timestamp cell; ValueError if it is none."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, int | float) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        n = float(value)
        return int(n * 1000) if abs(n) < 1e11 else int(n)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        moment = dt.datetime.strptime(text, ts_format) if ts_format else dt.datetime.fromisoformat(text)
    else:
        raise ValueError(f"no timestamp in {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return int(moment.timestamp() * 1000)


def _event(
    row: Mapping[str, Any], kind: str | None, mapping: Mapping[str, str], ts_format: str | None, tz: ZoneInfo
) -> dict[str, Any] | tuple[str, str, str]:
    """The event dict of a row, or (field, reason, detail) of why it cannot be one."""
    sources = set(mapping.values())
    event: dict[str, Any] = {k: v for k, v in row.items() if k not in sources and v not in ("", None)}
    for name, col in mapping.items():
        if row.get(col) not in ("", None):
            event[name] = row[col]
    if "__unparsable__" in event:
        return "", "invalid_json", f"not a JSON object: {event['__unparsable__']}"
    kind = kind or event.get("type")
    if kind not in KINDS:
        return "type", "unknown_type", f"type must be one of {', '.join(KINDS)}, got {kind!r}"
    event["type"] = kind
    try:
        event["ts"] = to_ms(event.get("ts"), ts_format, tz)
    except (ValueError, TypeError, OverflowError) as exc:
        return "ts", "invalid_ts", str(exc)[:200]
    for name in INTS | FLOATS:
        if isinstance(event.get(name), str):
            try:
                event[name] = int(event[name]) if name in INTS else float(event[name])
            except ValueError:
                return name, f"invalid_{name}", f"{name} is not a number: {event[name]!r}"
    if isinstance(event.get("items"), str):
        try:
            event["items"] = orjson.loads(event["items"])
        except orjson.JSONDecodeError:
            return "items", "invalid_items", "items is not a JSON list"
    for name in ("user_id", "event_id", "session_id", "order_id", "product_id"):
        if name in event and not isinstance(event[name], str):
            event[name] = str(event[name])
    return event


def stable_id(event: Mapping[str, Any]) -> str:
    """``imp-`` and a hash of the event's content (everything but its id): the same row, the same id."""
    content = orjson.dumps({k: v for k, v in event.items() if k != "event_id"}, option=orjson.OPT_SORT_KEYS)
    return "imp-" + hashlib.blake2b(content, digest_size=12).hexdigest()


def normalise(
    rows: Iterable[Mapping[str, Any]],
    kind: str | None = None,
    mapping: Mapping[str, str] | None = None,
    ts_format: str | None = None,
    tz: str = "UTC",
    first_line: int = 2,
) -> Normalised:
    """Rows to events and rejects; ``first_line``: the file line of the first row (2 under a CSV header)."""
    out, seen, zone = Normalised(), set[str](), ZoneInfo(tz)
    for line, row in enumerate(rows, start=first_line):
        made = _event(row, kind, mapping or {}, ts_format, zone)
        if isinstance(made, tuple):
            out.rejects.append((line, *made))
            continue
        made.setdefault("event_id", stable_id(made))
        if made["event_id"] in seen:
            out.rejects.append((line, "event_id", "duplicate_row", f"event {made['event_id']} repeated in the file"))
            continue
        checked = decode(made["type"], orjson.dumps(made), None)
        if isinstance(checked, Rejection):
            out.rejects.append((line, checked.field, checked.reason, checked.detail[:200]))
            continue
        seen.add(made["event_id"])
        out.events.append((line, made))
    return out


def write_rejects(rejects: Iterable[tuple[int, str, str, str]], path: Path) -> int:
    """The reject report as CSV (line, field, reason, detail); returns its rows."""
    n = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(REJECT_COLUMNS)
        for row in rejects:
            w.writerow(row)
            n += 1
    return n
