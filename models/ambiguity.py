"""How ambiguous is silence in the generated data? ROC-AUC of recency alone, the posterior oracle and the
clairvoyant oracle, at monthly calendar cutoffs and at event times.

A calendar cutoff is the end of the last UTC day of a month (``core.days.day_end``); its rows are every user with
an event in the 60 days up to it, and only cutoffs whose 60-day horizon ends inside the simulated period count.
Labels come from ``core.tasks.label``. Recency scores a row by the days since the user's last event (churn) or
minus that (purchase). Event-time rows are every ``stride``-th event whose horizon ends inside the period.

>>> from simulation import generator
>>> r = measure(300, 200, seed=2)
>>> sorted(r["calendar"]), sorted(r["calendar"]["churn"])
(['churn', 'purchase'], ['clairvoyant', 'oracle', 'rate', 'recency', 'rows'])
>>> r["calendar"]["churn"]["clairvoyant"] > r["calendar"]["churn"]["recency"]
True
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from core.contracts import Event
from core.days import DAY_MS, day_end
from core.tasks import TASKS, label
from models.oracle import Oracle
from simulation import generator


def month_end_cutoffs(start_ms: int, days: int) -> list[int]:
    """The end of each month's last day within the period whose 60-day churn horizon ends inside it.

    >>> [dt.datetime.fromtimestamp((t + 1) / 1000, dt.UTC).date().isoformat() for t in month_end_cutoffs(
    ...     generator.DEFAULT_START_MS, 150)]
    ['2026-02-01', '2026-03-01', '2026-04-01']
    """
    end_ms = start_ms + days * DAY_MS
    horizon = max(t.horizon_days for t in TASKS.values()) * DAY_MS
    out = []
    for day in range(start_ms // DAY_MS, (end_ms - 1) // DAY_MS + 1):
        tomorrow = dt.date(1970, 1, 1) + dt.timedelta(days=day + 1)
        if tomorrow.day == 1 and day_end(day) + horizon < end_ms:
            out.append(day_end(day))
    return out


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _table(oracle: Oracle, history: dict[str, list[Event]], users: list[str], as_of: list[int]) -> dict[str, Any]:
    """The three AUCs per task for the rows (users, as_of)."""
    ts = {u: [e.ts_ms for e in evs] for u, evs in history.items()}
    last = np.array([ts[u][bisect.bisect_right(ts[u], t) - 1] for u, t in zip(users, as_of, strict=True)])
    quiet_days = (np.asarray(as_of) - last) / DAY_MS
    out: dict[str, Any] = {}
    for task in TASKS:
        y = np.array([label(task, history[u], t, ts[u]) for u, t in zip(users, as_of, strict=True)])
        recency = quiet_days if task == "churn" else -quiet_days
        out[task] = {
            "rows": len(y),
            "rate": round(float(y.mean()), 4),
            "recency": round(_auc(y, recency), 4),
            "oracle": round(_auc(y, oracle.scores(task, users, as_of)), 4),
            "clairvoyant": round(_auc(y, oracle.clairvoyant_scores(task, users, as_of)), 4),
        }
    return out


def measure(
    n_users: int = 4000, days: int = 400, seed: int = 0, start_ms: int = generator.DEFAULT_START_MS, stride: int = 50
) -> dict[str, Any]:
    """The AUC table at monthly cutoffs (``calendar``) and at every ``stride``-th event (``event_time``)."""
    users = generator.make_users(n_users, days, seed, start_ms)
    events = generator.simulate(users, days, seed, start_ms)
    end_ms = start_ms + days * DAY_MS
    oracle = Oracle(users, events, end_ms)
    history: defaultdict[str, list[Event]] = defaultdict(list)
    for e in events:
        history[e["user_id"]].append(Event(e["type"], e["event_id"], e["user_id"], e["ts"]))
    rows_u, rows_t = [], []
    for cutoff in month_end_cutoffs(start_ms, days):
        for u, evs in history.items():
            i = bisect.bisect_right([e.ts_ms for e in evs], cutoff)
            if i and cutoff - evs[i - 1].ts_ms < TASKS["churn"].horizon_days * DAY_MS:
                rows_u.append(u)
                rows_t.append(cutoff)
    horizon = TASKS["churn"].horizon_days * DAY_MS
    sampled = [e for e in events[::stride] if e["ts"] + horizon < end_ms]
    return {
        "users": n_users,
        "days": days,
        "seed": seed,
        "events": len(events),
        "cutoffs": len(month_end_cutoffs(start_ms, days)),
        "calendar": _table(oracle, history, rows_u, rows_t),
        "event_time": _table(oracle, history, [e["user_id"] for e in sampled], [e["ts"] for e in sampled]),
    }
