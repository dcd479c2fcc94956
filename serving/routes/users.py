"""Point lookups of one user: latest scores (cached by the worker, or as of now on demand) and the current feature
vector."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Response

from features.compute import features
from features.store import StateStore
from serving.auth import require
from serving.deps import CatalogDep, SettingsDep, StoreDep
from serving.errors import check_user_id, invalid
from serving.on_demand import score_now
from serving.schemas import Score, UserFeatures, UserScores
from serving.status import cached_scores, iso, risk

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[Depends(require("read"))])


@router.get(
    "/{user_id}/scores",
    response_model=UserScores,
    responses={404: {"description": "Unknown user"}, 409: {"description": "as_of=now: a task has no champion"}},
)
async def user_scores(
    user_id: str,
    store: StoreDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    as_of: Literal["now"] | None = Query(
        None,
        description="Default: the latest scores the worker wrote (at an event or a time rescoring). `now`: score "
        "the user's state as of the wall clock with each task's champion (trigger `on_demand`, not billed)",
    ),
) -> Response:
    """The latest churn and purchase scores of every model kind: each with its as-of, trigger and the user's status
    then (``lapsed`` after 60 quiet days, else ``at_risk`` at a high churn score, else ``active``)."""
    check_user_id(user_id)
    thresholds = settings.api_risk_thresholds
    if as_of == "now":
        (state,) = await store.read_states([user_id])
        if state is None:
            raise HTTPException(404, f"unknown user {user_id!r}: no event of this user has been processed")
        out = await score_now(state, catalog, thresholds)
    else:
        (cached,) = await store.read_scores([user_id])
        if cached is None:
            raise HTTPException(404, f"unknown user {user_id!r}: no event of this user has been processed")
        out = cached_scores(cached, thresholds)
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
