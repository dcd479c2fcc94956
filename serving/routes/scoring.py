"""On-demand scoring with the caller's choice of model, batch scoring of a CSV, and the model list."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from churnstream.settings import Settings
from core.contracts import validate_user_id
from core.tasks import TASKS
from features.compute import FEATURE_NAMES, features
from models.registry import ModelRef, ModelRejected
from serving.auth import require
from serving.catalog import LoadedModel, ModelCatalog, ModelUnavailable
from serving.deps import CatalogDep, SettingsDep, StoreDep
from serving.errors import check_user_id, invalid
from serving.routes.users import current_features, risk
from serving.schemas import ModelChoice, Promote, ScoreRequest, ScoreResponse, Task, TaskModels

router = APIRouter(prefix="/v1", tags=["scoring"])
BATCH_ROWS = 1000


def cost(settings: Settings, model: str) -> float:
    prices: dict[str, float] = settings.api_prices
    return float(prices.get(model.split(":", 1)[0], prices.get("default", 1.0)))


async def load(catalog: ModelCatalog, task: str, name: str | None) -> LoadedModel:
    try:
        return await catalog.get(task, name)
    except ModelUnavailable as exc:
        raise HTTPException(409, str(exc)) from exc


def vector(supplied: dict[str, float]) -> np.ndarray:
    missing = [n for n in FEATURE_NAMES if n not in supplied]
    unknown = sorted(set(supplied) - set(FEATURE_NAMES))
    if missing or unknown:
        field = (missing or unknown)[0]
        what = f"missing {len(missing)} feature(s)" if missing else f"unknown feature(s) {', '.join(unknown[:5])}"
        raise invalid(["body", "features", field], f"{what}; GET /v1/users/{{id}}/features lists them all", "features")
    x = np.array([[supplied[n] for n in FEATURE_NAMES]], dtype=np.float64)
    if not np.isfinite(x).all():
        raise invalid(["body", "features"], "every feature must be a finite number", "features")
    return x


@router.post("/score", response_model=ScoreResponse, dependencies=[Depends(require("read"))])
async def score(body: ScoreRequest, store: StoreDep, catalog: CatalogDep, settings: SettingsDep) -> dict[str, Any]:
    """Score a user's current features (from Redis) or a supplied feature vector with the chosen model."""
    if (body.user_id is None) == (body.features is None):
        raise invalid(["body"], "send exactly one of user_id and features", "value_error")
    as_of = None
    if body.user_id is not None:
        check_user_id(body.user_id, ["body", "user_id"])
        as_of, f = await current_features(store, body.user_id, body.as_of_ms)
        x = np.array([[f[n] for n in FEATURE_NAMES]], dtype=np.float64)
    else:
        x = vector(body.features or {})
    results = []
    for task in dict.fromkeys(body.tasks):
        model = await load(catalog, task, body.model)
        started = time.perf_counter()
        p = (await asyncio.to_thread(model.predict, x))[0]
        took = (time.perf_counter() - started) * 1000
        results.append(
            {
                "task": task,
                "model_kind": model.kind,
                "model": model.name,
                "version": model.version,
                "score": p,
                "risk": risk(p, settings.api_risk_thresholds),
                "took_ms": round(took, 3),
                "cost": cost(settings, model.name),
            }
        )
    return {"user_id": body.user_id, "as_of_ms": as_of, "results": results}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes (checked while reading, not after)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body is larger than the {limit:,}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is larger than the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/batch-score",
    dependencies=[Depends(require("read"))],
    response_class=StreamingResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}, "example": "user_id\nu1\nu2\n"}},
        }
    },
    responses={200: {"content": {"text/csv": {}}, "description": "user_id,task,model_kind,model,version,score,status"}},
)
async def batch_score(
    request: Request,
    store: StoreDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    model: ModelChoice | None = Query(None, description="Default: each task's champion"),
    task: list[Task] = Query(["churn", "purchase"], description="Repeat for several tasks"),
) -> StreamingResponse:
    """Score a CSV of user ids (column ``user_id``) or of feature rows (every feature name, optional ``user_id``).

    The answer is a CSV streamed in chunks of 1,000 rows: one row per (input row, task), with ``status`` ``ok``,
    ``unknown_user`` or ``invalid_user_id``.
    """
    text = (await read_body(request, settings.api_max_upload_bytes)).decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    by_features = all(n in header for n in FEATURE_NAMES)
    if not by_features and "user_id" not in header:
        raise invalid(["body", "header"], "the CSV needs a user_id column or every feature column", "csv_header")
    models = {t: await load(catalog, t, model) for t in dict.fromkeys(task)}

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["user_id", "task", "model_kind", "model", "version", "score", "status"])
        chunk: list[list[str]] = []
        idx = {h: i for i, h in enumerate(header)}
        lines = iter(reader)
        while True:
            chunk = [r for _, r in zip(range(BATCH_ROWS), lines, strict=False) if r]
            if not chunk:
                break
            users = [r[idx["user_id"]].strip() if "user_id" in idx and len(r) > idx["user_id"] else "" for r in chunk]
            status = ["ok"] * len(chunk)
            X = np.zeros((len(chunk), len(FEATURE_NAMES)))
            if by_features:
                for i, r in enumerate(chunk):
                    try:
                        X[i] = [float(r[idx[n]]) for n in FEATURE_NAMES]
                    except (ValueError, IndexError):
                        status[i] = "invalid_features"
            else:
                ok = [i for i, u in enumerate(users) if validate_user_id(u) is None]
                for i in set(range(len(users))) - set(ok):
                    status[i] = "invalid_user_id"
                states = await store.read_states([users[i] for i in ok])
                for i, state in zip(ok, states, strict=True):
                    if state is None:
                        status[i] = "unknown_user"
                        continue
                    f = features(state, state.last_ms)
                    X[i] = [f[n] for n in FEATURE_NAMES]
            good = [i for i, s in enumerate(status) if s == "ok"]
            for t, m in models.items():
                scores = await asyncio.to_thread(m.predict, X[good]) if good else []
                by_row = dict(zip(good, scores, strict=True))
                for i in range(len(chunk)):
                    p = by_row.get(i)
                    writer.writerow([users[i], t, m.kind, m.name, m.version, "" if p is None else p, status[i]])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        if out.tell():
            yield out.getvalue()

    return StreamingResponse(rows(), media_type="text/csv")


