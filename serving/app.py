"""The FastAPI app: thin routes over Redis (state, cached scores), the model registry, ClickHouse and Kafka.

>>> from churnstream.settings import Settings
>>> app = create_app(Settings(home="/tmp/cs-doc-api"))
>>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1/users"))
['/v1/users/{user_id}/features', '/v1/users/{user_id}/scores']
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import redis.exceptions
from fastapi import FastAPI, Request, Response
from fastapi.responses import ORJSONResponse

from churnstream.settings import Settings
from serving.metrics import REQUEST_SECONDS
from serving.routes import events, exports, ops, scoring, users
from serving.services import Services

log = logging.getLogger(__name__)

DESCRIPTION = """Real-time churn and purchase-propensity scores.

Keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`, created with `churnstream keys create`.
Scopes: `read` (lookups, scoring, exports), `write` (events), `admin` (promotion, implies the others).
"""


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or Services.create(settings)
        try:
            yield
        finally:
            await app.state.services.close()

    app = FastAPI(
        title="churnstream",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
    )
    for module in (users, scoring, exports, events, ops):
        app.include_router(module.router)

    @app.middleware("http")
    async def timing(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        REQUEST_SECONDS.labels(getattr(route, "path", "unmatched"), request.method, response.status_code).observe(
            time.perf_counter() - started
        )
        return response

    @app.exception_handler(redis.exceptions.RedisError)
    async def redis_down(_request: Request, exc: Exception) -> Response:
        log.warning("Redis error: %s", type(exc).__name__)
        return ORJSONResponse({"detail": "Redis is unavailable; retry shortly"}, status_code=503)

    return app
