"""Redis bytes per user: MEMORY USAGE of the state of a user active on each of the last 61 days."""

from __future__ import annotations

import random
import statistics

import redis

from core.contracts import Event
from core.keys import state_key
from features.state import DAY_MS, UserState, apply, encode_state, partition_code
from simulation.generator import CATEGORIES, FAVOURITE_SHARE


def busy_user(user_id: str, seed: int = 0, days: int = 61, start_day: int = 20_400) -> UserState:
    """Every day: 2-8 page views (most of products), cart adds and removes, a purchase every third day; each
    names a category, the user's favourite one 70% of the time (as the generator's users do)."""
    rng = random.Random(seed)
    favourite = rng.choice(CATEGORIES)

    def cat() -> tuple[str]:
        return (favourite if rng.random() < FAVOURITE_SHARE else rng.choice(CATEGORIES),)

    s = UserState()
    offset = 0
    for d in range(days):
        base = (start_day + d) * DAY_MS
        events = [
            Event(
                "page_view",
                f"{user_id}-{d}-v{i}",
                user_id,
                base + rng.randrange(DAY_MS),
                product_view=rng.random() < 0.7,
                categories=cat(),
            )
            for i in range(rng.randint(2, 8))
        ]
        events += [
            Event("cart", f"{user_id}-{d}-c{i}", user_id, base + rng.randrange(DAY_MS), cart_add=True, categories=cat())
            for i in range(rng.randint(0, 2))
        ]
        if rng.random() < 0.3:
            events.append(
                Event(
                    "cart",
                    f"{user_id}-{d}-r",
                    user_id,
                    base + rng.randrange(DAY_MS),
                    cart_remove=True,
                    categories=cat(),
                )
            )
        if d % 3 == 0:
            events.append(
                Event(
                    "purchase",
                    f"{user_id}-{d}-p",
                    user_id,
                    base + rng.randrange(DAY_MS),
                    revenue_cents=rng.randint(500, 30_000),
                    categories=cat() + cat(),
                )
            )
        for ev in sorted(events, key=lambda e: e.ts_ms):
            topic = {"page_view": 0, "cart": 1, "purchase": 2}[ev.kind]
            offset += 1
            apply(s, ev, partition_code(topic, 3), offset * 97)
    return s


def measure(redis_url: str, users: int = 1000) -> dict[str, float]:
    r = redis.Redis.from_url(redis_url)
    sizes, values = [], []
    for i in range(users):
        uid = f"mem-bench-user-{i:07d}"
        blob = encode_state(busy_user(uid, seed=i))
        key = state_key(uid)
        r.set(key, blob)
        sizes.append(int(r.memory_usage(key, samples=0) or 0))
        values.append(len(blob))
    r.delete(*[state_key(f"mem-bench-user-{i:07d}") for i in range(users)])
    return {
        "redis_bytes_per_user": statistics.median(sizes),
        "redis_bytes_per_user_max": max(sizes),
        "state_value_bytes": statistics.median(values),
    }
