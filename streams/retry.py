"""One retry policy for the worker's effects: exponential backoff, no limit (effects are idempotent, and giving
up would mean acking records whose effects were not applied)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential,
)

from streams import health

T = TypeVar("T")


class Conflict(Exception):
    """A write lost a race (another worker wrote first): not retried in place; the caller redoes its work."""


async def until_done(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    log: logging.Logger,
    level: int = logging.WARNING,
    multiplier: float = 0.1,
    max_wait_s: float = 5.0,
    dependency: str | None = None,
    redo_conflicts: bool = False,
) -> T:
    """``await fn(*args)`` until it succeeds, backing off from ``multiplier`` seconds up to ``max_wait_s``.

    ``dependency`` names what ``fn`` writes to: each failure and the recovery are reported to
    :mod:`streams.health`. A :class:`Conflict` is raised at once for the caller to redo its work, unless
    ``redo_conflicts`` (the caller that redoes the whole batch).
    """
    what = dependency or getattr(fn, "__qualname__", "effect")

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if dependency is not None and error is not None:
            health.failed(dependency, error)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        message = str(error).splitlines()[0][:200] if error is not None and str(error) else ""
        log.log(
            level,
            "%s failed (attempt %d, %s: %s); retrying in %.1f s",
            what,
            state.attempt_number,
            type(error).__name__,
            message,
            wait,
        )

    async for attempt in AsyncRetrying(
        wait=wait_exponential(multiplier=multiplier, max=max_wait_s),
        # Exceptions only: a CancelledError (shutdown) must end the loop
        retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(() if redo_conflicts else Conflict),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            result = await fn(*args)
    # the loop ends only after a success (a Conflict is re-raised)
    if dependency is not None:
        health.recovered(dependency)
    return result
