"""One retry policy, at one level: the worker redoes a whole batch until it succeeds, with exponential backoff and no
limit (every effect is idempotent, and giving up would mean acking records whose effects were not applied).

Effects do not retry in place. Each raises :class:`EffectFailed`, naming the dependency it writes to, so the
batch loop reports the failure to :mod:`streams.health` and redoes the batch; a :class:`Conflict` (another worker
wrote first) is redone at once.

>>> import asyncio, logging
>>> calls = []
>>> async def flaky():
...     calls.append(1)
...     if len(calls) < 3:
...         await effect("redis", fail)
...     return "done"
>>> async def fail():
...     raise ConnectionError("refused")
>>> asyncio.run(until_done(flaky, log=logging.getLogger("doctest"), multiplier=0.001)), len(calls)
('done', 3)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from streams import health

T = TypeVar("T")


class Conflict(Exception):
    """A write lost a race (another worker wrote first): the caller redoes its work."""


def first_line(error: BaseException) -> str:
    """The start of an error's message, for a log line."""
    text = str(error)
    return text.splitlines()[0][:200] if text else ""


class EffectFailed(Exception):
    """An effect on ``dependency`` failed with ``__cause__``; the batch is redone."""

    def __init__(self, dependency: str, error: BaseException) -> None:
        super().__init__(f"{dependency}: {type(error).__name__}: {first_line(error)}")
        self.dependency, self.error = dependency, error


async def effect(dependency: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``await fn(*args)``; a failure is raised as :class:`EffectFailed` naming ``dependency``."""
    try:
        return await fn(*args)
    except (Conflict, EffectFailed):
        raise
    except Exception as exc:
        raise EffectFailed(dependency, exc) from exc


async def until_done(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    log: logging.Logger,
    level: int = logging.WARNING,
    multiplier: float = 0.1,
    max_wait_s: float = 5.0,
) -> T:
    """``await fn(*args)`` until it succeeds, backing off from ``multiplier`` seconds up to ``max_wait_s``; a
    :class:`Conflict` is redone at once.

    Each :class:`EffectFailed` is reported to :mod:`streams.health` under its dependency, and the dependency's
    recovery once ``fn`` succeeds.
    """
    what = getattr(fn, "__qualname__", "batch")
    failed: set[str] = set()

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return 0.05 if isinstance(error, Conflict) else backoff(state)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, EffectFailed):
            failed.add(error.dependency)
            health.failed(error.dependency, error.error)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        message = first_line(error) if error is not None else ""
        log.log(
            level,
            "%s failed (attempt %d, %s: %s); retrying in %.1f s",
            what,
            state.attempt_number,
            type(error).__name__,
            message,
            wait,
        )

    backoff = wait_exponential(multiplier=multiplier, max=max_wait_s)
    async for attempt in AsyncRetrying(
        wait=wait,
        retry=retry_if_exception_type(Exception),  # Exceptions only: a CancelledError (shutdown) ends the loop
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            result = await fn(*args)
    for dependency in failed:  # the loop ends only after a success
        health.recovered(dependency)
    return result
