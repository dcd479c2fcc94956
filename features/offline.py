"""Offline builder: point-in-time features for any list of (user_id, as_of) from history.

Two passes, both through the same code as the stream:
1. *acceptance*: records in arrival order go through :func:`core.contracts.decode` and
   :func:`features.state.apply`, exactly as the worker sees them, which drops malformed records, producer
   retries and ``too_late`` events. The ClickHouse ``events`` table already holds only accepted events.
2. *point in time*: for each query, the user's accepted events with ``ts <= as_of`` are folded into a fresh
   state, and :func:`features.compute.features` gives the vector. Nothing after ``as_of`` is seen.

>>> recs = [("page_view", b'{"event_id":"a","user_id":"u","ts":1000,"page_type":"home"}'),
...         ("page_view", b'{"event_id":"a","user_id":"u","ts":1000,"page_type":"home"}'),   # retry
...         ("page_view", b'not json')]
>>> accepted = accept(recs)
>>> [f["page_views_7d"] for f in build(accepted, [("u", 1000), ("u", 999), ("nobody", 1000)])]
[1.0, 0.0, 0.0]
"""

from __future__ import annotations

import bisect
import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from core.contracts import Event, Rejection, decode, parse_ts
from features.compute import features
from features.state import UserState, apply

Accepted = dict[str, list[Event]]  # user_id -> accepted events, sorted by ts


def accept(records: Iterable[tuple[str, bytes] | tuple[str, bytes, int | None]]) -> Accepted:
    """Pass 1: (kind, raw bytes[, broker timestamp ms]) in arrival order -> each user's accepted events, by time.

    Without a broker timestamp the ``ts_in_future`` check cannot apply, as in a file of history.
    """
    states: dict[str, UserState] = {}
    out: defaultdict[str, list[Event]] = defaultdict(list)
    for kind, raw, *broker_ts in records:
        ev = decode(kind, raw, broker_ts[0] if broker_ts else None)
        if isinstance(ev, Rejection):
            continue
        state = states.get(ev.user_id)
        if state is None:
            state = states[ev.user_id] = UserState()
        if apply(state, ev) == "applied":
            out[ev.user_id].append(ev)
    for events in out.values():
        events.sort(key=lambda e: e.ts_ms)
    return dict(out)


def state_at(events: Sequence[Event], as_of_ms: int) -> UserState:
    """A fresh state from the events (sorted by ts) up to and including ``as_of_ms``."""
    state = UserState()
    for ev in events[: bisect.bisect_right(events, as_of_ms, key=lambda e: e.ts_ms)]:
        apply(state, ev)
    return state


def build(accepted: Accepted, queries: Iterable[tuple[str, int]]) -> list[dict[str, float]]:
    """Pass 2: the feature vector for each (user_id, as_of_ms), in query order."""
    out = []
    for user_id, as_of_ms in queries:
        out.append(features(state_at(accepted.get(user_id, []), as_of_ms), as_of_ms))
    return out


def latest(accepted: Accepted) -> dict[str, int]:
    """Each user's latest event time: the as_of the stream uses for that user's current features."""
    return {u: max(e.ts_ms for e in events) for u, events in accepted.items() if events}


# ---- sources ---------------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[tuple[str, bytes]]:
    """(kind, raw) from a JSONL file whose events carry ``type``; lines without a usable type are skipped."""
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            try:
                kind = orjson.loads(line).get("type")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(kind, str):
                yield kind, line


def read_csv(path: Path) -> Iterator[tuple[str, bytes]]:
    """(kind, raw) from a CSV with a header naming the event fields (``items`` as a JSON string)."""
    numeric = {"ts", "quantity", "price", "amount"}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            event: dict[str, Any] = {}
            for k, v in row.items():
                if v in ("", None):
                    continue
                if k == "items":
                    event[k] = orjson.loads(v)
                elif k in numeric:
                    event[k] = int(v) if v.lstrip("-").isdigit() else float(v)
                else:
                    event[k] = v
            yield str(event.get("type", "")), orjson.dumps(event)


EXPORT_COLUMNS = "user_id, event_type, event_id, ts, product_id, action, amount, category, items"


def read_clickhouse(client: Any, user_ids: Sequence[str] | None = None, source: str = "events FINAL") -> Accepted:
    """Accepted events from the ClickHouse ``events`` table (one row per event after FINAL), or from ``source``,
    another table expression with the :data:`EXPORT_COLUMNS` (a file the worker exported: ``file(path, Native)``)."""
    where = "WHERE user_id IN {users:Array(String)}" if user_ids is not None else ""
    rows = client.query(
        "SELECT user_id, event_type, event_id, toUnixTimestamp64Milli(ts), product_id != '', action, amount, "
        f"category, items FROM {source} {where} ORDER BY user_id, ts",
        parameters={"users": list(user_ids)} if user_ids is not None else None,
    ).result_rows
    out: defaultdict[str, list[Event]] = defaultdict(list)
    for user_id, kind, event_id, ts_ms, product_view, action, amount, category, items in rows:
        if kind == "purchase":
            categories = tuple(i["category"] for i in orjson.loads(items or "[]") if i.get("category"))
        else:
            categories = (category,) if category else ()
        out[user_id].append(
            Event(
                kind,
                event_id,
                user_id,
                int(ts_ms),
                product_view=bool(product_view) and kind == "page_view",
                cart_add=action == "add",
                cart_remove=action == "remove",
                revenue_cents=round(amount * 100) if kind == "purchase" else 0,
                categories=categories,
            )
        )
    return dict(out)


def read_queries(path: Path) -> list[tuple[str, int]]:
    """(user_id, as_of_ms) from a CSV with columns ``user_id,as_of`` (epoch ms or ISO-8601 with a zone)."""
    out = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            raw = row["as_of"].strip()
            as_of = parse_ts(int(raw) if raw.lstrip("-").isdigit() else raw)
            if isinstance(as_of, Rejection):
                raise ValueError(f"{path}:{i}: {as_of.detail}")
            out.append((row["user_id"], as_of))
    return out


def write_csv(path: Path, queries: Sequence[tuple[str, int]], rows: Sequence[dict[str, float]]) -> None:
    from features.compute import FEATURE_NAMES

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "as_of_ms", *FEATURE_NAMES])
        for (user_id, as_of), feats in zip(queries, rows, strict=True):
            w.writerow([user_id, as_of, *(repr(feats[n]) for n in FEATURE_NAMES)])
