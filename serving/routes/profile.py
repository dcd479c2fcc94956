"""Who a user is: their RFM segment (written by the worker beside the scores) and priority categories (from the
state)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query

from features.interest import KEPT, top
from serving.auth import require
from serving.deps import SettingsDep, StoreDep
from serving.errors import check_user_id
from serving.schemas import UserCategories, UserSegment
from serving.status import iso
from streams.segments import SEGMENT_FIELD

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[Depends(require("read"))])


def unknown(user_id: str) -> HTTPException:
    return HTTPException(404, f"unknown user {user_id!r}: no event of this user has been processed")


@router.get("/{user_id}/segment", response_model=UserSegment, responses={404: {"description": "Unknown user"}})
async def user_segment(user_id: str, store: StoreDep) -> dict[str, Any]:
    """The RFM segment at the user's latest score (an event or a day end). ``segment`` is null until the worker
    has cut the first RFM boundaries (within ``CHURNSTREAM_SEGMENTS_CHECK_S`` of the first events)."""
    check_user_id(user_id)
    (cached,) = await store.read_scores([user_id])
    if cached is None:
        raise unknown(user_id)
    if (blob := cached.get(SEGMENT_FIELD)) is None:
        return {"user_id": user_id, "segment": None}
    s = orjson.loads(blob)
    return {"user_id": user_id, **s, "as_of": iso(s["as_of_ms"])}


@router.get("/{user_id}/categories", response_model=UserCategories, responses={404: {"description": "Unknown user"}})
async def user_categories(
    user_id: str,
    store: StoreDep,
    settings: SettingsDep,
    k: int = Query(3, ge=1, le=KEPT, description=f"How many categories (at most the {KEPT} kept per user)"),
) -> dict[str, Any]:
    """The user's top-``k`` categories by recency-weighted interest (views, cart events and purchased items, halving
    every ``CHURNSTREAM_CATEGORY_HALF_LIFE_DAYS`` of event time), decayed to their latest such event."""
    check_user_id(user_id)
    (state,) = await store.read_states([user_id])
    if state is None:
        raise unknown(user_id)
    half_life = settings.category_half_life_days
    ranked = top(state.interest, state.interest_ms, state.interest_ms, KEPT, half_life)
    total = sum(v for _, v in ranked) or 1.0
    return {
        "user_id": user_id,
        "as_of_ms": state.interest_ms,
        "as_of": iso(state.interest_ms),
        "half_life_days": half_life,
        "categories": [{"category": c, "interest": v, "share": round(v / total, 4)} for c, v in ranked[:k]],
    }
