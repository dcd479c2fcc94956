"""Point lookups of one user: latest scores (cached by the worker) and the current feature vector."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Response

from features.compute import features
from features.store import StateStore
from serving.auth import require
from serving.deps import SettingsDep, StoreDep
from serving.errors import check_user_id, invalid
from serving.schemas import Score, UserFeatures, UserScores

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[Depends(require("read"))])


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def risk(score: float, thresholds: tuple[float, float]) -> str:
    """``low`` below the first threshold, ``high`` at or above the second, ``medium`` between."""
    low, high = thresholds
    return "high" if score >= high else "medium" if score >= low else "low"


@router.get("/{user_id}/scores", response_model=UserScores, responses={404: {"description": "Unknown user"}})
async def user_scores(user_id: str, store: StoreDep, settings: SettingsDep) -> Response:
    """The latest churn and purchase scores of every model kind, with the event time of the last update."""
    check_user_id(user_id)
    (cached,) = await store.read_scores([user_id])
    if cached is None:
        raise HTTPException(404, f"unknown user {user_id!r}: no event of this user has been processed")
    out: dict[str, list[dict[str, Any]]] = {"churn": [], "purchase": []}
    for field, blob in sorted(cached.items()):
        task, kind = field.split(":", 1)
        v = orjson.loads(blob)
        out.setdefault(task, []).append(
            {
                "model_kind": kind,
                "model": v["model"],
                "version": v["version"],
                "score": v["score"],
                "risk": risk(v["score"], settings.api_risk_thresholds),
                "as_of_ms": v["as_of_ms"],
                "as_of": iso(v["as_of_ms"]),
            }
        )
    # the hot path: serialized directly (the response model documents the shape)
    return Response(orjson.dumps({"user_id": user_id, "scores": out}), media_type="application/json")


async def current_features(store: StateStore, user_id: str, as_of_ms: int | None) -> tuple[int, dict[str, float]]:
    """(as_of, features) from the user's state in the store; 404 if unknown, 422 if as_of precedes the last event."""
    (state,) = await store.read_states([user_id])
    if state is None:
        raise HTTPException(404, f"unknown user {user_id!r}: no event of this user has been processed")
    if as_of_ms is None:
        as_of_ms = state.last_ms
    elif as_of_ms < state.last_ms:
        raise invalid(
            ["query", "as_of_ms"],
            f"as_of_ms must not precede the user's last event ({state.last_ms}); "
            "for the past, use `churnstream features build`",
            "as_of_too_early",
        )
    return as_of_ms, features(state, as_of_ms)


@router.get("/{user_id}/features", response_model=UserFeatures, responses={404: {"description": "Unknown user"}})
async def user_features(
    user_id: str,
    store: StoreDep,
    as_of_ms: int | None = Query(
        None, ge=0, le=32_503_680_000_000, description="Default: the user's last event time (what the stream scored)"
    ),
) -> dict[str, Any]:
    """The feature vector from the user's state in Redis, computed by the same function as the stream's."""
    check_user_id(user_id)
    as_of, vector = await current_features(store, user_id, as_of_ms)
    return {"user_id": user_id, "as_of_ms": as_of, "as_of": iso(as_of), "features": vector}


__all__ = ["Score", "current_features", "iso", "risk", "router"]
