"""Retraining from the real history: ``churnstream retrain`` reads the ClickHouse ``events`` table, builds the
point-in-time sets with the same builder and time split as ``churnstream train``, trains the four models per task,
registers them, and decides what the best becomes.

The guardrails (settings ``CHURNSTREAM_RETRAIN_*``) are checked on a recent holdout, the test users' rows in the
last ``holdout_days`` of the labelled window, scored by the candidate and the serving champion:

- a ROC-AUC better by at least ``auc_margin``, with the paired bootstrap's 95 % interval above 0
  (:func:`models.comparison.compare`);
- no worse calibration: expected calibration error at most the champion's plus ``calibration_slack``;
- a feature list the state computes (:data:`features.compute.FEATURE_NAMES`, in that order).

A candidate that passes all three becomes the champion; otherwise it becomes a challenger: an experiment on
``share`` of users (unless one runs already), so it is measured on live traffic before anyone promotes it. Each
retraining is recorded in the registry (``retrainings.jsonl``): a ``started`` line first, then one with the data
window, fingerprint, metrics and the decision with its reason, or ``failed`` with the error. A retraining that
dies halfway leaves only ``started`` (and maybe registered versions no one serves): the champion keeps serving.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.tasks import TASKS
from features.compute import FEATURE_NAMES
from features.offline import Accepted
from models import cutoffs, dataset
from models.comparison import calibration_error, compare
from models.experiments import Experiments
from models.pretrained import MODEL_NAMES
from models.registry import ModelRef, ModelRejected, Registry
from models.train import train_task

Progress = Callable[[str], None]
KEPT_METRICS = ("roc_auc", "log_loss", "validation_roc_auc")  # per model, in the record


@dataclass(frozen=True)
class Guardrails:
    auc_margin: float = 0.005
    calibration_slack: float = 0.01
    holdout_days: int = 30
    share: float = 0.1  # of users, for a candidate that becomes a challenger


def record(registry: Registry, entry: dict[str, Any]) -> None:
    """Append one line to the registry's retraining log."""
    path = registry.root / "retrainings.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def retrainings(root: Path) -> list[dict[str, Any]]:
    """Every retraining, newest first, each its last line (``started`` alone: it never finished)."""
    path = Path(root) / "retrainings.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    latest: dict[str, dict[str, Any]] = {}
    for entry in lines:
        latest[entry["retraining_id"]] = entry
    return sorted(latest.values(), key=lambda e: e["started_at"], reverse=True)


def holdout(ts: dataset.TrainingSet, days: int) -> dataset.Split:
    """The test users' rows in the last ``days`` of the labelled window (all test rows if that leaves too few)."""
    cut = ts.window["to_ms"] - days * 86_400_000
    keep = [i for i, t in enumerate(ts.test.as_of) if t >= cut]
    if len(keep) < 200 or len({int(v) for v in ts.test.y[keep]}) < 2:
        keep = list(range(len(ts.test.y)))
    t = ts.test
    return dataset.Split(
        t.X[keep], t.y[keep], [t.users[i] for i in keep], [t.as_of[i] for i in keep], [t.trigger[i] for i in keep]
    )


def judge(
    y: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    features_ok: bool,
    rails: Guardrails,
    users: Sequence[str] | None = None,
) -> tuple[bool, str, dict[str, Any]]:
    """(passes, the reason, the holdout figures) for a candidate against the champion."""
    if not features_ok:
        return False, "its feature list is not the one the state computes", {}
    if champion is None:
        return True, "no champion serves this task", {"candidate_calibration_error": calibration_error(y, candidate)}
    cmp = compare(y, champion=champion, challenger=candidate, groups=users)
    figures = {
        "candidate": cmp["challenger"],
        "champion": cmp["champion"],
        "auc_diff": cmp["auc_diff"],
        "holdout_rows": len(y),
    }
    diff = cmp["auc_diff"]
    if diff is None:
        return False, "the holdout has too few labels of both classes to compare", figures
    if diff["diff"] < rails.auc_margin or diff["low"] <= 0:
        why = f"ROC-AUC {diff['diff']:+.4f} (95 % interval {diff['low']:+.4f} to {diff['high']:+.4f})"
        return False, f"{why}: not better by {rails.auc_margin} with an interval above 0", figures
    worse = cmp["challenger"]["calibration_error"] - cmp["champion"]["calibration_error"]
    if worse > rails.calibration_slack:
        why = f"calibration error {worse:+.4f} worse than the champion's (slack {rails.calibration_slack})"
        return False, why, figures
    return True, f"ROC-AUC {diff['diff']:+.4f} (95 % interval {diff['low']:+.4f} to {diff['high']:+.4f})", figures


