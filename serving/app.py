"""The FastAPI app: thin routes over the state store (users' states and cached scores in Redis), the model registry,
ClickHouse and Kafka; they get them through the dependencies in :mod:`serving.deps`.

>>> from churnstream.settings import Settings
>>> app = create_app(Settings(home="/tmp/cs-doc-api"))
>>> sorted(p.split("/")[-1] for p in app.openapi()["paths"] if p.startswith("/v1/users"))
['categories', 'features', 'history', 'recommendations', 'scores', 'segment']
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.exceptions
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churnstream.settings import Settings
from serving.dashboard import customers
from serving.dashboard import pages as dashboard
from serving.export_schedule import ExportSchedule
from serving.metrics import REQUEST_SECONDS
from serving.routes import (
    clickhouse_http,
    drift,
    events,
    experiments,
    exports,
    history,
    imports,
    ops,
    profile,
    recommendations,
    scoring,
    users,
)
from serving.services import Services

log = logging.getLogger(__name__)

DESCRIPTION = """Real-time churn and purchase-propensity scores.

Keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`, created with `churnstream keys create`.
Scopes: `read` (lookups, scoring, exports), `write` (events), `admin` (promotion, implies the others).
"""


class RequestTiming:
    """Pure ASGI middleware (cheaper than ``@app.middleware``): latency by route template, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_SECONDS.labels(route, scope["method"], status).observe(time.perf_counter() - started)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or Services.create(settings)
        # Everything imported and built so far lives for the whole process: keep it out of the cyclic GC's
        # full collections, whose pauses (tens of ms over the imported libraries) dominated the p99.
        gc.collect()
        gc.freeze()
        schedule = None
        if settings.export_cron:
            schedule = asyncio.create_task(ExportSchedule(settings, app.state.services.clickhouse).run())
        try:
            yield
        finally:
            if schedule is not None:
                schedule.cancel()
            await app.state.services.close()

    app = FastAPI(
        title="churnstream",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    api = (users, profile, recommendations, history, scoring, experiments, drift, exports, imports, events, ops)
    for module in (*api, clickhouse_http, dashboard, customers):
        app.include_router(module.router)
    dashboard.mount_static(app)

    app.add_middleware(RequestTiming)

    @app.exception_handler(redis.exceptions.RedisError)
    async def redis_down(_request: Request, exc: Exception) -> Response:
        log.warning("Redis error: %s", type(exc).__name__)
        return JSONResponse({"detail": "Redis is unavailable; retry shortly"}, status_code=503)

    return app
