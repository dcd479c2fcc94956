"""Alerts on drift: the thresholds, the alert record, and ADWIN on each model's progressive-validation loss.

Two sources raise alerts:

- the daily drift job (:mod:`streams.drift_watch`): a feature's, or the score's, PSI for a day at or above
  ``psi_warn`` (level ``warn``) or ``psi_alert`` (level ``alert``) becomes an alert (:func:`psi_alerts`);
- the online learner: :class:`LossWatch` feeds each resolved label's log loss, per task and model kind, to an ADWIN
  detector (river), and a change that *raises* the mean loss becomes an ``adwin`` alert (a loss that falls, a model
  learning, is no alarm).

>>> watch = LossWatch(delta=0.002)
>>> raised = []
>>> for i in range(4000):
...     p = 0.8 if i < 3000 else 0.2  # the model goes from right to wrong on positive labels
...     if (a := watch.update("churn", "pretrained", 1, p, as_of_ms=i * 1000)) is not None:
...         raised.append(a)
>>> len(raised) >= 1 and all(a.statistic == "adwin" and a.window_end_ms >= 3_000_000 for a in raised)
True
>>> raised[0].alert_id
'adwin:churn/pretrained:loss:3007000'
>>> better = LossWatch()  # the other way round: the loss falls, no alert
>>> [a for i in range(4000) if (a := better.update("churn", "online", 1, 0.2 if i < 3000 else 0.8, i))]
[]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from river.drift import ADWIN

from core.days import DAY_MS
from models.drift import ALERT, WARN

ALERT_COLUMNS = (
    "alert_id", "raised_at", "task", "model", "version", "feature", "statistic", "value", "threshold", "level",
    "window_start", "window_end",
)  # fmt: skip
EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()
ADWIN_DELTA = 0.002  # river's default: the confidence of a change


@dataclass(frozen=True)
class Thresholds:
    """The alert thresholds every worker applies, set through the API (``PUT /v1/admin/drift-thresholds``).

    >>> Thresholds.from_fields({b"psi_warn": b"0.2"})
    Thresholds(psi_warn=0.2, psi_alert=0.25, adwin_delta=0.002)
    >>> Thresholds(psi_warn=0.3, psi_alert=0.2)
    Traceback (most recent call last):
    ...
    ValueError: thresholds need 0 < psi_warn <= psi_alert and 0 < adwin_delta < 1
    """

    psi_warn: float = WARN
    psi_alert: float = ALERT
    adwin_delta: float = ADWIN_DELTA

    def __post_init__(self) -> None:
        if not (0 < self.psi_warn <= self.psi_alert and 0 < self.adwin_delta < 1):
            raise ValueError("thresholds need 0 < psi_warn <= psi_alert and 0 < adwin_delta < 1")

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Thresholds:
        """From a Redis hash (bytes or str keys; a field not set keeps its default)."""
        text = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in fields.items()}
        return cls(**{k: v for k, v in text.items() if k in cls.__dataclass_fields__})

    def to_fields(self) -> dict[Any, Any]:  # a Redis hash's fields
        return {k: repr(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Alert:
    """One alert: a statistic of a model (and feature) over a window of event time that crossed a threshold."""

    task: str
    model: str
    version: str
    feature: str  # '' for the score's PSI and for a loss
    statistic: str  # psi | adwin
    value: float
    threshold: float
    level: str  # warn | alert
    window_start_ms: int
    window_end_ms: int

    @property
    def alert_id(self) -> str:
        """Stable: the same alert raised again (a job redone after a crash) has the same id, the Kafka key."""
        ref = f"{self.task}/{self.model}" + (f"@{self.version}" if self.version else "")
        return f"{self.statistic}:{ref}:{self.feature or ('score' if self.statistic == 'psi' else 'loss')}:" + str(
            self.window_end_ms
        )

    def row(self, raised_ms: int) -> tuple[Any, ...]:
        """The ClickHouse ``alerts`` row (:data:`ALERT_COLUMNS`; times as epoch ms)."""
        d = asdict(self)
        return (
            self.alert_id,
            raised_ms,
            *(d[c] for c in ALERT_COLUMNS[2:10]),
            self.window_start_ms,
            self.window_end_ms,
        )

    def to_json(self, raised_ms: int) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "raised_ms": raised_ms, **asdict(self)}


def psi_alerts(drifts: Iterable[Any], thresholds: Thresholds) -> list[Alert]:
    """The alerts of a day's PSI report (:func:`models.population.report`, levelled with ``thresholds``): one per
    statistic at ``warn`` or ``alert``, its window the day whose end the sample was taken at.

    >>> import datetime as dt
    >>> from models.population import Drift
    >>> day = dt.date(1970, 1, 3)
    >>> report = [Drift(day, "churn", "m", "v", f, p, 9, lvl) for f, p, lvl in [("f", 0.3, "alert"), ("g", 0.0, "ok")]]
    >>> [a] = psi_alerts(report, Thresholds())
    >>> a.window_start_ms // DAY_MS, (a.window_end_ms + 1) // DAY_MS, a.threshold, a.alert_id
    (2, 3, 0.25, 'psi:churn/m@v:f:259199999')
    """
    out = []
    for d in drifts:
        if d.level in ("warn", "alert"):
            start = (d.day.toordinal() - EPOCH_ORDINAL) * DAY_MS  # the day, to its end: the sample's as-of
            limit = thresholds.psi_alert if d.level == "alert" else thresholds.psi_warn
            out.append(
                Alert(d.task, d.model, d.version, d.feature, "psi", d.psi, limit, d.level, start, start + DAY_MS - 1)
            )
    return out


class LossWatch:
    """ADWIN per (task, model kind) on the log loss of each resolved label's score, in the order labels resolve.

    In memory: a restarted worker starts its detectors again from the labels it learns next.
    """

    def __init__(self, delta: float = ADWIN_DELTA) -> None:
        self.delta = delta
        self.detectors: dict[tuple[str, str], ADWIN] = {}
        self.times: dict[tuple[str, str], deque[int]] = {}
        self.pending: list[Alert] = []  # raised, not yet sent (:meth:`take`)

    def take(self) -> list[Alert]:
        out, self.pending = self.pending, []
        return out

    def retune(self, delta: float) -> None:
        """A new delta starts every detector again (ADWIN's delta is fixed at construction)."""
        if delta != self.delta:
            self.delta = delta
            self.detectors.clear()
            self.times.clear()

    def update(self, task: str, kind: str, y: int, p: float, as_of_ms: int) -> Alert | None:
        """Feed one label; an alert if the detector found a change that raised the mean loss."""
        key = (task, kind)
        if (adwin := self.detectors.get(key)) is None:
            adwin = self.detectors[key] = ADWIN(delta=self.delta)
            self.times[key] = deque(maxlen=100_000)
        q = min(max(p, 1e-6), 1 - 1e-6)
        loss = -math.log(q if y else 1 - q)
        before = adwin.estimation
        times = self.times[key]
        times.append(as_of_ms)
        adwin.update(loss)
        if not adwin.drift_detected or adwin.estimation <= before:
            return None
        start = times[-min(int(adwin.width), len(times))]
        alert = Alert(task, kind, "", "", "adwin", round(adwin.estimation, 6), self.delta, "alert", start, as_of_ms)
        self.pending.append(alert)
        return alert
