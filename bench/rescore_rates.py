"""Rates from a worker's counters sampled once a second: each rate is a counter's increase between two samples
divided by the time between them, over windows bounded by samples (:func:`windows`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the worker was started
    events: float  # churnstream_events_total
    rescored: float  # churnstream_rescored_users_total
    left: int  # seeded users still due


def first(samples: list[Sample], test: Callable[[Sample], bool]) -> Sample | None:
    return next((s for s in samples if test(s)), None)


def rate(a: Sample | None, b: Sample | None, field: str) -> float | None:
    """The counter ``field``'s increase per second from sample ``a`` to sample ``b`` (None: no such window).

    >>> rate(Sample(1.0, 10, 0, 5), Sample(3.0, 30, 8, 0), "events"), rate(Sample(1.0, 0, 0, 0), None, "events")
    (10.0, None)
    """
    if a is None or b is None or b.t <= a.t:
        return None
    return (getattr(b, field) - getattr(a, field)) / (b.t - a.t)


def windows(samples: list[Sample], events: int) -> dict[str, Sample | None]:
    """The samples that bound the measured windows: the first with an event processed, the first with all
    ``events``, the first with a user rescored and the first with none left due after that.

    >>> s = [Sample(0, 0, 0, 9), Sample(1, 5, 0, 9), Sample(2, 9, 4, 5), Sample(3, 10, 8, 1), Sample(4, 10, 9, 0)]
    >>> {k: v.t for k, v in windows(s, 10).items() if v}
    {'events_from': 1, 'events_to': 3, 'rescore_from': 2, 'rescore_to': 4}
    """
    rescore_from = first(samples, lambda s: s.rescored > 0)
    return {
        "events_from": first(samples, lambda s: s.events > 0),
        "events_to": first(samples, lambda s: s.events >= events),
        "rescore_from": rescore_from,
        "rescore_to": rescore_from and first(samples, lambda s: s.t >= rescore_from.t and s.left == 0),
    }


def seconds(a: Sample | None, b: Sample | None) -> float | None:
    return None if a is None or b is None else round(b.t - a.t, 1)
