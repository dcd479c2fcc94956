"""What every served score says about time: when it was computed (``as_of``), why (``trigger``), the user's latest
event at that time, and the user's ``status`` then.

A user's status as of a score is

- ``lapsed`` when they had been quiet for :data:`core.days.LAPSE_DAYS` days or more (:func:`core.days.lapsed`);
- else ``at_risk`` when the churn score of the same model kind is at or above the high risk threshold
  (``CHURNSTREAM_API_RISK_THRESHOLDS``, the ``high`` band of :func:`risk`);
- else ``active``.

A purchase score has the status of its user, so it is judged by the churn score beside it.

>>> day = 86_400_000
>>> status(as_of_ms=70 * day, last_event_ms=10 * day, churn=0.1, thresholds=(0.3, 0.7))
'lapsed'
>>> status(as_of_ms=69 * day, last_event_ms=10 * day, churn=0.7, thresholds=(0.3, 0.7))
'at_risk'
>>> status(as_of_ms=69 * day, last_event_ms=10 * day, churn=0.69, thresholds=(0.3, 0.7))
'active'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from core.days import lapsed
from core.tasks import TASKS

Status = Literal["active", "at_risk", "lapsed"]
Trigger = Literal["event", "time", "on_demand"]


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC.

    >>> iso(1_792_000_000_123)
    '2026-10-14T17:46:40.123Z'
    """
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def risk(score: float, thresholds: tuple[float, float]) -> str:
    """``low`` below the first threshold, ``high`` at or above the second, ``medium`` between.

    >>> [risk(s, (0.3, 0.7)) for s in (0.29, 0.3, 0.7)]
    ['low', 'medium', 'high']
    """
    low, high = thresholds
    return "high" if score >= high else "medium" if score >= low else "low"


def status(as_of_ms: int, last_event_ms: int, churn: float | None, thresholds: tuple[float, float]) -> Status:
    """The user's status at ``as_of_ms``, given their latest event then and their churn score (None: unknown)."""
    if lapsed(as_of_ms, last_event_ms):
        return "lapsed"
    return "at_risk" if churn is not None and churn >= thresholds[1] else "active"


def entry(
    kind: str,
    model: str,
    version: str,
    score: float,
    as_of_ms: int,
    trigger: str,
    last_event_ms: int,
    thresholds: tuple[float, float],
) -> dict[str, Any]:
    """One served score, without its status (see :func:`with_status`)."""
    return {
        "model_kind": kind,
        "model": model,
        "version": version,
        "score": score,
        "risk": risk(score, thresholds),
        "as_of_ms": as_of_ms,
        "as_of": iso(as_of_ms),
        "trigger": trigger,
        "last_event_ms": last_event_ms,
    }


def with_status(scores: dict[str, list[dict[str, Any]]], thresholds: tuple[float, float]) -> dict[str, Any]:
    """Set each score's ``status`` from its as-of, its user's latest event and the churn score of its model kind."""
    churn = {s["model_kind"]: s["score"] for s in scores.get("churn", [])}
    for task_scores in scores.values():
        for s in task_scores:
            s["status"] = status(s["as_of_ms"], s["last_event_ms"], churn.get(s["model_kind"]), thresholds)
    return scores


def cached_scores(cached: Mapping[str, bytes], thresholds: tuple[float, float]) -> dict[str, list[dict[str, Any]]]:
    """The worker's score cache (field ``<task>:<kind>`` -> JSON) as served scores, by task.

    Entries written before scores followed time lack ``trigger`` and ``last_event_ms``: they were scored at an
    event, so the trigger is ``event`` and the latest event is the as-of.

    >>> old = orjson.dumps({"score": 0.8, "model": "xgboost", "version": "v1", "as_of_ms": 0})
    >>> new = orjson.dumps({"score": 0.2, "model": "online:logreg", "version": "3", "as_of_ms": 70 * 86_400_000,
    ...                     "trigger": "time", "last_event_ms": 5 * 86_400_000})
    >>> out = cached_scores({"churn:pretrained": old, "churn:online": new}, (0.3, 0.7))
    >>> [(s["model_kind"], s["trigger"], s["last_event_ms"], s["status"]) for s in out["churn"]]
    [('online', 'time', 432000000, 'lapsed'), ('pretrained', 'event', 0, 'at_risk')]
    >>> out["purchase"]
    []
    """
    out: dict[str, list[dict[str, Any]]] = {"churn": [], "purchase": []}
    for field, blob in sorted(cached.items()):
        task, kind = field.split(":", 1)
        if task not in TASKS:  # the segment beside the scores (streams.segments)
            continue
        v = orjson.loads(blob)
        as_of = v["as_of_ms"]
        row = entry(
            kind,
            v["model"],
            v["version"],
            v["score"],
            as_of,
            v.get("trigger", "event"),
            v.get("last_event_ms", as_of),
            thresholds,
        )
        out.setdefault(task, []).append(row)
    return with_status(out, thresholds)
