"""Lists for CRM and call-centre teams: users at or above their latest score by as-of, streamed from ClickHouse
``latest_scores``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from serving.auth import require
from serving.deps import ClickHouseDep, SettingsDep
from serving.schemas import Task
from serving.status import iso, risk, status

router = APIRouter(prefix="/v1", tags=["exports"], dependencies=[Depends(require("read"))])

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


def list_as_of(client: Any, task: str, kind: str) -> dict[str, str]:
    """Headers with the as-of of the list: the latest as-of among the task's scores of ``kind`` (every user's
    score is at most this recent; each row carries its own); none when there is no score yet."""
    ((ms, n),) = client.query(LIST_AS_OF, parameters={"task": task, "kind": kind}).result_rows
    return {"X-Scores-As-Of": iso(ms), "X-Scores-As-Of-Ms": str(ms)} if n else {}


@router.get(
    "/at-risk",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}, "application/json": {}},
            "description": ", ".join(COLUMNS),
            "headers": {
                "X-Scores-As-Of": {"description": "The as-of of the list (ISO-8601 UTC): the latest as-of among "
                                   "the task's scores; absent when there is none", "schema": {"type": "string"}},
                "X-Scores-As-Of-Ms": {"description": "The same in epoch ms", "schema": {"type": "integer"}},
            },
        }
    },
)  # fmt: skip
def at_risk(
    clickhouse: ClickHouseDep,
    settings: SettingsDep,
    task: Task = Query("churn"),
    min_score: float = Query(0.8, ge=0, le=1),
    limit: int = Query(100_000, ge=1, le=10_000_000),
    model_kind: Literal["pretrained", "online"] = Query("pretrained"),
    format: Literal["csv", "json"] = Query("csv"),
) -> StreamingResponse:
    """Users whose latest score (by as-of: an event's or a time rescoring's) is at least ``min_score``, highest
    first, each with its as-of, trigger and the user's status then; streamed block by block.

    The as-of of the list is in the ``X-Scores-As-Of`` header in both formats (it is known before the first row,
    and the body stays a plain CSV table or JSON array). ``json`` is one JSON array written element by element,
    so neither side holds the whole list.
    """
    thresholds = settings.api_risk_thresholds
    headers = list_as_of(clickhouse, task, model_kind)
    params = {"task": task, "kind": model_kind, "min_score": min_score, "limit": limit}
    stream = clickhouse.query_row_block_stream(QUERY[task], parameters=params)

    def rows() -> Iterator[tuple[Any, ...]]:
        with stream:
            for block in stream:
                for user_id, model, version, score, as_of, trigger, last, churn in block:
                    s = status(as_of, last, churn, thresholds)
                    yield (user_id, task, model_kind, model, version, score, risk(score, thresholds), s,
                           as_of, iso(as_of), trigger, last)  # fmt: skip

    def as_csv() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for n, row in enumerate(rows(), 1):
            writer.writerow(row)
            if n % 5000 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    def as_json() -> Iterator[bytes]:
        yield b"["
        for n, row in enumerate(rows()):
            yield (b"," if n else b"") + orjson.dumps(dict(zip(COLUMNS, row, strict=True)))
        yield b"]"

    if format == "json":
        return StreamingResponse(as_json(), media_type="application/json", headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="at-risk-{task}.csv"'
    return StreamingResponse(as_csv(), media_type="text/csv", headers=headers)
