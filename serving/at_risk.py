"""The at-risk list: users at or above a score, by their latest score's as-of, from ClickHouse ``latest_scores``.

One query and one row shape for every way out: ``GET /v1/at-risk``, ``churnstream export at-risk`` and the
scheduled exports (:mod:`serving.exports_job`).

>>> csv_chunks(iter([("u1", "churn", "pretrained", "xgboost", "v1", 0.9, "high", "at_risk", 0, "x", "time", 0)]))[:1]
['user_id,task,model_kind,model,version,score,risk,status,as_of_ms,as_of,trigger,last_event_ms\\n']
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from serving.status import iso, risk, status

COLUMNS = (
    "user_id", "task", "model_kind", "model", "version", "score", "risk", "status",
    "as_of_ms", "as_of", "trigger", "last_event_ms",
)  # fmt: skip
# the latest score per (user, task, model kind) by as-of; the churn score beside it decides the status
_SCORES = """
SELECT user_id, model, model_version, score, toUnixTimestamp64Milli(as_of) AS as_of_ms, trigger,
       toUnixTimestamp64Milli(event_ts) AS last_event_ms
FROM latest_scores FINAL
WHERE task = {task:String} AND model_kind = {kind:String} AND score >= {min_score:Float64}
"""
QUERY = {
    "churn": f"SELECT *, score AS churn FROM ({_SCORES}) ORDER BY score DESC, user_id LIMIT {{limit:UInt64}}",
    "purchase": f"""
SELECT s.*, c.score AS churn FROM ({_SCORES}) AS s
LEFT JOIN (SELECT user_id, score FROM latest_scores FINAL WHERE task = 'churn' AND model_kind = {{kind:String}}) AS c
    ON s.user_id = c.user_id
ORDER BY s.score DESC, s.user_id LIMIT {{limit:UInt64}}
SETTINGS join_use_nulls = 1""",
}
LIST_AS_OF = """
SELECT toUnixTimestamp64Milli(max(as_of)), count() FROM latest_scores
WHERE task = {task:String} AND model_kind = {kind:String}
"""


def list_as_of(client: Any, task: str, kind: str) -> int | None:
    """The as-of of the list: the latest as-of among the task's scores of ``kind`` (every user's score is at most
    this recent; each row carries its own); None when there is no score yet."""
    ((ms, n),) = client.query(LIST_AS_OF, parameters={"task": task, "kind": kind}).result_rows
    return int(ms) if n else None


def as_of_headers(as_of_ms: int | None) -> dict[str, str]:
    return {} if as_of_ms is None else {"X-Scores-As-Of": iso(as_of_ms), "X-Scores-As-Of-Ms": str(as_of_ms)}


def rows(
    client: Any, task: str, kind: str, min_score: float, limit: int, thresholds: tuple[float, float]
) -> Iterator[tuple[Any, ...]]:
    """The list's rows in :data:`COLUMNS` order, highest score first, streamed block by block."""
    params = {"task": task, "kind": kind, "min_score": min_score, "limit": limit}
    with client.query_row_block_stream(QUERY[task], parameters=params) as stream:
        for block in stream:
            for user_id, model, version, score, as_of, trigger, last, churn in block:
                s = status(as_of, last, churn, thresholds)
                yield (user_id, task, kind, model, version, score, risk(score, thresholds), s,
                       as_of, iso(as_of), trigger, last)  # fmt: skip


def csv_chunks(rows: Iterator[tuple[Any, ...]], every: int = 5000) -> list[str]:
    """The CSV text (header first) in chunks of ``every`` rows; see :func:`iter_csv` for a lazy version."""
    return list(iter_csv(rows, every))


def iter_csv(rows: Iterator[tuple[Any, ...]], every: int = 5000) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield out.getvalue()
    out.seek(0)
    out.truncate()
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % every == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue()
