"""The hidden day-by-day process behind a generated user: active, dormant or gone, and the session rates it drives.

Each user is in one of three states on each UTC day from their signup day on: ``A`` (active: sessions at their
full rate), ``D`` (dormant: a share of that rate, none with the generator's defaults) or ``G`` (gone: nothing, for
good). The state moves once a day, at midnight UTC, by the user's own transition matrix :func:`transitions`; the
signup day is ``A``. A dormant spell lasts ``1 / wake`` days on average, often longer than the 60 days after which
a quiet user counts as churned, so silence alone does not say whether a user left. The session rate also follows
the weekday and the season (:func:`day_factor`: a peak in late November, a trough in late May), so a quiet spring
is partly the calendar's.

Both the generator (``simulation.generator``) and the oracle (``models.oracle``) use these definitions: a change
here changes both.

>>> t = transitions(0.02, 0.03, 0.005, 0.01)
>>> t.round(3).tolist()
[[0.975, 0.02, 0.005], [0.03, 0.96, 0.01], [0.0, 0.0, 1.0]]
>>> float(day_factor(np.array([20_420]))[0]) > 1 > float(day_factor(np.array([20_420 + 183]))[0])  # Nov vs May
True
"""

from __future__ import annotations

import numpy as np

STATES = "ADG"  # active, dormant, gone: one letter per day in ``User.path``
ACTIVE, DORMANT, GONE = 0, 1, 2
WEEKDAY = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.25])  # Monday .. Sunday
SEASON_AMPLITUDE = 0.25  # the session rate swings by this share of itself over the year
SEASON_PEAK_DAY = 20_420  # 2025-11-28 (days since the epoch): the yearly peak, Black Friday
YEAR_DAYS = 365.25


def weekday(day: int | np.ndarray) -> int | np.ndarray:
    """Monday = 0 .. Sunday = 6 of a day number since the epoch (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


def day_factor(days: np.ndarray) -> np.ndarray:
    """The weekday and season multiplier of the session rate on each day (days since the epoch)."""
    season = 1.0 + SEASON_AMPLITUDE * np.cos(2 * np.pi * (days - SEASON_PEAK_DAY) / YEAR_DAYS)
    return WEEKDAY[weekday(days)] * season


def transitions(dormancy: float, wake: float, churn_hazard: float, dormant_hazard: float) -> np.ndarray:
    """The 3 x 3 day-to-day transition matrix over (A, D, G): row = today, column = tomorrow."""
    return np.array(
        [
            [1.0 - dormancy - churn_hazard, dormancy, churn_hazard],
            [wake, 1.0 - wake - dormant_hazard, dormant_hazard],
            [0.0, 0.0, 1.0],
        ]
    )


def draw_path(matrix: np.ndarray, n_days: int, rng: np.random.Generator) -> str:
    """The state letters of ``n_days`` days, starting active, drawn from ``matrix``.

    >>> path = draw_path(transitions(0.1, 0.1, 0.01, 0.01), 200, np.random.default_rng(0))
    >>> path[0], len(path), set(path) <= set(STATES), "GA" not in path and "GD" not in path
    ('A', 200, True, True)
    """
    cumulative = np.cumsum(matrix, axis=1)
    u = rng.random(n_days)
    states = np.empty(n_days, dtype=np.int8)
    s = ACTIVE
    for i in range(n_days):
        if i:
            s = int(np.searchsorted(cumulative[s], u[i], side="right"))
            s = min(s, GONE)
        states[i] = s
        if s == GONE:
            states[i:] = GONE
            break
    return "".join(STATES[k] for k in states)
