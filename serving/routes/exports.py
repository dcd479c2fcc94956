"""Lists for CRM and call-centre teams: users at or above their latest score by as-of, streamed from ClickHouse
``latest_scores``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from core.contracts import MAX_TS_MS
from serving.at_risk import COLUMNS, as_of_headers, iter_csv, list_as_of, rows
from serving.auth import require
from serving.deps import ClickHouseDep, SettingsDep
from serving.exports_job import ExportRecord, ExportSpec, record
from serving.schemas import Task

router = APIRouter(prefix="/v1", tags=["exports"], dependencies=[Depends(require("read"))])


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
    headers = as_of_headers(list_as_of(clickhouse, task, model_kind))
    listed = rows(clickhouse, task, model_kind, min_score, limit, settings.api_risk_thresholds)

    def as_json() -> Iterator[bytes]:
        yield b"["
        for n, row in enumerate(listed):
            yield (b"," if n else b"") + orjson.dumps(dict(zip(COLUMNS, row, strict=True)))
        yield b"]"

    if format == "json":
        return StreamingResponse(as_json(), media_type="application/json", headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="at-risk-{task}.csv"'
    return StreamingResponse(iter_csv(listed), media_type="text/csv", headers=headers)


class ExportReport(BaseModel):
    """An export a client made from ``GET /v1/at-risk`` (``churnstream export at-risk`` through the API)."""

    task: Task
    min_score: float = Field(ge=0, le=1)
    limit: int = Field(ge=1, le=10_000_000)
    model_kind: Literal["pretrained", "online"]
    destination: str = Field(max_length=4096, description="where the client wrote the list")
    rows: int = Field(ge=0, le=10_000_000)
    sha256: str = Field("", max_length=64)
    started_ms: int = Field(ge=0, le=MAX_TS_MS)
    as_of_ms: int | None = Field(None, ge=0, le=MAX_TS_MS)


@router.post("/exports")
async def report_export(report: ExportReport, clickhouse: ClickHouseDep) -> dict[str, str]:
    """Record an export of the at-risk list in ClickHouse ``exports`` (kind ``api``); returns its id."""
    spec = ExportSpec(report.task, report.min_score, report.limit, report.model_kind)
    rec = ExportRecord(uuid.uuid4().hex, "api", report.destination, spec, report.rows, report.as_of_ms,
                       report.started_ms, time.time_ns() // 1_000_000, report.sha256)  # fmt: skip
    await run_in_threadpool(record, clickhouse, rec)
    return {"export_id": rec.export_id}
