"""The true label probability of a generated row: P(label | latent parameters, events up to as_of).

Everything comes from the generator's own definitions (``simulation.generator`` and ``simulation.latent``): the
hidden active / dormant / gone process, the weekday and season factor, the session window, the funnel constants
and the user's latent rates. For a row (user, as_of) the future after ``as_of`` has two independent parts, given
the latent parameters and the events seen so far:

1. the rest of each session still open at ``as_of`` (the session of the row's event, and any other whose last
   event is less than ``MAX_GAP_MS`` earlier): more pages with 1 + Poisson(``EXTRA_PAGES_MEAN``) pages in all,
   a cart add after a product page, the remove and the purchase at the end; a session goes on whatever the
   hidden state does next;
2. the sessions not started yet: on each day a Poisson number whose mean is the hidden state's rate, spread
   uniformly over ``[d, d + SESSION_SPAN_MS)``, from ``as_of`` on (the rest of the day included), none at or
   after the end of the simulation (``end_ms``), which censors labels whose horizon runs past it.

The hidden state on as_of's day is not known: :meth:`Oracle.states` is its posterior given the sessions seen
since the signup (a forward pass over the days, ``models.posterior``), and every probability below is averaged
over it. Churn (no event in (as_of, as_of + 60 d]) is P(no open session goes on) x P(no new session before the
horizon or the end). Purchase (a purchase in (as_of, as_of + 30 d]) is one minus P(no open session ends in a
purchase) x P(no new purchasing session before those), new purchasing sessions being the session process thinned
by :func:`session_purchase_probability`. :meth:`Oracle.clairvoyant` is told the true hidden state instead: it
knows that a quiet user has gone, which no model can, so it is an answer, not a ceiling.

Two approximations remain, both far below sampling error: an open session other than the row's own is not
conditioned on having been quiet since its last event, and a session counts from its first event, up to two
minutes after its start (``models.posterior``).

>>> from simulation import generator
>>> users = generator.make_users(50, days=120, seed=4)
>>> events = generator.simulate(users, days=120, seed=4)
>>> o = Oracle(users, events, end_ms=generator.DEFAULT_START_MS + 120 * DAY_MS)
>>> e = events[len(events) // 2]
>>> 0.0 <= o.probability("churn", e["user_id"], e["ts"]) <= 1.0, o.states([e["user_id"]], [e["ts"]]).shape
(True, (1, 3))
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

from core.days import DAY_MS
from core.tasks import TASKS
from models import posterior
from simulation.generator import (
    EXTRA_PAGES_MEAN,
    MAX_GAP_MS,
    PRODUCT_SHARE,
    REMOVE_RATE,
    User,
)

_KEY = 1 << 42  # > any ms timestamp: a session's sort key is user index * _KEY + its first event's ts
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


class Oracle:
    """True label probabilities for rows of a generated history, given the users' latent parameters.

    :meth:`probability` and :meth:`scores` see the history up to as_of only (the posterior over the hidden state);
    :meth:`clairvoyant` and :meth:`clairvoyant_scores` are told the true state on as_of's day instead.
    """

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
        self._index = {u.user_id: i for i, u in enumerate(users)}
        self._list = list(users)
        self._rates = posterior.Rates(
            np.array([u.engagement for u in users], dtype=np.float64),
            np.array([u.dormant_share for u in users], dtype=np.float64),
            np.array([u.signup_ms for u in users], dtype=np.int64),
            np.full(len(users), end_ms, dtype=np.int64),
            np.array([u.matrix() for u in users]).reshape(len(users), 3, 3),
        )
        # each session counts on the day of its first event: one sorted key (user index, first event) per session
        firsts = [(self._index[evs[0]["user_id"]], evs[0]["ts"]) for evs in self._session.values()]
        self._starts = np.sort(np.array([i * _KEY + t for i, t in firsts], dtype=np.int64))
        self._first_day = min(u.signup_ms for u in users) // DAY_MS if users else 0
        self._filtered: np.ndarray | None = None

    def _forward(self) -> np.ndarray:
        """P(state on each day | sessions up to its end) for every user and day: computed once."""
        if self._filtered is None:
            n_days = max(1, (self.end_ms - 1) // DAY_MS - self._first_day + 1)
            user, day = self._starts // _KEY, self._starts % _KEY // DAY_MS - self._first_day
            counts = np.zeros((len(self._list), n_days), dtype=np.int64)
            inside = (day >= 0) & (day < n_days)
            np.add.at(counts, (user[inside], day[inside]), 1)
            self._filtered = posterior.forward(self._rates, counts, self._first_day)
        return self._filtered

    def open_sessions(self, user_id: str, as_of_ms: int) -> list[SessionState]:
        """The states of the user's sessions that may still go on after as_of."""
        evs, ts = self._events.get(user_id, []), self._ts.get(user_id, [])
        hi = bisect.bisect_right(ts, as_of_ms)
        lo = bisect.bisect_right(ts, as_of_ms - MAX_GAP_MS, hi=hi)
        # a session quiet for MAX_GAP_MS is over; the others may go on
        recent = sorted({e["session_id"] for e in evs[lo:hi]})
        return [session_state([e for e in self._session[sid] if e["ts"] <= as_of_ms]) for sid in recent]

    def states(self, user_ids: Sequence[str], as_of_ms: Sequence[int]) -> np.ndarray:
        """(rows, 3): P(active, dormant, gone on as_of's day | latent parameters, sessions up to as_of)."""
        idx = np.array([self._index[u] for u in user_ids], dtype=np.int64)
        t = np.asarray(as_of_ms, dtype=np.int64)
        filtered = self._forward()
        k = np.clip(t // DAY_MS - 1 - self._first_day, 0, filtered.shape[1] - 1)
        before = filtered[idx, k]
        # sessions of as_of's day up to as_of: first events in [day start, as_of]
        n_today = np.searchsorted(self._starts, idx * _KEY + t, side="right") - np.searchsorted(
            self._starts, idx * _KEY + t // DAY_MS * DAY_MS, side="left"
        )
        return posterior.state_at(self._rates.take(idx), before, t, n_today)

    def true_states(self, user_ids: Sequence[str], as_of_ms: Sequence[int]) -> np.ndarray:
        """(rows, 3): the generator's hidden state on as_of's day, one-hot (the clairvoyant's knowledge)."""
        return np.eye(3)[[self.users[u].state_on(t // DAY_MS) for u, t in zip(user_ids, as_of_ms, strict=True)]]

    def _given(self, task: str, user_ids: Sequence[str], as_of_ms: Sequence[int], state: np.ndarray) -> np.ndarray:
        """P(label = 1) of each row given the distribution ``state`` of its hidden state on as_of's day."""
        idx = np.array([self._index[u] for u in user_ids], dtype=np.int64)
        t = np.asarray(as_of_ms, dtype=np.int64)
        horizon = TASKS[task].horizon_days * DAY_MS
        outcomes = [
            [session_outcome(self.users[u], s) for s in self.open_sessions(u, a)]
            for u, a in zip(user_ids, t.tolist(), strict=True)
        ]
        rates = self._rates.take(idx)
        if task == "churn":
            quiet = np.array([math.prod(q for q, _ in o) for o in outcomes])
            return quiet * np.sum(state * posterior.p_no_session(rates, t, horizon), axis=1)
        no_buy = np.array([math.prod(1 - b for _, b in o) for o in outcomes])
        q = np.array([session_purchase_probability(self._list[i]) for i in idx.tolist()])
        return 1.0 - no_buy * np.sum(state * posterior.p_no_session(rates, t, horizon, thinning=q), axis=1)

    def scores(self, task: str, user_ids: Sequence[str], as_of_ms: Sequence[int]) -> np.ndarray:
        """P(label = 1 | latent parameters, history up to as_of) for each row (user, as_of)."""
        if not len(user_ids):
            return np.zeros(0)
        return self._given(task, user_ids, as_of_ms, self.states(user_ids, as_of_ms))

    def clairvoyant_scores(self, task: str, user_ids: Sequence[str], as_of_ms: Sequence[int]) -> np.ndarray:
        """P(label = 1 | latent parameters, open sessions, the true hidden state on as_of's day) for each row."""
        if not len(user_ids):
            return np.zeros(0)
        return self._given(task, user_ids, as_of_ms, self.true_states(user_ids, as_of_ms))

    def probability(self, task: str, user_id: str, as_of_ms: int) -> float:
        """P(label = 1) for the row (user, as_of), from the history up to as_of."""
        return float(self.scores(task, [user_id], [as_of_ms])[0])

    def clairvoyant(self, task: str, user_id: str, as_of_ms: int) -> float:
        """P(label = 1) for the row (user, as_of) told the user's true hidden state: an answer, not a ceiling."""
        return float(self.clairvoyant_scores(task, [user_id], [as_of_ms])[0])
