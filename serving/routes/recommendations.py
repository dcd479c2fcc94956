"""Recommendations: a user's top items, feedback on what was shown, and the admin's blend settings."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from models.recommend_store import RecSettings
from serving.auth import require
from serving.deps import ClickHouseDep, RecommendationsDep, ServicesDep
from serving.errors import check_user_id
from serving.schemas import Feedback, Recommendations, RecommendationSettings

router = APIRouter(prefix="/v1", tags=["recommendations"])
FEEDBACK_COLUMNS = ["feedback_id", "user_id", "item_id", "action", "variant", "model_version"]


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    dependencies=[Depends(require("read"))],
    responses={404: {"description": "Unknown user"}, 409: {"description": "No recommender trained yet"}},
)
async def user_recommendations(
    user_id: str, service: RecommendationsDep, k: int = Query(10, ge=1, le=50)
) -> dict[str, Any]:
    """The user's top-``k`` items: CF candidates from the daily job blended with their live category affinity,
    never an item they bought, none below the admin's ``min_score``."""
    check_user_id(user_id)
    try:
        answer = await service.recommend(user_id, k)
    except LookupError as exc:
        raise HTTPException(409, str(exc)) from exc
    if answer is None:
        raise HTTPException(404, f"unknown user {user_id!r}: no event of this user has been processed")
    return answer


@router.post(
    "/recommendations/feedback",
    status_code=202,
    dependencies=[Depends(require("write"))],
    responses={503: {"description": "ClickHouse unavailable"}},
)
async def feedback(
    body: Feedback, service: RecommendationsDep, clickhouse: ClickHouseDep, services: ServicesDep
) -> dict[str, str]:
    """Record that an item was shown, clicked, ignored or bought (ClickHouse ``recommendation_feedback``); a
    ``bought`` item is not recommended to the user again."""
    check_user_id(body.user_id)
    fid = body.feedback_id or uuid.uuid4().hex
    row = [fid, body.user_id, body.item_id, body.action, body.variant, body.model_version]
    try:
        await asyncio.to_thread(
            clickhouse.insert,
            "recommendation_feedback",
            [row],
            column_names=FEEDBACK_COLUMNS,
            settings={"insert_deduplication_token": f"feedback:{fid}"},
        )
    except Exception as exc:  # the client's error types differ between chDB and a server
        services.reset_clickhouse()
        raise HTTPException(503, f"ClickHouse did not take the feedback ({type(exc).__name__}); retry it") from exc
    if body.action == "bought":
        await service.store.bought(body.user_id, body.item_id)
    return {"feedback_id": fid}


@router.get(
    "/admin/recommendations",
    response_model=RecommendationSettings,
    dependencies=[Depends(require("admin"))],
    tags=["admin"],
)
async def get_settings(service: RecommendationsDep) -> dict[str, float]:
    """The recommendations' settings in force (admin)."""
    return (await service.store.settings()).__dict__


@router.put(
    "/admin/recommendations",
    response_model=RecommendationSettings,
    dependencies=[Depends(require("admin"))],
    tags=["admin"],
)
async def put_settings(body: RecommendationSettings, service: RecommendationsDep) -> dict[str, float]:
    """Set the blend weight, the minimum score and the popularity holdout's share (admin); the next answer uses
    them."""
    return (await service.store.set_settings(RecSettings(**body.model_dump()))).__dict__
