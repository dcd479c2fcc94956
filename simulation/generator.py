"""Realistic page-view / cart / purchase streams from latent per-user parameters.

Each user has an engagement rate (sessions per day while active), a purchase propensity, a cart rate and the
rates of a hidden day-by-day process (``simulation.latent``): active, dormant (silent, often for longer than the
60-day churn horizon, then back) or gone for good. One latent "customer value" factor plus individual noise
drives them all, so the mix runs from near-daily visitors to a visit a month. Each user also has a favourite
category, and what a customer shops for says how they shop (:data:`REGIME`): grocery and beauty buyers
replenish at a steady pace and seldom pause, electronics and toy buyers buy less often and doze off for months
at a time, the rest lie in between. A weekday and a yearly season profile scale the sessions, and sessions walk
a view -> product view -> cart -> purchase funnel, mostly in the favourite category. As in real shops, a quiet
user may be dormant or gone: silence is evidence, not proof, and what a user shops for is evidence too. The
latent parameters and the hidden path are kept, so the true label probabilities can be computed for any (user,
as_of) (``models.oracle``).

``arrivals`` (``simulation.faults``) turns the events into the records a broker would see: some delayed (out of
order), some sent twice (producer retries), and some malformed, one of each DLQ reason in turn.

>>> users = make_users(3, days=30, seed=1)
>>> events = simulate(users, days=30, seed=1)
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from core.days import DAY_MS
from simulation import catalogue, latent
from simulation.catalogue import CATEGORIES
from simulation.drift import NO_CHANGE, BehaviourChange
from simulation.faults import MALFORMED_KINDS, TOPIC_OF, Record, arrivals, malformed_record, write_jsonl

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# The medians of the users' hidden-process rates (each user's own are spread around them, see ``make_users``)
ENGAGEMENT_MEDIAN = 0.42  # sessions per day while active, at activity 1
ENGAGEMENT_SPREAD = 0.45  # the log-normal spread of engagement beyond what the customer value explains
CHURN_HAZARD = 0.004  # chance per day of an active user leaving for good
DORMANCY = 0.035  # chance per day of an active user falling dormant
WAKE = 0.015  # chance per day of a dormant user becoming active again
DORMANT_HAZARD = 0.005  # chance per day of a dormant user leaving for good
DORMANT_SHARE = 0.0  # a dormant user's session rate as a share of their active one (0: dormant is silent)
PROPENSITY_LOGIT = 0.0  # the median user's purchase propensity, as a logit
CART_LOGIT = -1.4  # the median user's cart rate, as a logit
# shopping regimes by favourite category: -1 replenishment, +1 occasional, the rest 0; each step multiplies the
# chance of falling dormant by e^2, the chance of waking by e^-1.4, and moves the purchase propensity's logit by -0.8
REGIME = {"grocery": -1, "beauty": -1, "electronics": 1, "toys": 1}
REGIME_DORMANCY, REGIME_WAKE, REGIME_PROPENSITY = 2.0, -1.4, -0.8
FAVOURITE_SHARE = 0.7  # chance that a page is in the user's favourite category (else any category)
WEEKDAY, weekday = latent.WEEKDAY, latent.weekday

# The session funnel, in the order ``_user_events`` walks it; models/oracle.py derives the true label
# probabilities from these same names, so a change here changes both.
SESSION_SPAN_MS = DAY_MS - 3_600_000  # a session starts uniformly in [day start, day start + this)
EXTRA_PAGES_MEAN = 2.5  # a session views 1 + Poisson(this) pages
PRODUCT_SHARE = 0.6  # chance that a page is a product page (else a category page)
REMOVE_RATE = 0.15  # chance that a session with a non-empty cart removes its last item before checkout
PAGE_GAP_MS = (5_000, 120_000)  # before each page view
CART_GAP_MS = (2_000, 60_000)  # before a cart add or remove
PURCHASE_GAP_MS = (10_000, 300_000)  # before the purchase
# no two consecutive events of a session lie this far apart
MAX_GAP_MS = max(PAGE_GAP_MS[1], CART_GAP_MS[1], PURCHASE_GAP_MS[1])


@dataclass(frozen=True)
class User:
    user_id: str
    signup_ms: int
    engagement: float  # sessions per day while active (before the weekday and the season)
    churn_hazard: float  # chance per day of an active user leaving for good
    purchase_propensity: float  # chance that a session with a filled cart ends in a purchase
    cart_rate: float  # chance that a product view adds to cart
    churn_ms: int  # the start of the user's first gone day; may lie beyond the simulated period
    dormancy: float = 0.0  # chance per day of an active user falling dormant
    wake: float = 0.0  # chance per day of a dormant user becoming active again
    dormant_hazard: float = 0.0  # chance per day of a dormant user leaving for good
    dormant_share: float = 0.0  # a dormant user's session rate, as a share of the active rate
    path: str = ""  # the hidden state (``latent.STATES``) of each day from the signup day on; "" : always active
    favourite: str = ""  # the category most of the user's pages are in ("": none, every category alike)

    def matrix(self) -> np.ndarray:
        """The user's day-to-day transition matrix over (active, dormant, gone)."""
        return latent.transitions(self.dormancy, self.wake, self.churn_hazard, self.dormant_hazard)

    def state_on(self, day: int) -> int:
        """The hidden state on UTC ``day`` (days since the epoch): gone beyond the drawn path."""
        i = day - self.signup_ms // DAY_MS
        if not self.path:
            return latent.ACTIVE if self.signup_ms // DAY_MS <= day < self.churn_ms // DAY_MS else latent.GONE
        return latent.STATES.index(self.path[i]) if 0 <= i < len(self.path) else latent.GONE


