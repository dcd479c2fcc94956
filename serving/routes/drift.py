"""Drift: the alert thresholds every worker applies (admin) and the alerts raised (ClickHouse ``alerts``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from models.alerts import Thresholds
from serving.auth import require
from serving.deps import ClickHouseDep, ThresholdsDep
from serving.schemas import Alert, DriftThresholds

router = APIRouter(prefix="/v1", tags=["drift"])

ALERTS = """
SELECT alert_id, toUnixTimestamp64Milli(raised_at), task, model, version, feature, statistic, value, threshold,
       level, toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end)
FROM alerts FINAL ORDER BY raised_at DESC, alert_id LIMIT {limit:UInt32}"""


@router.get(
    "/admin/drift-thresholds",
    response_model=DriftThresholds,
    dependencies=[Depends(require("admin"))],
    tags=["admin"],
)
async def get_thresholds(store: ThresholdsDep) -> dict[str, float]:
    """The drift alert thresholds in force (admin)."""
    return (await store.get()).__dict__


@router.put(
    "/admin/drift-thresholds",
    response_model=DriftThresholds,
    dependencies=[Depends(require("admin"))],
    tags=["admin"],
)
async def set_thresholds(body: DriftThresholds, store: ThresholdsDep) -> dict[str, float]:
    """Set the drift alert thresholds (admin); every worker applies them within ``CHURNSTREAM_DRIFT_CHECK_S``.
    A new ``adwin_delta`` starts the loss detectors again."""
    return (await store.set(Thresholds(**body.model_dump()))).__dict__


@router.get("/alerts", response_model=list[Alert], dependencies=[Depends(require("read"))])
def list_alerts(clickhouse: ClickHouseDep, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    """The latest drift alerts, newest first (PSI of a feature or the score, ADWIN on a model's loss)."""
    names = list(Alert.model_fields)
    rows = clickhouse.query(ALERTS, parameters={"limit": limit}).result_rows
    return [dict(zip(names, row, strict=True)) for row in rows]
