"""A change of behaviour at a known day, for testing drift detection (``simulate(..., change=...)``).

From ``day`` on, every user's sessions, cart adds and purchases change by the given factors: a new competitor, a
price rise, a redesign. The oracle (``models.oracle``) does not know of it: it stays exact for simulations without
a change only, and a simulation with one is for drift tests, not for the calendar evaluation.

>>> c = BehaviourChange(day=100, sessions=0.5, cart=2.0)
>>> c.session_factor(np.array([99, 100])).tolist()
[1.0, 0.5]
>>> c.rates(0.3, 0.4, day=99), c.rates(0.3, 0.4, day=100)
((0.3, 0.4), (0.6, 0.4))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BehaviourChange:
    day: int  # days since the epoch: the first day of the new behaviour
    sessions: float = 1.0  # factor on every user's session rate
    cart: float = 1.0  # factor on the chance that a product view adds to cart (capped at 1)
    propensity: float = 1.0  # factor on the chance that a filled cart is bought (capped at 1)

    def session_factor(self, days: np.ndarray) -> np.ndarray:
        return np.where(days >= self.day, self.sessions, 1.0)

    def rates(self, cart_rate: float, propensity: float, day: int) -> tuple[float, float]:
        """A user's (cart rate, purchase propensity) on ``day``."""
        if day < self.day:
            return cart_rate, propensity
        return min(1.0, cart_rate * self.cart), min(1.0, propensity * self.propensity)


NO_CHANGE = BehaviourChange(day=10**9)  # the default: nothing changes
