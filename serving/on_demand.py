"""Scores as of now, computed on demand: the user's state from the store, the features at the wall-clock time by
the stream's own :func:`~features.compute.features`, and each task's champion.

A lookup, not a billed call: ``/v1/score`` shows a cost because the caller picks the model; this path always uses
the champions, like the worker.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from fastapi import HTTPException

from core.tasks import TASKS
from features.compute import FEATURE_NAMES, features
from features.state import UserState
from serving.catalog import ModelCatalog, ModelUnavailable
from serving.status import entry, with_status


def now_ms(state: UserState, clock_ms: int | None = None) -> int:
    """The as-of of an on-demand score: the wall clock, never before the user's latest event (a clock behind the
    event times, or events stamped ahead of it, would otherwise ask for features before the state's own events).

    >>> from features.state import UserState
    >>> now_ms(UserState(last_ms=5_000), clock_ms=9_000), now_ms(UserState(last_ms=5_000), clock_ms=1_000)
    (9000, 5000)
    """
    clock = int(time.time() * 1000) if clock_ms is None else clock_ms
    return max(clock, state.last_ms)


async def score_now(
    state: UserState, catalog: ModelCatalog, thresholds: tuple[float, float], clock_ms: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each task's champion score of ``state`` as of now, in the shape of the cached scores (trigger
    ``on_demand``); 409 when a task has no champion."""
    as_of = now_ms(state, clock_ms)
    f = features(state, as_of)
    x = np.array([[f[n] for n in FEATURE_NAMES]], dtype=np.float64)
    out: dict[str, list[dict[str, Any]]] = {}
    for task in TASKS:
        try:
            model = await catalog.get(task, None)
        except ModelUnavailable as exc:
            raise HTTPException(409, str(exc)) from exc
        p = float((await asyncio.to_thread(model.predict, x))[0])
        out[task] = [entry(model.kind, model.name, model.version, p, as_of, "on_demand", state.last_ms, thresholds)]
    return with_status(out, thresholds)
