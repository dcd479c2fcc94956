"""How a user's risk evolved: their latest score of each UTC day, from ClickHouse ``user_scores_daily`` (one row
per user, task, model kind and day, written by a materialized view over ``predictions``; read with ``FINAL``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from serving.auth import require
from serving.deps import ClickHouseDep, SettingsDep
from serving.errors import check_user_id, invalid
from serving.schemas import Task, UserHistory
from serving.status import iso, risk, status

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[Depends(require("read"))])

# the task's days and the churn scores beside them (a user's status is judged by churn)
QUERY = """
SELECT task, toString(day), toUnixTimestamp64Milli(as_of), trigger, toUnixTimestamp64Milli(last_event_ts),
       model, model_version, score
FROM user_scores_daily FINAL
WHERE user_id = {user:String} AND model_kind = {kind:String} AND task IN ({task:String}, 'churn')
  AND day BETWEEN {since:Date} AND {until:Date}
ORDER BY day
"""
ANY_DAY = "SELECT count() FROM user_scores_daily WHERE user_id = {user:String} AND model_kind = {kind:String}"
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 1), dt.date(2149, 6, 6)  # ClickHouse Date's range


def daily(rows: Iterable[tuple[Any, ...]], task: str, thresholds: tuple[float, float]) -> list[dict[str, Any]]:
    """The task's rows as served days, each with the status its churn score of that day gives.

    >>> day = 86_400_000
    >>> rows = [("churn", "1970-01-11", 11 * day - 1, "event", 10 * day, "xgboost", "v1", 0.9),
    ...         ("purchase", "1970-01-11", 11 * day - 1, "event", 10 * day, "xgboost", "v1", 0.1),
    ...         ("purchase", "1970-03-12", 71 * day - 1, "time", 10 * day, "xgboost", "v1", 0.0)]
    >>> [(d["day"], d["status"]) for d in daily(rows, "purchase", (0.3, 0.7))]
    [('1970-01-11', 'at_risk'), ('1970-03-12', 'lapsed')]
    """
    rows = list(rows)
    churn = {day: score for t, day, *_, score in rows if t == "churn"}
    return [
        {
            "day": day,
            "as_of_ms": as_of,
            "as_of": iso(as_of),
            "trigger": trigger,
            "last_event_ms": last,
            "model": model,
            "version": version,
            "score": score,
            "risk": risk(score, thresholds),
            "status": status(as_of, last, churn.get(day), thresholds),
        }
        for t, day, as_of, trigger, last, model, version, score in rows
        if t == task
    ]


@router.get("/{user_id}/history", response_model=UserHistory, responses={404: {"description": "No daily scores"}})
def user_history(
    user_id: str,
    clickhouse: ClickHouseDep,
    settings: SettingsDep,
    task: Task = Query("churn"),
    model_kind: Literal["pretrained", "online"] = Query("pretrained"),
    since: dt.date | None = Query(None, description="First UTC day (default: the first with a score)"),
    until: dt.date | None = Query(None, description="Last UTC day (default: the latest with a score)"),
) -> dict[str, Any]:
    """The user's latest score of each UTC day (event-triggered or a time rescoring), oldest first, with its
    as-of, the user's latest event then, and their status that day: for BI charts of how risk evolved."""
    check_user_id(user_id)
    if since and until and since > until:
        raise invalid(["query", "since"], "since must not be after until", "value_error")
    # within Date's range (chDB saturates dates beyond it; clamped here so that no server has to)
    since, until = (min(max(d, FIRST_DAY), LAST_DAY) for d in (since or FIRST_DAY, until or LAST_DAY))
    params = {"user": user_id, "kind": model_kind, "task": task, "since": since, "until": until}
    days = daily(clickhouse.query(QUERY, parameters=params).result_rows, task, settings.api_risk_thresholds)
    if not days and not clickhouse.query(ANY_DAY, parameters=params).result_rows[0][0]:
        raise HTTPException(404, f"no daily scores of user {user_id!r} ({model_kind})")
    return {"user_id": user_id, "task": task, "model_kind": model_kind, "days": days}