def make_users(
    n: int, days: int, seed: int = 0, start_ms: int = DEFAULT_START_MS, prefix: str = "user", activity: float = 1.0
) -> list[User]:
    """``n`` users who sign up during the first 70% of ``days``, each with a hidden state path up to the end.

    One latent "customer value" factor ``z`` drives the rates, as in real shops: engaged users visit more, add to
    cart more, buy more, doze off less often and leave less. Each rate also has its own noise, so users with the
    same ``z`` still differ and the mix runs from daily visitors to a visit a month. The favourite category's
    regime (:data:`REGIME`) sets most of how often a user dozes off and for how long, and moves their purchase
    propensity. ``activity`` scales every user's sessions per day (0.5: half the traffic).

    >>> u = make_users(1000, days=100, seed=3)
    >>> 0.3 < sum(x.engagement for x in u) / 1000 < 0.9, 0.002 < sum(x.churn_hazard for x in u) / 1000 < 0.02
    (True, True)
    >>> all(x.path[0] == "A" and len(x.path) == 100 - (x.signup_ms - DEFAULT_START_MS) // DAY_MS for x in u)
    True
    """
    rng = np.random.default_rng(seed)
    signup = start_ms + (rng.random(n) * days * 0.7 * DAY_MS).astype(np.int64)
    z = rng.standard_normal(n)
    noise = rng.standard_normal((8, n))
    favourite = rng.integers(len(CATEGORIES), size=n)
    regime = np.array([REGIME.get(c, 0) for c in CATEGORIES])[favourite]
    engagement = ENGAGEMENT_MEDIAN * activity * np.exp(0.36 * z + ENGAGEMENT_SPREAD * noise[0])
    hazard = np.clip(CHURN_HAZARD * np.exp(-0.6 * z + 0.4 * noise[1]), 1e-4, 0.2)
    propensity_logit = PROPENSITY_LOGIT + 0.6 * z + 0.2 * noise[2] + REGIME_PROPENSITY * regime
    propensity = 1 / (1 + np.exp(-propensity_logit))
    cart_rate = 1 / (1 + np.exp(-CART_LOGIT - 0.4 * z - 0.2 * noise[3]))
    dormancy = np.clip(DORMANCY * np.exp(-0.08 * z + 0.1 * noise[4] + REGIME_DORMANCY * regime), 1e-4, 0.3)
    wake = np.clip(WAKE * np.exp(0.06 * z + 0.1 * noise[5] + REGIME_WAKE * regime), 1e-4, 0.3)
    dormant_hazard = np.clip(DORMANT_HAZARD * np.exp(-0.08 * z + 0.08 * noise[6]), 1e-4, 0.2)
    dormant_share = DORMANT_SHARE * np.exp(0.5 * noise[7]).clip(0, 4)
    end_day = (start_ms + days * DAY_MS - 1) // DAY_MS
    users = []
    for i in range(n):
        day0 = int(signup[i]) // DAY_MS
        m = latent.transitions(float(dormancy[i]), float(wake[i]), float(hazard[i]), float(dormant_hazard[i]))
        path = latent.draw_path(m, end_day - day0 + 1, rng)
        gone = path.find("G")
        churn = (day0 + (gone if gone >= 0 else len(path) + 1)) * DAY_MS
        users.append(
            User(
                f"{prefix}-{i}",
                int(signup[i]),
                float(engagement[i]),
                float(hazard[i]),
                float(propensity[i]),
                float(cart_rate[i]),
                churn,
                float(dormancy[i]),
                float(wake[i]),
                float(dormant_hazard[i]),
                float(dormant_share[i]),
                path,
                CATEGORIES[int(favourite[i])],
            )
        )
    return users


