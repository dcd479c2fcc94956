"""Which dependencies the worker's writes are failing on right now: for ``/readyz`` and Prometheus.

The retry loop (:func:`streams.retry.until_done`) reports each failed attempt and each success here, so while
Redis is down or ClickHouse refuses inserts, ``/readyz`` (in ``churnstream run``) and the
``churnstream_dependency_up`` gauge say so, even when a plain ping would still answer.

>>> failed("clickhouse", OSError("disk full")); failing()
{'clickhouse': 'OSError'}
>>> recovered("clickhouse"); failing()
{}
"""

from __future__ import annotations

from prometheus_client import Gauge

DEPENDENCY_UP = Gauge(
    "churnstream_dependency_up",
    "1 while the worker's writes to a dependency succeed, 0 while they fail and are retried",
    ["dependency"],
)
_failing: dict[str, str] = {}


def failed(dependency: str, error: BaseException) -> None:
    _failing[dependency] = type(error).__name__  # the type only: messages may quote what was written
    DEPENDENCY_UP.labels(dependency).set(0)


def recovered(dependency: str) -> None:
    _failing.pop(dependency, None)
    DEPENDENCY_UP.labels(dependency).set(1)


def failing() -> dict[str, str]:
    """Dependency -> the error type of its latest failed write, for those failing now."""
    return dict(_failing)
