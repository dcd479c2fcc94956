"""The true label probabilities of a generated user, from its latent parameters.

Given that the user is still active at ``as_of`` (the generator knows), the remaining lifetime in days is
geometric with the user's churn hazard, sessions per day are Poisson with the engagement rate times the
weekday factor, and a session ends in a purchase with a probability that follows from the funnel. The
probabilities are computed exactly at day resolution. No model can rank users better than these, so their
AUC is the ceiling ("oracle AUC").
"""

from __future__ import annotations

import math

import numpy as np

from features.state import DAY_MS
from streams.generator import WEEKDAY, User

PAGES_MEAN = 2.5  # extra page views per session (Poisson), as in the generator
PRODUCT_SHARE = 0.6
REMOVE_RATE = 0.15


def session_purchase_probability(u: User) -> float:
    """P(a session ends in a purchase): a non-empty cart at the end, times the purchase propensity."""
    a = PRODUCT_SHARE * u.cart_rate  # chance that a page view adds to the cart
    p_none = (1 - a) * math.exp(-PAGES_MEAN * a)
    p_one = a * math.exp(-PAGES_MEAN * a) * (1 + PAGES_MEAN * (1 - a))
    return (1 - p_none - REMOVE_RATE * p_one) * u.purchase_propensity


def _p_none(u: User, as_of_ms: int, days: int, rate_per_session: float) -> float:
    """P(no qualifying session in the next ``days`` days | active at as_of), with geometric remaining life."""
    h = min(max(u.churn_hazard, 1e-9), 1.0)
    first_day = as_of_ms // DAY_MS + 1
    weekday = (np.arange(first_day, first_day + days) + 3) % 7
    quiet = np.exp(-u.engagement * WEEKDAY[weekday] * rate_per_session)  # P(no qualifying session | active day)
    survive = np.cumprod(quiet)  # quiet through day d
    k = np.arange(1, days + 1)
    p_churn_at = h * (1 - h) ** (k - 1)  # leaves after k - 1 full active days
    before = np.concatenate(([1.0], survive[:-1]))
    return float(np.sum(p_churn_at * before) + (1 - h) ** days * survive[-1])


def probability(task: str, u: User, as_of_ms: int) -> float:
    if as_of_ms >= u.churn_ms:  # already gone: no more events, no purchases
        return 1.0 if task == "churn" else 0.0
    if task == "churn":
        return _p_none(u, as_of_ms, 60, 1.0)
    return 1.0 - _p_none(u, as_of_ms, 30, session_purchase_probability(u))
