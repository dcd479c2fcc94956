"""The true label probability of a generated row: P(label | latent parameters, events up to as_of).

Everything comes from the generator's own definitions (``simulation.generator``): the weekday profile, the
session window, the funnel constants and the user's latent rates. For a row (user, as_of) the future after
``as_of`` has three independent parts, given what the generator knows and the events seen so far:

1. the rest of each session still open at ``as_of`` (the session of the row's event, and any other whose last
   event is less than ``MAX_GAP_MS`` earlier): more pages with 1 + Poisson(``EXTRA_PAGES_MEAN``) pages in all,
   a cart add after a product page, the remove and the purchase at the end;
2. the sessions not started yet: a Poisson process whose rate on day ``d`` is ``engagement * WEEKDAY[d]``
   spread uniformly over ``[d, d + SESSION_SPAN_MS)``, from ``as_of`` on (the rest of the day included);
3. the departure: ``churn_ms = signup + L days`` with L geometric, so given the user is active at ``as_of``
   it is the next such grid point, plus a geometric number of whole days. No session starts after it, nor after
   the end of the simulation (``end_ms``), which censors labels whose horizon runs past it.

Churn (no event in (as_of, as_of + 60 d]) is P(no open session goes on) x P(no new session before the horizon,
the departure or the end). Purchase (a purchase in (as_of, as_of + 30 d]) is one minus P(no open session ends
in a purchase) x P(no new purchasing session before those), new purchasing sessions being the session process
thinned by :func:`session_purchase_probability`.

Two approximations remain, both far below sampling error: the open sessions' remaining events are not cut by a
departure in the next few minutes, and an open session other than the row's own is not conditioned on having
been quiet since its last event.

>>> from simulation import generator
>>> users = generator.make_users(50, days=120, seed=4)
>>> events = generator.simulate(users, days=120, seed=4)
>>> o = Oracle(users, events, end_ms=generator.DEFAULT_START_MS + 120 * DAY_MS)
>>> e = events[len(events) // 2]
>>> 0.0 <= o.probability("churn", e["user_id"], e["ts"]) <= 1.0
True
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import poisson

from core.tasks import TASKS
from features.state import DAY_MS
from simulation.generator import (
    EXTRA_PAGES_MEAN,
    MAX_GAP_MS,
    PRODUCT_SHARE,
    REMOVE_RATE,
    SESSION_SPAN_MS,
    WEEKDAY,
    User,
    weekday,
)

_MAX_PAGES = 60  # Poisson(2.5) tail beyond this is below 1e-40
_PAGES_PMF = poisson.pmf(np.arange(4 * _MAX_PAGES), EXTRA_PAGES_MEAN)  # P(N = n) = _PAGES_PMF[n - 1], N >= 1


@dataclass(frozen=True)
class SessionState:
    """Where a session stands after its events up to as_of."""

    pages: int = 0  # page views so far
    cart: int = 0  # items in the cart (adds less removes)
    add_pending: bool = False  # the last event is a product view, whose cart add is still to be drawn
    checkout: bool = False  # the remove step is done (its event seen): only the purchase can follow
    done: bool = False  # the purchase is seen: nothing follows


def session_state(events: Sequence[dict]) -> SessionState:
    """The state of a session from its generated events so far (in time order)."""
    pages = sum(e["type"] == "page_view" for e in events)
    adds = sum(e["type"] == "cart" and e["action"] == "add" for e in events)
    removes = sum(e["type"] == "cart" and e["action"] == "remove" for e in events)
    last = events[-1] if events else {}
    return SessionState(
        pages=pages,
        cart=adds - removes,
        add_pending=last.get("type") == "page_view" and last.get("page_type") == "product",
        checkout=removes > 0,
        done=any(e["type"] == "purchase" for e in events),
    )


def _future_adds(u: User, s: SessionState) -> tuple[float, float, float]:
    """(P(no more pages), P(0 more cart adds), P(exactly 1 more cart add)) for a session in its page loop."""
    n = np.arange(max(s.pages, 1), max(s.pages, 1) + _MAX_PAGES)  # total pages N, given N >= pages so far
    pmf = _PAGES_PMF[np.minimum(n, len(_PAGES_PMF)) - 1]
    if not pmf.sum() > 0:  # further out than floats reach: the tail is geometric-fast, no page follows
        pmf = (n == n[0]).astype(np.float64)
    k = n - s.pages  # pages still to come
    pmf_k = pmf / pmf.sum()
    b = PRODUCT_SHARE * u.cart_rate  # a page adds to the cart
    zero = float(np.sum(pmf_k * (1 - b) ** k))  # no add among the coming pages
    one = float(np.sum(pmf_k * k * b * (1 - b) ** np.maximum(k - 1, 0)))
    if s.add_pending:
        a = u.cart_rate
        zero, one = (1 - a) * zero, a * zero + (1 - a) * one
    return float(pmf_k[k == 0].sum()), zero, one


def session_outcome(u: User, s: SessionState) -> tuple[float, float]:
    """(P(the session has no further event), P(it ends in a purchase still to come)).

    >>> u = User("u", 0, 1.0, 0.02, 0.5, 0.3, 10 * DAY_MS)
    >>> session_outcome(u, SessionState(pages=2, cart=1, checkout=True))
    (0.5, 0.5)
    """
    p = u.purchase_propensity
    if s.done:
        return 1.0, 0.0
    if s.checkout:
        return (1 - p, p) if s.cart > 0 else (1.0, 0.0)
    no_page, zero, one = _future_adds(u, s)
    quiet = no_page * ((1 - u.cart_rate) if s.add_pending else 1.0) * ((1 - REMOVE_RATE) * (1 - p) if s.cart else 1.0)
    if s.cart >= 2:
        return quiet, p
    if s.cart == 1:  # the only item is removed only if nothing else was added
        return quiet, p * (1 - REMOVE_RATE * zero)
    return quiet, p * (1 - zero - REMOVE_RATE * one)


@functools.cache
def session_purchase_probability(u: User) -> float:
    """P(a new session ends in a purchase), from the funnel."""
    return session_outcome(u, SessionState())[1]


def _sessions_cumulative(u: User, t0: int, t_ms: np.ndarray) -> np.ndarray:
    """Expected sessions starting in (t0, t] for each t in ``t_ms`` (all >= t0), while the user is active."""
    day0 = t0 // DAY_MS
    last_day = (int(t_ms.max()) + 1) // DAY_MS
    days = np.arange(day0, last_day + 1)
    rate = u.engagement * WEEKDAY[weekday(days)]  # sessions per day

    def mass_before(t: np.ndarray) -> np.ndarray:  # expected sessions in [day0 start, t)
        d = t // DAY_MS - day0
        whole = np.concatenate(([0.0], np.cumsum(rate)))[d]
        part = np.minimum(t - (t // DAY_MS) * DAY_MS, SESSION_SPAN_MS) / SESSION_SPAN_MS
        return whole + rate[d] * part

    # sessions start at whole ms; "after t0" means from t0 + 1 on
    return mass_before(t_ms + 1) - mass_before(np.array([t0 + 1]))


def p_no_new_session(u: User, as_of_ms: int, horizon_ms: int, end_ms: int, thinning: float = 1.0) -> float:
    """P(no new session, thinned by ``thinning``, starts in (as_of, as_of + horizon] | active at as_of).

    A session starting at or after the departure or ``end_ms`` does not happen.
    """
    cap = min(as_of_ms + horizon_ms, end_ms - 1)
    if cap <= as_of_ms:
        return 1.0
    h = min(max(u.churn_hazard, 1e-12), 1.0)
    first = u.signup_ms + ((as_of_ms - u.signup_ms) // DAY_MS + 1) * DAY_MS  # the next possible departure
    departures = np.arange(first, cap + 1, DAY_MS, dtype=np.int64)  # departures that cut the window
    # sessions start strictly before the departure: the window is (as_of, departure - 1]
    ends = np.concatenate((departures - 1, [cap]))
    expected = thinning * _sessions_cumulative(u, as_of_ms, ends)
    j = np.arange(len(departures))
    weights = np.concatenate((h * (1 - h) ** j, [(1 - h) ** len(departures)]))
    return float(np.sum(weights * np.exp(-expected)))


class Oracle:
    """True label probabilities for rows of a generated history, given the users' latent parameters."""

    def __init__(self, users: Sequence[User], events: Sequence[dict], end_ms: int) -> None:
        """``events``: the generator's events (``simulate``); ``end_ms``: the end of the simulated period."""
        self.users = {u.user_id: u for u in users}
        self.end_ms = end_ms
        self._events: defaultdict[str, list[dict]] = defaultdict(list)
        for e in events:
            self._events[e["user_id"]].append(e)
        for evs in self._events.values():
            evs.sort(key=lambda e: e["ts"])
        self._ts = {user: [e["ts"] for e in evs] for user, evs in self._events.items()}
        self._session: dict[str, list[dict]] = defaultdict(list)  # session id -> its events, by time
        for evs in self._events.values():
            for e in evs:
                self._session[e["session_id"]].append(e)

    def open_sessions(self, user_id: str, as_of_ms: int) -> list[SessionState]:
        """The states of the user's sessions that may still go on after as_of."""
        evs, ts = self._events.get(user_id, []), self._ts.get(user_id, [])
        hi = bisect.bisect_right(ts, as_of_ms)
        lo = bisect.bisect_right(ts, as_of_ms - MAX_GAP_MS, hi=hi)
        # a session quiet for MAX_GAP_MS is over; the others may go on
        recent = sorted({e["session_id"] for e in evs[lo:hi]})
        return [session_state([e for e in self._session[sid] if e["ts"] <= as_of_ms]) for sid in recent]

    def probability(self, task: str, user_id: str, as_of_ms: int) -> float:
        """P(label = 1) for the row (user, as_of)."""
        u = self.users[user_id]
        if as_of_ms >= u.churn_ms:  # gone: no more events
            return 1.0 if task == "churn" else 0.0
        horizon = TASKS[task].horizon_days * DAY_MS
        outcomes = [session_outcome(u, s) for s in self.open_sessions(user_id, as_of_ms)]
        if task == "churn":
            quiet = math.prod(q for q, _ in outcomes)
            return quiet * p_no_new_session(u, as_of_ms, horizon, self.end_ms)
        no_buy = math.prod(1 - b for _, b in outcomes)
        q = session_purchase_probability(u)
        return 1.0 - no_buy * p_no_new_session(u, as_of_ms, horizon, self.end_ms, thinning=q)

    def scores(self, task: str, user_ids: Sequence[str], as_of_ms: Sequence[int]) -> np.ndarray:
        """:meth:`probability` for each row."""
        return np.array([self.probability(task, u, t) for u, t in zip(user_ids, as_of_ms, strict=True)])
