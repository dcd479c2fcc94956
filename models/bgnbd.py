"""The BG/NBD buy-till-you-die baseline for purchase (Fader, Hardie and Lee 2005), through ``lifetimes``.

At a calendar cutoff, each user's purchase history before it is summed up in days, as BG/NBD expects: the
user is born at their first event (of any kind, so visitors who never bought are scored too); ``frequency`` is
the number of distinct later days with a purchase, ``recency`` the day of the last of them less the birth day
(0 without one) and ``T`` the cutoff's day less the birth day. The model is fitted by maximum likelihood on
every user born by the cutoff, and a user's score is the expected number of purchases in the next
``horizon_days`` given that history: the ranking a CRM team would get from it.

``lifetimes`` (the reference implementation, in maintenance mode since 2020) works with our numpy, pandas and
scipy and fits in well under a second; ``pymc-marketing`` also installs but brings PyMC, PyTensor and
matplotlib (about 570 MB) and compiles for about a minute per fit. The wrapper keeps the choice in one place.

>>> from core.contracts import Event
>>> from core.days import day_end
>>> evs = {"a": [Event("page_view", "1", "a", 0), Event("purchase", "2", "a", 5 * DAY_MS)],
...        "b": [Event("page_view", "3", "b", DAY_MS)]}
>>> history(evs, ["a", "b", "c"], as_of_ms=day_end(9))
(array([1., 0., 0.]), array([5., 0., 0.]), array([ 9.,  8., -1.]))
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from core.contracts import Event
from core.days import DAY_MS


def history(
    accepted: dict[str, list[Event]], users: Iterable[str], as_of_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) in days of each user's events up to ``as_of_ms``; ``T`` is -1 for a user not born
    yet."""
    freq, rec, age = [], [], []
    today = as_of_ms // DAY_MS
    for user in users:
        events = [e for e in accepted.get(user, []) if e.ts_ms <= as_of_ms]
        birth = events[0].ts_ms // DAY_MS if events else today + 1
        days = sorted({e.ts_ms // DAY_MS for e in events if e.kind == "purchase"} - {birth})
        freq.append(float(len(days)))
        rec.append(float(days[-1] - birth) if days else 0.0)
        age.append(float(today - birth))
    return np.array(freq), np.array(rec), np.array(age)


class BGNBD:
    """A fitted BG/NBD model: :meth:`fit` on (frequency, recency, T), then :meth:`expected` purchases."""

    LOG_BOUNDS = (-15.0, 15.0)  # each log-parameter: wide, but a boundary optimum (no dropout) stays finite

    def fit(self, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray) -> BGNBD:
        """Maximum likelihood on the users with ``age`` > 0 (born before the cutoff's day).

        The log-parameters are bounded by :attr:`LOG_BOUNDS` (``lifetimes`` then optimises with L-BFGS-B): when
        hardly anyone has dropped out yet, the optimum has the dropout probability at 0, and the unbounded
        optimiser runs off towards it and reports a failure to converge.
        """
        with warnings.catch_warnings():  # lifetimes sets a pandas option that pandas 3 deprecates
            warnings.simplefilter("ignore")
            from lifetimes import BetaGeoFitter
        keep = age > 0
        self._model = BetaGeoFitter().fit(frequency[keep], recency[keep], age[keep], bounds=[self.LOG_BOUNDS] * 4)
        return self

    @property
    def params(self) -> dict[str, float]:
        """r, alpha (the purchase rates' gamma), a, b (the dropout probability's beta)."""
        return {k: float(v) for k, v in self._model.params_.items()}

    def expected(self, days: float, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray) -> np.ndarray:
        """E[purchase days in the next ``days`` | the history]; users born on the cutoff's day count as age 0."""
        out = self._model.conditional_expected_number_of_purchases_up_to_time(
            days, frequency, recency, np.maximum(age, 0.0)
        )
        return np.nan_to_num(np.asarray(out, dtype=np.float64), nan=0.0)


def scores(accepted: dict[str, list[Event]], users: Sequence[str], as_of_ms: int, horizon_days: int = 30) -> np.ndarray:
    """Fit on every user of ``accepted`` born by ``as_of_ms`` and score ``users``: expected purchases in the next
    ``horizon_days``."""
    everyone = sorted(accepted)
    model = BGNBD().fit(*history(accepted, everyone, as_of_ms))
    return model.expected(horizon_days, *history(accepted, users, as_of_ms))