def retrain(
    registry: Registry,
    accepted: Accepted,
    source: str,
    rails: Guardrails = Guardrails(),
    tasks: tuple[str, ...] = tuple(TASKS),
    models: tuple[str, ...] = MODEL_NAMES,
    per_user: int = 12,
    seed: int = 0,
    progress: Progress = lambda _m: None,
) -> list[dict[str, Any]]:
    """Retrain ``tasks`` on ``accepted`` and decide for each (see the module docstring); returns the records."""
    out = []
    calendar = cutoffs.cutoff_rows(accepted, [u for u in accepted if dataset.user_split(u, seed) == "test"])
    for task in tasks:
        entry: dict[str, Any] = {
            "retraining_id": uuid.uuid4().hex[:12],
            "task": task,
            "source": source,
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
            "status": "started",
        }
        record(registry, entry)
        t0 = time.perf_counter()
        try:
            entry |= _retrain_task(registry, accepted, task, rails, models, per_user, seed, calendar, progress)
            entry["status"] = "finished"
        except Exception as exc:  # recorded; the champion keeps serving
            entry |= {"status": "failed", "decision": "none", "reason": f"{type(exc).__name__}: {exc}"}
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        entry["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        record(registry, entry)
        out.append(entry)
    return out


def _retrain_task(
    registry: Registry,
    accepted: Accepted,
    task: str,
    rails: Guardrails,
    models: tuple[str, ...],
    per_user: int,
    seed: int,
    calendar: list[cutoffs.Cutoff],
    progress: Progress,
) -> dict[str, Any]:
    progress(f"{task}: building the point-in-time sets from the history")
    ts = dataset.build(accepted, task, per_user=per_user, seed=seed)
    report = train_task(
        accepted, task, registry, per_user, seed, models, progress, calendar=calendar, sets=ts, promote=False
    )
    best = report["champion"]
    candidate = ModelRef(task, best, report["models"][best]["version"])
    held = holdout(ts, rails.holdout_days)
    serving = registry.champion(task)
    champion_scores = None
    if serving is not None:
        try:
            champion_scores = registry.load(serving).predict_proba_many(held.X)
        except ModelRejected:
            champion_scores = None  # a champion that does not load is no bar
    features_ok = tuple(registry.meta(candidate).get("feature_names", ())) == FEATURE_NAMES
    cand_scores = registry.load(candidate).predict_proba_many(held.X)
    passed, reason, figures = judge(held.y, cand_scores, champion_scores, features_ok, rails, held.users)
    entry: dict[str, Any] = {
        "window": ts.window,
        "fingerprint": ts.fingerprint,
        "candidate": str(candidate),
        "champion_before": str(serving) if serving else None,
        "metrics": {n: {k: m[k] for k in KEPT_METRICS} for n, m in report["models"].items()},
        "holdout": figures,
        "reason": reason,
    }
    if passed:
        registry.promote(candidate)
        return entry | {"decision": "champion"}
    store = Experiments(registry.root)
    if store.running(task) is not None:
        return entry | {"decision": "registered", "reason": reason + "; an experiment runs already"}
    exp = store.start(candidate, rails.share, "served")
    return entry | {"decision": "challenger", "experiment_id": exp.experiment_id}
