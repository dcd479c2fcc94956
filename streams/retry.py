"""One retry policy for the worker's effects: exponential backoff, no limit (effects are idempotent, and giving
up would mean acking records whose effects were not applied)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, before_sleep_log, wait_exponential

T = TypeVar("T")


async def until_done(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    log: logging.Logger,
    level: int = logging.WARNING,
    multiplier: float = 0.1,
    max_wait_s: float = 5.0,
) -> T:
    """``await fn(*args)`` until it succeeds, backing off from ``multiplier`` seconds up to ``max_wait_s``."""
    async for attempt in AsyncRetrying(
        wait=wait_exponential(multiplier=multiplier, max=max_wait_s), before_sleep=before_sleep_log(log, level)
    ):
        with attempt:
            return await fn(*args)
    raise AssertionError("unreachable: retries never stop")
