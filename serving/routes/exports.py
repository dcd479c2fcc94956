"""Lists for CRM and call-centre teams: users at or above a score, streamed from ClickHouse ``latest_scores``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from serving.auth import require
from serving.deps import ServicesDep, SettingsDep
from serving.routes.users import risk
from serving.schemas import Task

router = APIRouter(prefix="/v1", tags=["exports"], dependencies=[Depends(require("read"))])

COLUMNS = ("user_id", "task", "model_kind", "model", "version", "score", "risk", "event_ts")
QUERY = """
SELECT user_id, model, model_version, score, toUnixTimestamp64Milli(event_ts)
FROM latest_scores FINAL
WHERE task = {task:String} AND model_kind = {kind:String} AND score >= {min_score:Float64}
ORDER BY score DESC, user_id
LIMIT {limit:UInt64}
"""


@router.get(
    "/at-risk",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}, "description": ", ".join(COLUMNS)}},
)
def at_risk(
    services: ServicesDep,
    settings: SettingsDep,
    task: Task = Query("churn"),
    min_score: float = Query(0.8, ge=0, le=1),
    limit: int = Query(100_000, ge=1, le=10_000_000),
    model_kind: Literal["pretrained", "online"] = Query("pretrained"),
    format: Literal["csv", "json"] = Query("csv"),
) -> StreamingResponse:
    """Users whose latest score is at least ``min_score``, highest first; streamed block by block.

    ``json`` is one JSON array written element by element, so neither side holds the whole list.
    """
    thresholds = settings.api_risk_thresholds
    params = {"task": task, "kind": model_kind, "min_score": min_score, "limit": limit}
    stream = services.clickhouse().query_row_block_stream(QUERY, parameters=params)

    def rows() -> Iterator[tuple[Any, ...]]:
        with stream:
            for block in stream:
                for user_id, model, version, score, ts in block:
                    yield (user_id, task, model_kind, model, version, score, risk(score, thresholds), ts)

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
        return StreamingResponse(as_json(), media_type="application/json")
    return StreamingResponse(
        as_csv(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="at-risk-{task}.csv"'}
    )
