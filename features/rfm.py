"""RFM segments: recency, frequency and monetary scores from 1 to 5 by quintiles of the active population, and the
named segment they map to. Pure functions; the definitions are in ``docs/segments.md``.

- **Recency**: days since the user's last event of any type (churn is silence), fewer is better.
- **Frequency**: the user's lifetime purchases, more is better.
- **Monetary**: the user's lifetime revenue, more is better.

All three are read from the feature vector (:func:`features.compute.features`), so a segment is taken at the same
moment, from the same state, as the scores beside it. The quintile boundaries are cut once a day over the active
population (every user with an event in the 60 days before the cut) and carry a version.

>>> cuts = Boundaries.fit([1, 3, 8, 20, 45], [0, 1, 1, 3, 9], [0.0, 20.0, 35.0, 90.0, 400.0], "rfm-test", 0)
>>> cuts.recency, cuts.frequency
((2.6, 6.0, 12.8, 25.0), (0.8, 1.0, 1.8, 4.2))
>>> scores(cuts, recency_days=0.5, frequency=12, monetary=800.0)
(5, 5, 5)
>>> segment(5, 5, 5), segment(5, 1, 1), segment(1, 5, 4), segment(1, 1, 1)
('Champions', 'New', "Can't Lose", 'Hibernating')
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np

from features.compute import FEATURE_NAMES

RFM_FEATURES = ("days_since_last_event", "lifetime_purchases", "lifetime_revenue")
_INDEX = tuple(FEATURE_NAMES.index(name) for name in RFM_FEATURES)
QUANTILES = (0.2, 0.4, 0.6, 0.8)

SEGMENTS = (
    "Champions",
    "Loyal",
    "Potential Loyalists",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose",
    "Hibernating",
)

# (recency score, combined frequency-monetary score) -> segment: the common 5 x 5 RFM grid (docs/segments.md)
_GRID = (
    # fm:  1              2                      3                      4            5
    ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose"),  # r = 1
    ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose"),  # r = 2
    ("About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"),  # r = 3
    ("Promising", "Potential Loyalists", "Potential Loyalists", "Loyal", "Loyal"),  # r = 4
    ("New", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"),  # r = 5
)


class Boundaries(msgspec.Struct, frozen=True):
    """The 20th, 40th, 60th and 80th percentiles of recency, frequency and monetary over the active population
    as of ``as_of_ms``; ``version`` names them in every segment computed with them."""

    version: str
    as_of_ms: int
    users: int
    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]

    @classmethod
    def fit(
        cls,
        recency: Sequence[float],
        frequency: Sequence[float],
        monetary: Sequence[float],
        version: str,
        as_of_ms: int,
    ) -> Boundaries:
        """Cut the quintiles of each measure (linear interpolation, numpy's default), rounded to 6 decimals."""
        if not len(recency):
            raise ValueError("no active user to cut quintiles from")

        def cut(values: Sequence[float]) -> tuple[float, ...]:
            return tuple(round(float(q), 6) for q in np.quantile(np.asarray(values, dtype=np.float64), QUANTILES))

        return cls(version, as_of_ms, len(recency), cut(recency), cut(frequency), cut(monetary))

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, blob: bytes | str) -> Boundaries:
        return msgspec.json.decode(blob, type=cls)


def _higher(value: float, cuts: Sequence[float]) -> int:
    """1 + the cuts strictly below ``value``: 5 above the 80th percentile; ties with a cut go down."""
    return 1 + sum(1 for c in cuts if c < value)


def scores(b: Boundaries, recency_days: float, frequency: float, monetary: float) -> tuple[int, int, int]:
    """(R, F, M), each from 1 (worst fifth) to 5 (best fifth). Recency is inverted: fewer days is better."""
    r = 1 + sum(1 for c in b.recency if c > recency_days)
    return r, _higher(frequency, b.frequency), _higher(monetary, b.monetary)


def segment(r: int, f: int, m: int) -> str:
    """The named segment of (R, F, M): by R and the mean of F and M rounded half up."""
    fm = (f + m + 1) // 2
    return _GRID[r - 1][fm - 1]


def measures(x: Sequence[float]) -> tuple[float, float, float]:
    """(recency days, frequency, monetary) from a feature vector in ``FEATURE_NAMES`` order."""
    return x[_INDEX[0]], x[_INDEX[1]], x[_INDEX[2]]


class Segment(msgspec.Struct, frozen=True):
    """A user's RFM segment at ``as_of_ms``, as stored beside the scores and in ClickHouse ``user_segments``."""

    segment: str
    r: int
    f: int
    m: int
    recency_days: float
    frequency: float
    monetary: float
    version: str
    as_of_ms: int
    trigger: str

    @property
    def code(self) -> str:
        """The three digits, e.g. ``"545"``."""
        return f"{self.r}{self.f}{self.m}"


def of_vector(b: Boundaries, x: Sequence[float], as_of_ms: int, trigger: str) -> Segment:
    """The segment of the user whose feature vector at ``as_of_ms`` is ``x``.

    >>> from features.compute import FEATURE_NAMES
    >>> x = [0.0] * len(FEATURE_NAMES)
    >>> x[FEATURE_NAMES.index("days_since_last_event")] = 40.0
    >>> x[FEATURE_NAMES.index("lifetime_purchases")] = 6.0
    >>> x[FEATURE_NAMES.index("lifetime_revenue")] = 250.0
    >>> cuts = Boundaries("v1", 0, 5, (2.0, 6.0, 12.0, 25.0), (0.0, 1.0, 2.0, 4.0), (0.0, 20.0, 40.0, 90.0))
    >>> s = of_vector(cuts, x, as_of_ms=0, trigger="time")
    >>> s.segment, s.code
    ("Can't Lose", '155')
    """
    recency, frequency, monetary = measures(x)
    r, f, m = scores(b, recency, frequency, monetary)
    return Segment(segment(r, f, m), r, f, m, recency, frequency, monetary, b.version, as_of_ms, trigger)
