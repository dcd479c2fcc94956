"""Training: point-in-time sets, four models per task, metrics and latency, registry and champion."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from features.offline import Accepted
from models import dataset
from models.metrics import quality
from models.pretrained import MODEL_NAMES, Pretrained, create
from models.registry import ModelRef, Registry
from models.tasks import TASKS

Progress = Callable[[str], None]


def latency_us(model: Pretrained, X: np.ndarray) -> dict[str, float]:
    """Median single-row and per-row batch (1,000 rows) prediction time in microseconds."""
    rows = X[: min(len(X), 200)]
    single = []
    for i in range(len(rows)):
        t = time.perf_counter()
        model.predict_proba_many(rows[i : i + 1])
        single.append(time.perf_counter() - t)
    batch = np.resize(X, (1000, X.shape[1])) if len(X) else X
    t = time.perf_counter()
    for _ in range(5):
        model.predict_proba_many(batch)
    per_row = (time.perf_counter() - t) / (5 * max(1, len(batch)))
    return {"single_row_us": float(np.median(single) * 1e6), "batch_per_row_us": per_row * 1e6}


def train_task(
    accepted: Accepted,
    task: str,
    registry: Registry,
    per_user: int = 12,
    seed: int = 0,
    models: tuple[str, ...] = MODEL_NAMES,
    progress: Progress = lambda _m: None,
    oracle: Callable[[list[str], list[int]], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train every model for ``task``, register each version, promote the best test AUC. Returns a report."""
    progress(f"{task}: building the point-in-time training set")
    ts = dataset.build(accepted, task, per_user=per_user, seed=seed)
    report: dict[str, Any] = {
        "task": task,
        "horizon_days": TASKS[task].horizon_days,
        "train_rows": len(ts.train.y),
        "test_rows": len(ts.test.y),
        "train_positive_rate": float(ts.train.y.mean()),
        "test_positive_rate": float(ts.test.y.mean()),
        "window": ts.window,
        "fingerprint": ts.fingerprint,
        "models": {},
    }
    if oracle is not None:
        report["oracle"] = quality(ts.test.y, oracle(ts.test.users, ts.test.as_of))
    refs: dict[str, ModelRef] = {}
    for name in models:
        progress(f"{task}: training {name} on {len(ts.train.y):,} rows")
        t = time.perf_counter()
        model = create(name, seed).fit(ts.train.X, ts.train.y)
        fit_s = time.perf_counter() - t
        metrics: dict[str, Any] = quality(ts.test.y, model.predict_proba_many(ts.test.X))
        metrics.update(latency_us(model, ts.test.X))
        metrics["fit_seconds"] = fit_s
        ref = registry.save(
            task,
            model,
            {
                "metrics": metrics,
                "training_window": ts.window,
                "data_fingerprint": ts.fingerprint,
                "train_rows": len(ts.train.y),
            },
        )
        metrics["size_bytes"] = registry.meta(ref)["size_bytes"]
        metrics["version"] = ref.version
        report["models"][name] = metrics
        refs[name] = ref
    best = max(refs, key=lambda n: report["models"][n]["roc_auc"])
    registry.promote(refs[best])
    report["champion"] = best
    return report
