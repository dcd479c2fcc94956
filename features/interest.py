"""Priority categories: each user's interest in a few categories, weighted by recency, in bounded memory.

Every category-tagged event adds its weight (:data:`WEIGHTS`: a page view 1, a cart event 3, a purchased item 5)
to its category's interest; interest halves every ``half_life_days`` of event time. Scores are kept decayed to the
user's latest such event (``ref_ms``); an event older than that (arriving late) adds its weight decayed by its age
instead. So the interest does not depend on the order events arrive in, but for the last bits of the floats; and
the same events in the same order give the same bytes, which the exactly-once replay of the stream needs.

Memory is bounded: at most :data:`KEPT` categories, names cut to :data:`NAME_BYTES` bytes. A category that is
not kept enters only if its weight beats the weakest kept one, which it then replaces. So at most ~190 bytes of a
user's state whatever the stream sends (``tests/unit/test_interest.py`` checks it with hypothesis).

>>> from core.days import DAY_MS
>>> interest: dict[str, float] = {}
>>> ref = note(interest, 0, "books", "page_view", 0, half_life_days=30)
>>> ref = note(interest, ref, "toys", "purchase", 30 * DAY_MS, half_life_days=30)
>>> interest  # books decayed by one half-life, then toys' purchase
{'books': 0.5, 'toys': 5.0}
>>> top(interest, ref, ref, k=1, half_life_days=30)
[('toys', 5.0)]
"""

from __future__ import annotations

from core.days import DAY_MS

WEIGHTS = {"page_view": 1.0, "cart": 3.0, "purchase": 5.0}
KEPT = 5  # categories kept per user
NAME_BYTES = 24  # longer names are cut (at a character boundary): send top-level categories
HALF_LIFE_DAYS = 30.0


def clip(name: str) -> str:
    """``name`` cut to at most :data:`NAME_BYTES` bytes of UTF-8, never inside a character."""
    raw = name.encode()
    return name if len(raw) <= NAME_BYTES else raw[:NAME_BYTES].decode(errors="ignore")


def _decay(value: float, age_ms: int, half_life_days: float) -> float:
    return value * 2.0 ** (-age_ms / (half_life_days * DAY_MS)) if age_ms > 0 else value


def note(interest: dict[str, float], ref_ms: int, category: str, kind: str, ts_ms: int, half_life_days: float) -> int:
    """Add one ``kind`` event in ``category`` at ``ts_ms`` to ``interest`` (in place); returns the new ``ref_ms``."""
    if ts_ms > ref_ms:
        if interest:
            age = ts_ms - ref_ms
            for name in interest:
                interest[name] = _decay(interest[name], age, half_life_days)
        ref_ms = ts_ms
    weight = _decay(WEIGHTS[kind], ref_ms - ts_ms, half_life_days)
    name = clip(category)
    if name in interest:
        interest[name] += weight
    elif len(interest) < KEPT:
        interest[name] = weight
    else:
        weakest = min(interest, key=lambda n: (interest[n], n))
        if weight > interest[weakest]:
            del interest[weakest]
            interest[name] = weight
    return ref_ms


def top(
    interest: dict[str, float], ref_ms: int, as_of_ms: int, k: int, half_life_days: float
) -> list[tuple[str, float]]:
    """The ``k`` categories of highest interest, with their interest (in weights) decayed to ``as_of_ms``; ties
    by name."""
    ranked = sorted(interest.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [(name, round(_decay(v, as_of_ms - ref_ms, half_life_days), 6)) for name, v in ranked]
