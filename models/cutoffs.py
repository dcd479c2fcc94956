"""Evaluation at calendar cutoffs: "who is at risk today?", as a CRM team asks it.

At each cutoff (``models/calendar.py``: monthly day ends whose 60-day horizon is inside the data), every test
user with an event in the prior 60 days is scored as of that day end, with the features the stream computes
then (``features(state_at(events <= as_of), as_of)``). Next to each model stand the oracle (when the data is
simulated), days-since-last-event alone and, for purchase, a BG/NBD model fitted on the history before the
cutoff (``models/bgnbd.py``). Each cutoff gets bootstrap intervals over its users, and the mean over the cutoffs
an interval from resampling the users once for all of them (``models/evaluate.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.tasks import label
from features.compute import FEATURE_NAMES
from features.offline import Accepted, build
from models import bgnbd
from models.calendar import cutoffs, population
from models.evaluate import bootstrap, bootstrap_mean
from models.protocol import ScoringModel

RECENCY = "days since last event"
BGNBD = "BG/NBD"
ORACLE = "oracle"
_SINCE = FEATURE_NAMES.index("days_since_last_event")


@dataclass
class Cutoff:
    """The rows of one cutoff: its users (sorted) and their features as of it."""

    as_of: int
    users: list[str]
    X: np.ndarray

    @property
    def date(self) -> str:
        return dt.datetime.fromtimestamp(self.as_of / 1000, dt.UTC).strftime("%Y-%m-%d")


def cutoff_rows(accepted: Accepted, users: Sequence[str], every_days: int = 30) -> list[Cutoff]:
    """The rows of every cutoff of ``accepted``'s time span, for those of ``users`` not lapsed at it."""
    first = min(e.ts_ms for evs in accepted.values() for e in evs)
    last = max(e.ts_ms for evs in accepted.values() for e in evs)
    out = []
    for as_of in cutoffs(first, last, every_days=every_days):
        pop = population(accepted, users, as_of)
        feats = build(accepted, [(u, as_of) for u in pop])
        X = np.array([[f[n] for n in FEATURE_NAMES] for f in feats], dtype=np.float64).reshape(len(pop), -1)
        out.append(Cutoff(as_of, pop, X))
    return out


def recency(task: str, X: np.ndarray) -> np.ndarray:
    """Days since the last event as a score: more is likelier churn, less is likelier purchase."""
    since = X[:, _SINCE]
    return since if task == "churn" else -since


def evaluate(
    accepted: Accepted,
    task: str,
    rows: list[Cutoff],
    models: Mapping[str, ScoringModel],
    champion: str,
    oracle: Callable[[list[str], list[int]], np.ndarray] | None = None,
    resamples: int = 400,
    seed: int = 0,
) -> dict[str, Any]:
    """Every model, the oracle and the baselines at each cutoff of ``rows``, and their means over the cutoffs,
    with the paired differences the targets are about (champion vs. oracle, recency and BG/NBD)."""
    ts_cache = {u: [e.ts_ms for e in accepted[u]] for c in rows for u in c.users}
    per_cutoff, joint = [], []
    pairs = [(champion, RECENCY)]
    if oracle is not None:
        pairs.append((ORACLE, champion))
    if task == "purchase":
        pairs.append((champion, BGNBD))
    for c in rows:
        y = np.array([label(task, accepted[u], c.as_of, ts_cache[u]) for u in c.users], dtype=np.int8)
        scores: dict[str, np.ndarray] = {name: m.predict_proba_many(c.X) for name, m in models.items()}
        if oracle is not None:
            scores[ORACLE] = oracle(c.users, [c.as_of] * len(c.users))
        scores[RECENCY] = recency(task, c.X)
        if task == "purchase":
            scores[BGNBD] = bgnbd.scores(accepted, c.users, c.as_of, horizon_days=30)
        ci = bootstrap(scores, y, c.users, resamples=resamples, seed=seed, pairs=pairs)
        per_cutoff.append(
            {
                "as_of": c.as_of,
                "date": c.date,
                "users": len(c.users),
                "positive_rate": float(y.mean()) if len(y) else float("nan"),
                "roc_auc": {name: ci[name]["roc_auc"] for name in scores},
                "differences": {f"{a} - {b}": ci[f"{a} - {b}"]["roc_auc"] for a, b in pairs},
            }
        )
        joint.append((scores, y, c.users))
    mean = bootstrap_mean(joint, resamples=resamples, seed=seed, pairs=pairs)
    return {"champion": champion, "cutoffs": per_cutoff, "mean": mean, "resamples": resamples}
