"""Realistic page-view / cart / purchase streams from latent per-user parameters, with injected faults.

Each user has an engagement rate (sessions per day), a churn hazard (chance per day of leaving for good), a
purchase propensity and a cart rate, all driven by one latent "customer value" factor plus individual noise;
a shared weekday profile scales the sessions, and sessions walk a view -> product view -> cart -> purchase
funnel.
The latent parameters are kept, so the true label probabilities can be computed for any (user, as_of).

``arrivals`` turns the events into the records a broker would see: some delayed (out of order), some sent twice
(producer retries), and some malformed, one of each DLQ reason in turn.

>>> users = make_users(3, days=30, seed=1)
>>> events = simulate(users, days=30, seed=1)
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from core.days import DAY_MS

TOPIC_OF = {"page_view": "page_views", "cart": "cart_events", "purchase": "purchases"}
CATEGORIES = ("books", "electronics", "home", "fashion", "toys", "grocery", "beauty", "sports")
WEEKDAY = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.25])  # Monday .. Sunday
DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

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


def weekday(day: int | np.ndarray) -> int | np.ndarray:
    """Monday = 0 .. Sunday = 6 of a day number since the epoch (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


@dataclass(frozen=True)
class User:
    user_id: str
    signup_ms: int
    engagement: float  # sessions per day while active
    churn_hazard: float  # chance per day of leaving for good
    purchase_propensity: float  # chance that a session with a filled cart ends in a purchase
    cart_rate: float  # chance that a product view adds to cart
    churn_ms: int  # when the user leaves (drawn from the hazard); may lie beyond the simulated period


def make_users(
    n: int, days: int, seed: int = 0, start_ms: int = DEFAULT_START_MS, prefix: str = "user", activity: float = 1.0
) -> list[User]:
    """``n`` users who sign up during the first 70% of ``days``.

    One latent "customer value" factor ``z`` drives all four rates, as in real shops: engaged users visit more,
    add to cart more, buy more and leave less. Each rate also has its own noise, so users with the same ``z``
    still differ. ``activity`` scales every user's sessions per day (0.5: half the traffic).

    >>> u = make_users(1000, days=100, seed=3)
    >>> 0.4 < sum(x.engagement for x in u) / 1000 < 0.7, 0.01 < sum(x.churn_hazard for x in u) / 1000 < 0.04
    (True, True)
    """
    rng = np.random.default_rng(seed)
    signup = start_ms + (rng.random(n) * days * 0.7 * DAY_MS).astype(np.int64)
    z = rng.standard_normal(n)
    noise = rng.standard_normal((4, n))
    engagement = 0.5 * activity * np.exp(0.6 * z + 0.15 * noise[0])
    hazard = np.clip(0.02 * np.exp(-0.8 * z + 0.15 * noise[1]), 1e-4, 0.5)
    propensity = 1 / (1 + np.exp(0.8 - 0.6 * z - 0.2 * noise[2]))
    cart_rate = 1 / (1 + np.exp(1.9 - 0.4 * z - 0.2 * noise[3]))
    lifetime_days = rng.geometric(hazard)
    churn = signup + lifetime_days * DAY_MS
    return [
        User(
            f"{prefix}-{i}",
            int(signup[i]),
            float(engagement[i]),
            float(hazard[i]),
            float(propensity[i]),
            float(cart_rate[i]),
            int(churn[i]),
        )
        for i in range(n)
    ]


def _user_events(u: User, end_ms: int, rng: np.random.Generator) -> list[dict]:
    events: list[dict] = []
    seq = 0

    def base(kind: str, seq: int, t: int, session: str) -> dict:
        """The fields every event carries."""
        return {"type": kind, "event_id": f"{u.user_id}-{seq}", "user_id": u.user_id, "ts": t, "session_id": session}

    day_ms = u.signup_ms - u.signup_ms % DAY_MS
    stop = min(u.churn_ms, end_ms)
    while day_ms < stop:
        for _ in range(rng.poisson(u.engagement * WEEKDAY[weekday(day_ms // DAY_MS)])):
            t = day_ms + int(rng.integers(0, SESSION_SPAN_MS))
            if t < u.signup_ms or t >= stop:
                continue
            session = f"{u.user_id}-s{seq}"
            cart: list[tuple[str, str, float]] = []
            for _ in range(1 + rng.poisson(EXTRA_PAGES_MEAN)):
                t += int(rng.integers(*PAGE_GAP_MS))
                seq += 1
                category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
                if rng.random() < PRODUCT_SHARE:
                    product = f"p{int(rng.integers(5000))}"
                    events.append(
                        base("page_view", seq, t, session)
                        | {
                            "page_type": "product",
                            "product_id": product,
                            "category": category,
                        }
                    )
                    if rng.random() < u.cart_rate:
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
            if cart and rng.random() < u.purchase_propensity:
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
        day_ms += DAY_MS
    return [e for e in events if e["ts"] < stop]


def simulate(users: list[User], days: int, seed: int = 0, start_ms: int = DEFAULT_START_MS) -> list[dict]:
    """All users' events over ``days`` from ``start_ms``, in event-time order."""
    rng = np.random.default_rng(seed + 1)
    end_ms = start_ms + days * DAY_MS
    events = [e for u in users for e in _user_events(u, end_ms, rng)]
    events.sort(key=lambda e: (e["ts"], e["event_id"]))
    return events


@dataclass(frozen=True)
class Record:
    """One record as the broker sees it."""

    topic: str
    key: bytes
    value: bytes
    malformed: str = ""  # the DLQ reason this record was built to trigger, if any


MALFORMED_KINDS = (
    "invalid_json",
    "invalid_type",
    "missing_user_id",
    "invalid_user_id",
    "missing_ts",
    "invalid_ts",
    "ts_in_future",
    "invalid_amount",
    "invalid_quantity",
    "unknown_action",
    "payload_too_large",
    "too_late",
)


def malformed_record(kind: str, template: dict, now_ms: int) -> Record:
    """A record that the worker must send to the DLQ with reason ``kind``."""
    e = dict(template)
    e["event_id"] = f"bad-{kind}-{template['event_id']}"
    topic = TOPIC_OF[e["type"]]
    if kind == "invalid_json":
        return Record(topic, e["user_id"].encode(), b'{"event_id": "x", "user_id": ', kind)
    if kind == "invalid_type":
        e["user_id"] = 12345
    elif kind == "missing_user_id":
        e["user_id"] = ""
    elif kind == "invalid_user_id":
        e["user_id"] = "u" * 300
    elif kind == "missing_ts":
        del e["ts"]
    elif kind == "invalid_ts":
        e["ts"] = "yesterday at noon"
    elif kind == "ts_in_future":
        e["ts"] = now_ms + 3 * DAY_MS
    elif kind == "too_late":  # valid, but 70 days older than the event just sent for this user
        e["ts"] = max(0, template["ts"] - 70 * DAY_MS)
    elif kind == "payload_too_large":
        e["padding"] = "x" * (65 * 1024)
    elif kind in ("invalid_amount", "invalid_quantity", "unknown_action"):
        topic = "cart_events"
        e = {
            "type": "cart",
            "event_id": e["event_id"],
            "user_id": template["user_id"],
            "ts": template["ts"],
            "action": "add",
            "product_id": "p1",
            "category": "books",
            "quantity": 1,
            "price": 9.5,
        }
        if kind == "invalid_amount":
            e["price"] = -3.0
        elif kind == "invalid_quantity":
            e["quantity"] = 0
        else:
            e["action"] = "wishlist"
    return Record(topic, str(template["user_id"]).encode(), orjson.dumps(e), kind)


def arrivals(
    events: list[dict],
    seed: int = 0,
    out_of_order: float = 0.0,
    max_delay_ms: int = 6 * 3_600_000,
    duplicates: float = 0.0,
    malformed: float = 0.0,
    now_ms: int | None = None,
) -> list[Record]:
    """The records in the order a broker receives them, with the requested fault rates."""
    rng = np.random.default_rng(seed + 2)
    n = len(events)
    delay = np.where(rng.random(n) < out_of_order, rng.integers(1, max_delay_ms, n), 0)
    order = np.argsort(np.array([e["ts"] for e in events], dtype=np.int64) + delay, kind="stable")
    # "the future" is relative to the broker's clock when the records are produced: the wall clock
    now_ms = now_ms if now_ms is not None else max(int(time.time() * 1000), events[-1]["ts"] if events else 0)
    dup = rng.random(n) < duplicates
    bad = rng.random(n) < malformed
    out: list[Record] = []
    bad_i = 0
    for i in order:
        e = events[i]
        rec = Record(TOPIC_OF[e["type"]], e["user_id"].encode(), orjson.dumps(e))
        out.append(rec)
        if dup[i]:
            out.append(rec)
        if bad[i]:
            out.append(malformed_record(MALFORMED_KINDS[bad_i % len(MALFORMED_KINDS)], e, now_ms))
            bad_i += 1
    return out


def write_jsonl(records: list[Record], path: Path) -> None:
    """Records as JSONL, one value per line (malformed ones as they are, newlines escaped)."""
    with open(path, "wb") as f:
        for r in records:
            f.write(r.value.replace(b"\n", b"\\n") + b"\n")


def latent_table(users: list[User]) -> list[dict]:
    return [json.loads(json.dumps(u.__dict__)) for u in users]
