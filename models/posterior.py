"""The hidden state of generated users given what was seen, and the chance of no (purchasing) session ahead.

The generator (``simulation.latent``) moves each user through active / dormant / gone once a day; on each day the
sessions that start are Poisson with the state's rate over the day's session window (``[day, day +
SESSION_SPAN_MS)``, from the signup on, before the end of the simulation). The number of sessions that started on
each day is therefore all the history says about the state (what a session contains depends on the user's funnel,
not on the state), and a forward pass over the days gives P(state on day d | sessions up to the end of day d):
:func:`forward`. :func:`state_at` carries it into the day of ``as_of`` with the sessions up to ``as_of``.
:func:`p_no_session` is the backward pass: P(no session, thinned by ``q``, starts in (as_of, as_of + horizon]
| the state on as_of's day), for each state.

A session is counted from its first event; its start lies at most ``PAGE_GAP_MS[1]`` earlier, always on the same
day. A row within that much of a session start that has not shown its first event yet counts it as not started:
the one approximation, a chance of about 1e-3 per row.

>>> import numpy as np
>>> m = np.array([[[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # active -> dormant, dormant stays
>>> rates = Rates(np.array([2.0]), np.array([0.0]), np.array([0]), np.array([10 * DAY_MS]), m)
>>> counts = np.array([[1, 0, 0]])  # one session on day 0, none on days 1 and 2
>>> f = forward(rates, counts, first_day=0)
>>> f.round(3)[0].tolist()  # P(active) falls with each silent day
[[1.0, 0.0, 0.0], [0.388, 0.612, 0.0], [0.023, 0.977, 0.0]]
>>> p = p_no_session(rates, np.array([DAY_MS - 1]), horizon_ms=2 * DAY_MS)
>>> p.round(4).tolist()  # no session in the next two days: unlikely if active, sure if dormant or gone
[[0.1088, 1.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.days import DAY_MS
from simulation.generator import SESSION_SPAN_MS
from simulation.latent import ACTIVE, day_factor

_START = np.eye(3)[ACTIVE]  # the state on the signup day


@dataclass(frozen=True)
class Rates:
    """What the session process of each of a set of users depends on (one entry per user)."""

    engagement: np.ndarray  # active sessions per day before the weekday and season factor
    dormant_share: np.ndarray  # a dormant user's rate as a share of the active one
    signup_ms: np.ndarray
    end_ms: np.ndarray  # no session starts at or after this
    matrix: np.ndarray  # (users, 3, 3) day-to-day transitions over (active, dormant, gone)

    def take(self, idx: np.ndarray) -> Rates:
        """The rates of the users at ``idx`` (repeats allowed: one entry per row)."""
        return Rates(
            self.engagement[idx], self.dormant_share[idx], self.signup_ms[idx], self.end_ms[idx], self.matrix[idx]
        )

    def expected(self, day: np.ndarray, lo_ms: np.ndarray | int, hi_ms: np.ndarray | int) -> np.ndarray:
        """(users, 3) expected sessions starting in [lo_ms, hi_ms) on ``day`` in each state (one day per user)."""
        start = np.maximum(np.maximum(day * DAY_MS, self.signup_ms), lo_ms)
        stop = np.minimum(np.minimum(day * DAY_MS + SESSION_SPAN_MS, self.end_ms), hi_ms)
        active = self.engagement * day_factor(day) * np.clip(stop - start, 0, None) / SESSION_SPAN_MS
        return np.stack([active, active * self.dormant_share, np.zeros_like(active)], axis=1)


def _predict(a: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(users, 3): the state distribution a day after ``a``."""
    return np.einsum("us,ust->ut", a, matrix)


def _update(prior: np.ndarray, n: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """The posterior after seeing ``n`` sessions where each state expects ``mu`` (Poisson; n! cancels)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lik = np.where(mu > 0, -mu + n[:, None] * np.log(np.where(mu > 0, mu, 1.0)), 0.0)
        log_lik = np.where((mu <= 0) & (n[:, None] > 0), -np.inf, log_lik)
        top = np.max(np.where(prior > 0, log_lik, -np.inf), axis=1, keepdims=True)
        w = prior * np.exp(log_lik - np.where(np.isfinite(top), top, 0.0))
    total = w.sum(axis=1, keepdims=True)
    return np.where(total > 0, w / np.where(total > 0, total, 1.0), prior)


def forward(rates: Rates, counts: np.ndarray, first_day: int) -> np.ndarray:
    """(users, days, 3): P(state on day | sessions up to that day's end), for the days ``first_day`` on.

    ``counts[u, k]``: sessions of user ``u`` whose first event is on day ``first_day + k``.
    """
    n_users, n_days = counts.shape
    out = np.empty((n_users, n_days, 3))
    a = np.tile(_START, (n_users, 1))
    signup_day = rates.signup_ms // DAY_MS
    for k in range(n_days):
        day = np.full(n_users, first_day + k)
        prior = np.where((day <= signup_day)[:, None], _START, _predict(a, rates.matrix))
        a = _update(prior, counts[:, k], rates.expected(day, 0, np.iinfo(np.int64).max))
        out[:, k] = a
    return out


def state_at(rates: Rates, before: np.ndarray, as_of_ms: np.ndarray, n_today: np.ndarray) -> np.ndarray:
    """(rows, 3): P(state on as_of's day | sessions up to as_of), from ``before`` = the forward distribution at
    the end of the day before (ignored on the signup day) and ``n_today`` sessions of that day up to as_of."""
    day = as_of_ms // DAY_MS
    prior = np.where((day <= rates.signup_ms // DAY_MS)[:, None], _START, _predict(before, rates.matrix))
    return _update(prior, n_today, rates.expected(day, 0, as_of_ms + 1))


def p_no_session(rates: Rates, as_of_ms: np.ndarray, horizon_ms: int, thinning: np.ndarray | float = 1.0) -> np.ndarray:
    """(rows, 3): P(no session, each kept with chance ``thinning``, starts in (as_of, as_of + horizon] | the
    state on as_of's day), for each state on that day."""
    q = np.broadcast_to(np.asarray(thinning, dtype=np.float64), as_of_ms.shape)[:, None]
    first, last = as_of_ms // DAY_MS, (as_of_ms + horizon_ms) // DAY_MS
    beta = np.ones((len(as_of_ms), 3))
    for k in range(int(np.max(last - first, initial=0)), -1, -1):
        day = first + k
        lo = np.where(k == 0, as_of_ms + 1, 0)
        mu = rates.expected(day, lo, as_of_ms + horizon_ms + 1)
        beta = np.exp(-q * mu) * np.einsum("ust,ut->us", rates.matrix, beta)
    return beta
