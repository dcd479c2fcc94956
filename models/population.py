"""The live population of a day, read from ClickHouse and binned like the training rows, and its drift report.

The features come from ``daily_features`` (the worker's sample of users at each day end, see
:data:`models.drift.POPULATION_COLUMNS`), the scores from the day's ``time`` rows in ``predictions`` of the model the
profile belongs to. Binning happens in ClickHouse with the profile's edges, right-open as :class:`models.drift.Bins`
(``length(arrayFilter(e -> e <= v, edges))`` is numpy's ``searchsorted(edges, v, side="right")``), so only the counts
travel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.drift import ALERT, TRENDING, WARN, Profile, level, psi

FEATURE_COUNTS = """
SELECT i, length(arrayFilter(e -> e <= x[i], {edges:Array(Array(Float64))}[i])) AS bin, count() AS n
FROM daily_features FINAL
ARRAY JOIN arrayEnumerate(x) AS i
WHERE day = {day:Date} AND length(x) = length({edges:Array(Array(Float64))})
GROUP BY i, bin"""
SCORE_COUNTS = """
SELECT length(arrayFilter(e -> e <= score, {edges:Array(Float64)})) AS bin, count() AS n
FROM predictions FINAL
WHERE trigger = 'time' AND toDate(as_of) = {day:Date} AND task = {task:String} AND model_kind = 'pretrained'
  AND model = {model:String} AND model_version = {version:String}
GROUP BY bin"""
LATEST_DAY = "SELECT max(day) FROM daily_features"
FIRST_DAY = "SELECT min(day) FROM daily_features"


@dataclass(frozen=True)
class Drift:
    """One statistic of one day: a feature's PSI (``feature`` set) or the score's (``feature`` empty)."""

    day: dt.date
    task: str
    model: str
    version: str
    feature: str
    psi: float
    rows: int
    level: str


def feature_counts(client: Any, day: dt.date, prof: Profile) -> dict[str, np.ndarray]:
    """Per feature, the day's sampled rows in each of the profile's bins."""
    names = list(prof.features)
    edges = [list(b.edges) for b in prof.features.values()]
    counts = {n: np.zeros(len(b.edges) + 1, dtype=np.int64) for n, b in prof.features.items()}
    for i, b, n in client.query(FEATURE_COUNTS, parameters={"edges": edges, "day": day}).result_rows:
        counts[names[i - 1]][b] += n
    return counts


def score_counts(client: Any, day: dt.date, prof: Profile, task: str, model: str, version: str) -> np.ndarray:
    """The day's time-row scores of ``model``@``version`` in the profile's score bins."""
    assert prof.score is not None
    counts = np.zeros(len(prof.score.edges) + 1, dtype=np.int64)
    params = {"edges": list(prof.score.edges), "day": day, "task": task, "model": model, "version": version}
    for b, n in client.query(SCORE_COUNTS, parameters=params).result_rows:
        counts[b] += n
    return counts


def report(
    client: Any,
    day: dt.date,
    prof: Profile,
    task: str,
    model: str,
    version: str,
    limits: tuple[float, float] = (WARN, ALERT),
) -> list[Drift]:
    """The score's PSI, then each feature's, for ``day`` against the profile of ``model``@``version`` (``limits``: the
    warn and alert thresholds; a statistic with no rows that day is ``none``, a feature of
    :data:`~models.drift.TRENDING` is ``trend``)."""
    parts: list[tuple[str, tuple[float, ...], np.ndarray]] = []
    if prof.score is not None:
        parts.append(("", prof.score.share, score_counts(client, day, prof, task, model, version)))
    parts += [(n, prof.features[n].share, c) for n, c in feature_counts(client, day, prof).items()]
    out = []
    for feature, share, counts in parts:
        rows = int(counts.sum())
        value = psi(share, counts) if rows else 0.0  # no rows (a champion's scores on days it did not serve): none
        status = "none" if not rows else "trend" if feature in TRENDING else level(value, *limits)
        out.append(Drift(day, task, model, version, feature, value, rows, status))
    return out


def latest_day(client: Any) -> dt.date | None:
    """The latest day of the live population (None: nothing sampled yet)."""
    return _day(client, LATEST_DAY)


def first_day(client: Any) -> dt.date | None:
    """The first day of the live population (None: nothing sampled yet)."""
    return _day(client, FIRST_DAY)


def _day(client: Any, sql: str) -> dt.date | None:
    day = client.query(sql).result_rows[0][0]
    return None if day is None or day == dt.date(1970, 1, 1) else day