@router.get("/models", response_model=dict[Task, TaskModels], dependencies=[Depends(require("read"))])
async def list_models(catalog: CatalogDep, settings: SettingsDep) -> dict[str, Any]:
    """Every model per task: version, test metrics, measured latency, cost, and which one is champion."""
    out: dict[str, Any] = {}
    history = catalog.retrainings()
    for task in TASKS:
        models = [m | {"cost": cost(settings, m["name"])} for m in catalog.describe(task)]
        try:
            online = await catalog.online(task)
            models.append(
                {
                    "name": online.name,
                    "kind": "online",
                    "version": online.version,
                    "champion": False,
                    "metrics": {},
                    "latency_us": {},
                    "cost": cost(settings, "online"),
                }
            )
        except ModelUnavailable:
            pass
        champion = next((m["name"] for m in models if m["champion"]), None)
        running = catalog.experiments.running(task)
        out[task] = {
            "champion": champion,
            "models": models,
            "experiment": running.to_json() if running else None,
            "retrainings": history[task],
        }
    return out


@router.post(
    "/models/{task}/champion", response_model=TaskModels, dependencies=[Depends(require("admin"))], tags=["admin"]
)
async def promote(task: Task, body: Promote, catalog: CatalogDep, settings: SettingsDep) -> dict[str, Any]:
    """Make a model the task's champion (admin); running workers switch to it within seconds."""
    registry = catalog.registry
    versions = registry.versions(task, body.model)
    ref = versions[-1] if versions and body.version is None else ModelRef(task, body.model, body.version or "")
    if ref not in versions:
        raise HTTPException(404, f"{task}: no {body.model} version {body.version or ''} in the registry")
    try:
        await asyncio.to_thread(registry.promote, ref)
    except ModelRejected as exc:
        raise HTTPException(409, str(exc)) from exc
    catalog.refs(force=True)
    return (await list_models(catalog, settings))[task]
