"""Champion/challenger experiments (:mod:`models.experiments`): start (admin), list, report, stop and promote.

Workers pick an experiment up, or its end, within ``CHURNSTREAM_MODEL_RELOAD_S``, as they pick up a promotion.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from models.experiments import Experiment
from models.registry import ModelRef, ModelRejected
from serving.auth import require
from serving.deps import CatalogDep, ClickHouseDep
from serving.experiment_report import report
from serving.schemas import ExperimentOut, ExperimentReport, ExperimentStart, Task

router = APIRouter(prefix="/v1/models/{task}/experiments", tags=["experiments"])


def found(catalog: Any, task: str, experiment_id: str) -> Experiment:
    exp = catalog.experiments.find(task, experiment_id)
    if exp is None:
        raise HTTPException(404, f"{task}: no experiment {experiment_id}")
    return exp


@router.post("", response_model=ExperimentOut, status_code=201, dependencies=[Depends(require("admin"))])
async def start(task: Task, body: ExperimentStart, catalog: CatalogDep) -> dict[str, Any]:
    """Start a challenger on a share of users (admin); 409 if one runs for the task or the model does not load."""
    registry = catalog.registry
    versions = registry.versions(task, body.model)
    ref = versions[-1] if versions and body.version is None else ModelRef(task, body.model, body.version or "")
    if ref not in versions:
        raise HTTPException(404, f"{task}: no {body.model} version {body.version or ''} in the registry")
    if ref == registry.champion(task):
        raise HTTPException(409, f"{ref} is the champion already")
    try:
        await asyncio.to_thread(registry.load, ref)
        exp = catalog.experiments.start(ref, body.share, body.mode)
    except (ModelRejected, ValueError) as exc:
        raise HTTPException(409, str(exc)) from exc
    return exp.to_json()


@router.get("", response_model=list[ExperimentOut], dependencies=[Depends(require("read"))])
async def list_experiments(task: Task, catalog: CatalogDep) -> list[dict[str, Any]]:
    """The running experiment first (if any), then the ended ones, newest first."""
    store = catalog.experiments
    running = store.running(task)
    return [e.to_json() for e in ([running] if running else []) + store.history(task)[::-1]]


@router.get("/{experiment_id}/report", response_model=ExperimentReport, dependencies=[Depends(require("read"))])
def experiment_report(task: Task, experiment_id: str, catalog: CatalogDep, clickhouse: ClickHouseDep) -> dict[str, Any]:
    """Per-variant ROC-AUC, log loss and calibration on the labels resolved so far, computed in ClickHouse from
    ``resolved_scores``, and whether the difference is significant (a paired bootstrap on the same labels)."""
    return report(clickhouse, found(catalog, task, experiment_id))


@router.post("/{experiment_id}/stop", response_model=ExperimentOut, dependencies=[Depends(require("admin"))])
async def stop(task: Task, experiment_id: str, catalog: CatalogDep) -> dict[str, Any]:
    """End the experiment; the champion alone scores again within seconds."""
    return _end(catalog, task, experiment_id, "stopped").to_json()


@router.post("/{experiment_id}/promote", response_model=ExperimentOut, dependencies=[Depends(require("admin"))])
async def promote(task: Task, experiment_id: str, catalog: CatalogDep) -> dict[str, Any]:
    """Make the challenger the champion and end the experiment; every worker switches within seconds."""
    exp = found(catalog, task, experiment_id)
    if exp.ended_ms:
        raise HTTPException(409, f"experiment {experiment_id} ended ({exp.outcome})")
    try:
        await asyncio.to_thread(catalog.registry.promote, exp.challenger)
    except ModelRejected as exc:
        raise HTTPException(409, str(exc)) from exc
    catalog.refs(force=True)
    return _end(catalog, task, experiment_id, "promoted").to_json()


def _end(catalog: Any, task: str, experiment_id: str, outcome: str) -> Experiment:
    exp = found(catalog, task, experiment_id)
    if exp.ended_ms:
        raise HTTPException(409, f"experiment {experiment_id} ended ({exp.outcome})")
    ended = catalog.experiments.end(task, outcome)
    assert ended is not None
    return ended
