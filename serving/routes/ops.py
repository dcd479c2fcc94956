"""Liveness, readiness (Kafka, Redis and ClickHouse reachable) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import ServicesDep
from serving.services import Services
from streams import health

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok"}


async def readiness(services: Services) -> dict[str, str]:
    """Each dependency: ``ok``, ``unreachable``, or ``writes failing (<error type>)`` while the worker in this
    process retries (what ``/readyz`` answers and the dashboard's health page shows)."""

    async def redis() -> bool:
        try:
            return bool(await asyncio.wait_for(services.redis.ping(), 2))
        except Exception:
            return False

    def clickhouse() -> bool:
        try:
            return bool(services.clickhouse().command("SELECT 1") == 1)
        except Exception:
            services.reset_clickhouse()
            return False

    kafka_ok, redis_ok, ch_ok = await asyncio.gather(
        asyncio.to_thread(services.ingest.reachable), redis(), asyncio.to_thread(clickhouse)
    )
    checks = {"kafka": kafka_ok, "redis": redis_ok, "clickhouse": ch_ok}
    body = {name: "ok" if ok else "unreachable" for name, ok in checks.items()}
    # in `churnstream run`, the worker's writes too: ClickHouse may answer SELECT 1 and still refuse inserts
    for name, error in health.failing().items():
        body[name] = f"writes failing ({error})"
    return body


@router.get("/readyz", responses={503: {"description": "A dependency is unreachable"}})
async def readyz(services: ServicesDep) -> Any:
    """Kafka, Redis and ClickHouse are reachable and the worker's writes to them succeed; 503 names the ones that
    are not (`unreachable`, or `writes failing (<error type>)` while the worker in this process retries)."""
    body = await readiness(services)
    ready = all(v == "ok" for v in body.values())
    return JSONResponse({"ready": ready, **body}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus text format: API request latency by route, and (in `churnstream run`) the worker's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