def session_rates(u: User, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(active rate, dormant rate): the expected sessions on each of ``days`` (since the epoch) in either state."""
    active = u.engagement * latent.day_factor(days)
    return active, active * u.dormant_share


def _category(u: User, rng: np.random.Generator) -> str:
    """The category of a page: the favourite one with ``FAVOURITE_SHARE``, else any."""
    if u.favourite and rng.random() < FAVOURITE_SHARE:
        return u.favourite
    return CATEGORIES[int(rng.integers(len(CATEGORIES)))]


def _user_events(u: User, end_ms: int, rng: np.random.Generator, change: BehaviourChange | None = None) -> list[dict]:
    events: list[dict] = []
    seq = 0

    def base(kind: str, seq: int, t: int, session: str) -> dict:
        """The fields every event carries."""
        return {"type": kind, "event_id": f"{u.user_id}-{seq}", "user_id": u.user_id, "ts": t, "session_id": session}

    day0 = u.signup_ms // DAY_MS
    days = np.arange(day0, max(day0, (end_ms - 1) // DAY_MS + 1))
    state = np.array([u.state_on(int(d)) for d in days], dtype=np.int8)
    active, dormant = session_rates(u, days)
    change = change or NO_CHANGE  # a change of behaviour at a known day (simulation.drift)
    active, dormant = active * change.session_factor(days), dormant * change.session_factor(days)
    counts = rng.poisson(np.where(state == latent.ACTIVE, active, np.where(state == latent.DORMANT, dormant, 0.0)))
    for day, count in zip(days[counts > 0].tolist(), counts[counts > 0].tolist(), strict=True):
        day_ms = day * DAY_MS
        cart_rate, propensity = change.rates(u.cart_rate, u.purchase_propensity, day)
        for _ in range(count):
            t = day_ms + int(rng.integers(0, SESSION_SPAN_MS))
            if t < u.signup_ms or t >= end_ms:
                continue
            session = f"{u.user_id}-s{seq}"
            cart: list[tuple[str, str, float]] = []
            for _ in range(1 + rng.poisson(EXTRA_PAGES_MEAN)):
                t += int(rng.integers(*PAGE_GAP_MS))
                seq += 1
                category = _category(u, rng)
                if rng.random() < PRODUCT_SHARE:
                    product = catalogue.pick(u.user_id, category, int(rng.integers(catalogue.DRAWS)))
                    events.append(
                        base("page_view", seq, t, session)
                        | {
                            "page_type": "product",
                            "product_id": product,
                            "category": category,
                        }
                    )
                    if rng.random() < cart_rate:
                        price = round(float(rng.lognormal(3.0, 0.8)), 2)
                        seq += 1
                        t += int(rng.integers(*CART_GAP_MS))
                        events.append(
                            base("cart", seq, t, session)
                            | {
                                "action": "add",
                                "product_id": product,
                                "category": category,
                                "quantity": 1,
                                "price": price,
                            }
                        )
                        cart.append((product, category, price))
                else:
                    events.append(
                        base("page_view", seq, t, session)
                        | {
                            "page_type": "category",
                            "category": category,
                        }
                    )
            if cart and rng.random() < REMOVE_RATE:
                product, category, price = cart.pop()
                seq += 1
                t += int(rng.integers(*CART_GAP_MS))
                events.append(
                    base("cart", seq, t, session)
                    | {
                        "action": "remove",
                        "product_id": product,
                        "category": category,
                        "quantity": 1,
                        "price": price,
                    }
                )
            if cart and rng.random() < propensity:
                seq += 1
                t += int(rng.integers(*PURCHASE_GAP_MS))
                items = [{"product_id": p, "category": c, "quantity": 1, "price": pr} for p, c, pr in cart]
                events.append(
                    base("purchase", seq, t, session)
                    | {
                        "order_id": f"o-{u.user_id}-{seq}",
                        "amount": round(sum(pr for _, _, pr in cart), 2),
                        "currency": "EUR",
                        "items": items,
                    }
                )
    return [e for e in events if e["ts"] < end_ms]


def simulate(
    users: list[User], days: int, seed: int = 0, start_ms: int = DEFAULT_START_MS, change: BehaviourChange | None = None
) -> list[dict]:
    """All users' events over ``days`` from ``start_ms``, in event-time order (``change``: a change of behaviour at
    a known day, :mod:`simulation.drift`)."""
    rng = np.random.default_rng(seed + 1)
    end_ms = start_ms + days * DAY_MS
    events = [e for u in users for e in _user_events(u, end_ms, rng, change)]
    events.sort(key=lambda e: (e["ts"], e["event_id"]))
    return events


def latent_table(users: list[User]) -> list[dict]:
    return [json.loads(json.dumps(u.__dict__)) for u in users]


__all__ = [
    "MALFORMED_KINDS",
    "TOPIC_OF",
    "Record",
    "User",
    "arrivals",
    "latent_table",
    "make_users",
    "malformed_record",
    "simulate",
    "write_jsonl",
]
