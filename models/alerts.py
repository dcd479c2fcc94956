"""Alerts on drift: the thresholds, the alert record, and ADWIN on each model's progressive-validation loss.

Two sources raise alerts:

- the daily drift job (:mod:`streams.drift_watch`): a feature's, or the score's, PSI for a day at or above
  ``psi_warn`` (level ``warn``) or ``psi_alert`` (level ``alert``) becomes an alert (:func:`psi_alerts`);
- the online learner: :class:`LossWatch` feeds each resolved label's log loss, per task and model kind, to an ADWIN
  detector (river), and a change that *raises* the mean loss by at least ``adwin_rise`` (20 %) becomes an ``adwin``
  alert (a loss that falls, a model learning, is no alarm).

>>> watch = LossWatch(delta=0.002)
>>> raised = []
>>> for i in range(4000):
...     p = 0.8 if i < 3000 else 0.2  # the model goes from right to wrong on positive labels
...     raised += watch.update("churn", "pretrained", 1, p, as_of_ms=i * 1000)
>>> len(raised) >= 1 and all(a.statistic == "adwin" and a.window_end_ms >= 3_000_000 for a in raised)
True
>>> raised[0].alert_id
'adwin:churn/pretrained:loss:3207000'
>>> slight = LossWatch()  # a change ADWIN finds, but the loss rises by 11 % only (under adwin_rise, 20 %)
>>> [a for i in range(8000) for a in slight.update("churn", "pretrained", 1, 0.8 if i < 4000 else 0.78, i)]
[]
>>> held = LossWatch()  # labels wait for their horizon (purchase: 30 days), then go in as-of order
>>> held.update("purchase", "online", 1, 0.9, as_of_ms=5 * DAY_MS, until_ms=20 * DAY_MS), held.times
([], {})
>>> _ = held.update("purchase", "online", 0, 0.1, as_of_ms=1 * DAY_MS, until_ms=40 * DAY_MS)
>>> [t // DAY_MS for t in held.times[("purchase", "online")]]
[1, 5]
>>> better = LossWatch()  # the other way round: the loss falls, no alert
>>> [a for i in range(4000) for a in better.update("churn", "online", 1, 0.2 if i < 3000 else 0.8, i)]
[]
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from river.drift import ADWIN

from core.days import DAY_MS
from core.tasks import TASKS
from models.drift import ALERT, WARN

ALERT_COLUMNS = (
    "alert_id", "raised_at", "task", "model", "version", "feature", "statistic", "value", "threshold", "level",
    "window_start", "window_end",
)  # fmt: skip
EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()
ADWIN_DELTA = 0.002  # river's default: the confidence of a change
ADWIN_RISE = 0.2  # the least relative rise of the mean loss a change must show to alert
MIN_LABELS = 200  # an armed detector alerts only on a window this wide: a few bad labels are no trend
MAX_WAITING = 500_000  # labels per (task, model kind) waiting for their horizon: past it, the oldest are fed


@dataclass(frozen=True)
class Thresholds:
    """The alert thresholds every worker applies, set through the API (``PUT /v1/admin/drift-thresholds``).

    >>> Thresholds.from_fields({b"psi_warn": b"0.2"})
    Thresholds(psi_warn=0.2, psi_alert=0.25, adwin_delta=0.002, adwin_rise=0.2)
    >>> Thresholds(psi_warn=0.3, psi_alert=0.2)
    Traceback (most recent call last):
    ...
    ValueError: thresholds need 0 < psi_warn <= psi_alert, 0 < adwin_delta < 1 and adwin_rise >= 0
    """

    psi_warn: float = WARN
    psi_alert: float = ALERT
    adwin_delta: float = ADWIN_DELTA
    adwin_rise: float = ADWIN_RISE

    def __post_init__(self) -> None:
        if not (0 < self.psi_warn <= self.psi_alert and 0 < self.adwin_delta < 1 and self.adwin_rise >= 0):
            raise ValueError("thresholds need 0 < psi_warn <= psi_alert, 0 < adwin_delta < 1 and adwin_rise >= 0")

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

    A change that raised the mean loss arms the detector with the mean before it; it alerts once ADWIN's mean is
    ``rise`` above that (ADWIN keeps some of the old labels after a cut, so its mean gets there as the new ones
    come), over at least ``MIN_LABELS`` labels: with thousands of labels a day, ADWIN finds changes too small to act
    on, such as a customer base still growing, and right after a cut its window may hold a handful of labels.
    Labels are fed in the order of their snapshots' as-of, once their horizon has passed (:meth:`update`), so the
    stream ADWIN sees does not depend on how labels happen to resolve; the alert's window is the as-of span of the
    labels in ADWIN's window, its threshold the old mean loss raised by ``rise``.

    In memory: a restarted worker starts its detectors again from the labels it learns next.
    """

    def __init__(self, delta: float = ADWIN_DELTA, rise: float = ADWIN_RISE) -> None:
        self.delta, self.rise = delta, rise
        self.detectors: dict[tuple[str, str], ADWIN] = {}
        self.times: dict[tuple[str, str], deque[int]] = {}
        self.armed: dict[tuple[str, str], float] = {}  # after a change that raised the loss: the mean before it
        self.waiting: dict[tuple[str, str], list[tuple[int, int, float]]] = {}  # (as_of, seq, loss) heaps
        self._seq = itertools.count()
        self.pending: list[Alert] = []  # raised, not yet sent (:meth:`take`)

    def take(self) -> list[Alert]:
        out, self.pending = self.pending, []
        return out

    def retune(self, delta: float, rise: float = ADWIN_RISE) -> None:
        """A new delta starts every detector again (ADWIN's delta is fixed at construction)."""
        self.rise = rise
        if delta != self.delta:
            self.delta = delta
            self.detectors.clear()
            self.times.clear()
            self.armed.clear()  # the labels waiting are kept: the new detectors get them

    def update(self, task: str, kind: str, y: int, p: float, as_of_ms: int, until_ms: int | None = None) -> list[Alert]:
        """Take one resolved label (its snapshot's ``as_of_ms``), then feed ADWIN, in as-of order, every label
        taken whose horizon ``until_ms`` (the learner's watermark) has passed: every label of that as-of has then
        resolved, both classes (a churned label settles only when the horizon ends, a retained one at the next
        event; fed as they resolve, the stream would be all retained labels for a horizon after a start, then
        not). Without ``until_ms`` the label is fed at once. Returns the alerts raised."""
        key = (task, kind)
        q = min(max(p, 1e-6), 1 - 1e-6)
        heap = self.waiting.setdefault(key, [])
        heapq.heappush(heap, (as_of_ms, next(self._seq), -math.log(q if y else 1 - q)))
        horizon = TASKS[task].horizon_days * DAY_MS
        out = []
        while heap and (until_ms is None or heap[0][0] + horizon <= until_ms or len(heap) > MAX_WAITING):
            at, _, loss = heapq.heappop(heap)
            if (alert := self._feed(key, loss, at)) is not None:
                out.append(alert)
        return out

    def _feed(self, key: tuple[str, str], loss: float, at_ms: int) -> Alert | None:
        if (adwin := self.detectors.get(key)) is None:
            adwin = self.detectors[key] = ADWIN(delta=self.delta)
            self.times[key] = deque(maxlen=100_000)
        before = adwin.estimation
        times = self.times[key]
        times.append(at_ms)
        adwin.update(loss)
        if adwin.drift_detected:  # a change: armed if the loss went up, with the mean before it
            if adwin.estimation > before:
                self.armed[key] = before
            else:
                self.armed.pop(key, None)
        old = self.armed.get(key)
        if old is None or adwin.width < MIN_LABELS or adwin.estimation <= (limit := old * (1 + self.rise)):
            return None
        del self.armed[key]
        start = times[-min(int(adwin.width), len(times))]
        alert = Alert(*key, "", "", "adwin", round(adwin.estimation, 6), round(limit, 6), "alert", start, at_ms)
        self.pending.append(alert)
        return alert
