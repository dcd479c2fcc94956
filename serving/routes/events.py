"""Event ingest over HTTP for apps without a Kafka client."""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import KafkaException
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from serving.auth import require
from serving.deps import ServicesDep, SettingsDep
from serving.ingest import validate
from serving.routes.scoring import read_body
from serving.schemas import Accepted

router = APIRouter(prefix="/v1", tags=["events"])

_EVENT = {"type": "object", "required": ["type", "event_id", "user_id", "ts"], "description": "See docs/events.md"}


@router.post(
    "/events",
    status_code=202,
    response_model=Accepted,
    dependencies=[Depends(require("write"))],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [_EVENT, {"type": "array", "items": _EVENT}]}}},
        }
    },
    responses={413: {"description": "Body or batch too large"}, 503: {"description": "Kafka unavailable"}},
)
async def post_events(request: Request, services: ServicesDep, settings: SettingsDep) -> Any:
    """Validate one event or a batch with the stream's contracts and produce them to Kafka (idempotent producer).

    All or nothing: if any event is invalid, none is produced, and the 422 lists every error with its index,
    field and reason code. A 202 means the broker has acknowledged every event.
    """
    body = await read_body(request, settings.api_max_body_bytes)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(422, [{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "invalid_json"}]) from exc
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        raise HTTPException(422, [{"loc": ["body"], "msg": "no events", "type": "missing_field"}])
    if len(items) > settings.api_max_events:
        raise HTTPException(413, f"{len(items)} events; at most {settings.api_max_events} per request")
    valid, errors = validate(items)
    if errors:
        return JSONResponse({"detail": errors}, status_code=422)
    try:
        await services.ingest.send(valid)
    except KafkaException as exc:
        raise HTTPException(
            503, f"Kafka did not acknowledge every event ({exc}); retry: the stream drops repeated event ids"
        ) from exc
    return {"accepted": [ev.event_id for _, ev, _ in valid]}
