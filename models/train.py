"""Training: point-in-time sets, four models per task, metrics and latency, registry and champion.

Training and validation rows are taken at event times and on the calendar grid (``models/dataset.py``), so one
model per task serves the event path and the time path. The champion is the best ROC-AUC on the validation
users (both kinds of rows); the test users only measure: at event times as before, and at calendar cutoffs
(``models/cutoffs.py``) next to days-since-last-event alone and, for purchase, BG/NBD. Test figures come with
95% bootstrap intervals over test users (``models/evaluate.py``), and the champion's lead over the runner-up
and the oracle's over the champion with paired intervals, so a difference inside the noise says so.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from core.days import DAY_MS, day_end, lapsed
from core.tasks import TASKS
from features.compute import FEATURE_NAMES
from features.offline import Accepted
from models import cutoffs, dataset, drift
from models.evaluate import bootstrap
from models.metrics import quality
from models.pretrained import MODEL_NAMES, create
from models.protocol import ScoringModel
from models.registry import ModelRef, Registry

Progress = Callable[[str], None]


def latency_us(model: ScoringModel, X: np.ndarray) -> dict[str, float]:
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
    resamples: int = 400,
    calendar: list[cutoffs.Cutoff] | None = None,
    grid_per_user: float | None = None,
    sets: dataset.TrainingSet | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """Train every model for ``task``, register each version, promote the best validation AUC. Returns a report.

    ``oracle``: the true probabilities of (users, as_of) rows, when known (simulated data); ``resamples``: bootstrap
    resamples of the test users; ``calendar``: the test users' rows at the calendar cutoffs (built when not given);
    ``sets``: the point-in-time sets, if built already; ``promote=False`` registers the best without promoting it
    (``churnstream retrain`` decides).
    """
    progress(f"{task}: building the point-in-time data sets")
    ts = sets or dataset.build(accepted, task, per_user=per_user, seed=seed, grid_per_user=grid_per_user)
    test = ts.test.only("event")  # the event-time test figures, as before the calendar rows
    report: dict[str, Any] = {
        "task": task,
        "horizon_days": TASKS[task].horizon_days,
        "window": ts.window,
        "fingerprint": ts.fingerprint,
        "models": {},
    }
    for name, part in (("train", ts.train), ("validation", ts.validation), ("test", ts.test)):
        report[f"{name}_rows"] = len(part.y)
        report[f"{name}_users"] = len(set(part.users))
        report[f"{name}_time_rows"] = sum(t == "time" for t in part.trigger)
    report["test_rows"], report["test_users"] = len(test.y), len(set(test.users))
    report["test_positive_rate"] = float(test.y.mean()) if len(test.y) else float("nan")
    test_scores: dict[str, np.ndarray] = {}
    if oracle is not None:
        test_scores["oracle"] = oracle(test.users, test.as_of)
        report["oracle"] = quality(test.y, test_scores["oracle"])
    refs: dict[str, ModelRef] = {}
    fitted: dict[str, ScoringModel] = {}
    # the training population for live PSI: the day-end grid rows, like the live sample (event rows differ: their
    # days since the last event is always 0)
    grid = ts.train.only("time") if any(t == "time" for t in ts.train.trigger) else ts.train
    features_profile = drift.profile(grid.X, FEATURE_NAMES)
    for name in models:
        progress(f"{task}: training {name} on {len(ts.train.y):,} rows")
        t = time.perf_counter()
        model = create(name, seed).fit(ts.train.X, ts.train.y)
        fit_s = time.perf_counter() - t
        fitted[name] = model
        test_scores[name] = model.predict_proba_many(test.X)
        metrics: dict[str, Any] = quality(test.y, test_scores[name])
        metrics["validation_roc_auc"] = quality(ts.validation.y, model.predict_proba_many(ts.validation.X))["roc_auc"]
        metrics.update(latency_us(model, test.X))
        metrics["fit_seconds"] = fit_s
        ref = registry.save(
            task,
            model,
            {
                "metrics": metrics,
                "training_window": ts.window,
                "data_fingerprint": ts.fingerprint,
                "train_rows": len(ts.train.y),
                "drift": drift.with_scores(features_profile, model.predict_proba_many(grid.X)).to_json(),
            },
        )
        metrics["size_bytes"] = registry.meta(ref)["size_bytes"]
        metrics["version"] = ref.version
        report["models"][name] = metrics
        refs[name] = ref
    ranked = sorted(refs, key=lambda n: report["models"][n]["validation_roc_auc"], reverse=True)
    best = ranked[0]
    if promote:
        registry.promote(refs[best])
    report["champion"] = best
    report["runner_up"] = ranked[1] if len(ranked) > 1 else None
    progress(f"{task}: bootstrap intervals over {len(set(test.users)):,} test users ({resamples} resamples)")
    pairs = [(best, ranked[1])] if len(ranked) > 1 else []
    if oracle is not None:
        pairs.append(("oracle", best))
    intervals = bootstrap(test_scores, test.y, test.users, resamples=resamples, seed=seed, pairs=pairs)
    for name in report["models"]:
        report["models"][name]["ci"] = intervals[name]
    if oracle is not None:
        report["oracle"]["ci"] = intervals["oracle"]
    report["differences"] = {f"{a} - {b}": intervals[f"{a} - {b}"] for a, b in pairs}
    report["resamples"] = resamples
    if calendar is None:
        calendar = cutoffs.cutoff_rows(accepted, [u for u in accepted if dataset.user_split(u, seed) == "test"])
    progress(f"{task}: scoring at {len(calendar)} calendar cutoffs")
    report["calendar"] = cutoffs.evaluate(
        accepted, task, calendar, fitted, best, oracle=oracle, resamples=resamples, seed=seed
    )
    return report


@dataclass
class TrainingRun:
    """What ``churnstream train`` produced: a report per task, where the history came from, and the progressive
    validation of the online models against the champions (None when skipped)."""

    reports: dict[str, dict[str, Any]]
    source: str
    progressive: dict[str, dict[str, dict[str, float]]] | None
    clusters: dict[str, Any] | None = None  # the behavioural clusters fitted and made current (models.clusters)


def train_all(
    registry: Registry,
    users: int = 5000,
    days: int = 365,
    seed: int = 0,
    events: Path | None = None,
    per_user: int = 12,
    progressive_users: int = 2000,
    progress: Progress = lambda _m: None,
    models: tuple[str, ...] = MODEL_NAMES,
    grid_per_user: float | None = None,
) -> TrainingRun:
    """Train every model of both tasks on a simulated history (or the JSONL/CSV history in ``events``), promote
    each task's best, then, on simulated data, run progressive validation of the online models on a separate
    stream of ``progressive_users`` users (0 skips it). ``progress`` gets a line per step; ``models``: which
    pretrained models to train (all four by default)."""
    from features import offline
    from models import oracle
    from models import progressive as pv
    from simulation import generator

    progress("preparing history")
    truth: oracle.Oracle | None = None
    if events is None:
        progress(f"simulating {users:,} users over {days} days")
        simulated = generator.make_users(users, days, seed)
        history = generator.simulate(simulated, days, seed)
        accepted = offline.accept((e["type"], orjson.dumps(e)) for e in history)
        truth = oracle.Oracle(simulated, history, end_ms=generator.DEFAULT_START_MS + days * 86_400_000)
        source = f"{len(history):,} simulated events of {users:,} users over {days} days (seed {seed})."
    else:
        reader = offline.read_csv if events.suffix == ".csv" else offline.read_jsonl
        accepted = offline.accept(reader(events))
        source = f"history from {events}."
    progress("the test users' rows at calendar cutoffs")
    calendar = cutoffs.cutoff_rows(accepted, [u for u in accepted if dataset.user_split(u, seed) == "test"])
    reports = {}
    for task in TASKS:
        oracle_fn = None
        if truth is not None:

            def oracle_fn(us: list[str], ts: list[int], task: str = task, truth: oracle.Oracle = truth) -> np.ndarray:
                return truth.scores(task, us, ts)

        reports[task] = train_task(
            accepted,
            task,
            registry,
            per_user=per_user,
            seed=seed,
            models=models,
            oracle=oracle_fn,
            progress=progress,
            calendar=calendar,
            grid_per_user=grid_per_user,
        )
    progress("behavioural clusters")
    clusters = fit_clusters(accepted, registry)
    progressive = None
    if events is None and progressive_users:
        progress(f"progressive validation on a separate stream of {progressive_users:,} users")
        stream_users = generator.make_users(progressive_users, days, seed + 1)
        stream = generator.simulate(stream_users, days, seed + 1)
        champions = {t: registry.load(ref) for t in TASKS if (ref := registry.champion(t))}
        outcome = pv.run(offline.accept((e["type"], orjson.dumps(e)) for e in stream), champions)
        progressive = {t: o.later_half() for t, o in outcome.items()}
    progress("done")
    return TrainingRun(reports, source, progressive, clusters)


def fit_clusters(accepted: Accepted, registry: Registry, seed: int = 0) -> dict[str, Any] | None:
    """K-means on the users active in the last 60 days of the history, as of its last day end; saved as the current
    version under ``<registry>/clusters`` (:mod:`models.clusters`)."""
    from features import offline
    from models.clusters import Clusters

    last = max((evs[-1].ts_ms for evs in accepted.values() if evs), default=0)
    end = day_end(last // DAY_MS)
    active = [u for u, evs in accepted.items() if evs and not lapsed(end, evs[-1].ts_ms)]
    if len(active) < 10:
        return None
    X = np.array([[f[n] for n in FEATURE_NAMES] for f in offline.build(accepted, [(u, end) for u in active])])
    version = dt.datetime.now(dt.UTC).strftime("clusters-%Y%m%dT%H%M%SZ")
    c = Clusters.fit(X, version, seed=seed)
    c.save(registry.root / "clusters")
    return {"version": version, "users": len(active), "k": c.k, "silhouette": c.silhouette,
            "silhouettes": c.silhouettes, "profiles": c.profiles}  # fmt: skip
