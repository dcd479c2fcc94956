"""A time budget for rescoring, so that it never starves event processing.

While events flow, rescoring by time may take at most a share of the worker's time (``CHURNSTREAM_RESCORE_SHARE``):
after a step that took ``t`` seconds, the next gated step may start only once the worker has spent
``t * (1 - share) / share`` more seconds on something else (applying event batches). When no event batch ran for
about a second of the time not spent rescoring, the stream is quiet and rescoring takes all the time.

The worker asks :meth:`RescoreBudget.allows` before an optional step, runs every step through
:meth:`RescoreBudget.charge` (which times it) and calls :meth:`RescoreBudget.batch_ran` after each event batch.
Steps that must run (a partition falling behind, :meth:`streams.rescore.Rescorer.must_catch_up`) are not gated,
but their time is charged too: the gated steps that follow wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


class RescoreBudget:
    """How much of the worker's time rescoring may take, measured on ``clock`` (monotonic seconds).

    >>> now = [0.0]
    >>> budget = RescoreBudget(share=0.5, clock=lambda: now[0])
    >>> budget.batch_ran()           # events flow
    >>> budget.allows()
    True
    >>> now[0] += 2.0; budget.spent(2.0)   # a step took 2 s: the next one waits 2 s more (share 0.5)
    >>> now[0] += 1.0; budget.batch_ran(); budget.allows()
    False
    >>> now[0] += 1.0; budget.batch_ran(); budget.allows()
    True
    >>> now[0] += 1.5; budget.spent(1.5)   # another step; then no batch for a second: the stream is quiet
    >>> now[0] += 1.0; budget.allows()
    True
    """

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic, quiet_s: float = 1.0) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"the rescoring share must be in (0, 1], not {share}")
        self.share, self.clock, self.quiet_s = share, clock, quiet_s
        self.next_at = float("-inf")  # the earliest time the next gated step may start
        self.batch_at = float("-inf")  # when the latest event batch ran
        self.rescoring_since_batch = 0.0  # seconds spent rescoring since then (they do not make the stream quiet)

    def batch_ran(self) -> None:
        """An event batch has just been applied."""
        self.batch_at = self.clock()
        self.rescoring_since_batch = 0.0

    def quiet(self) -> bool:
        """No event batch ran for ``quiet_s`` seconds, not counting the time spent rescoring (while a step runs,
        batches wait for it)."""
        return self.clock() - self.batch_at - self.rescoring_since_batch >= self.quiet_s

    def allows(self) -> bool:
        """May a gated step start now?"""
        return self.share >= 1 or self.quiet() or self.clock() >= self.next_at

    def spent(self, seconds: float) -> None:
        """A step (gated or not) that took ``seconds`` has just ended. The wait it owes adds to any wait still
        owed when it started: rescoring time does not pay it off."""
        now = self.clock()
        owed = max(0.0, self.next_at - (now - seconds))
        self.next_at = now + owed + seconds * (1 - self.share) / self.share
        self.rescoring_since_batch += seconds

    async def charge(self, step: Awaitable[int]) -> int:
        """Run ``step`` (a rescoring step that returns how many users it rescored) and charge its time if it
        rescored anyone: a step that found nobody due costs a round trip and gates nothing.

        >>> import asyncio
        >>> now = [0.0]
        >>> budget = RescoreBudget(share=0.25, clock=lambda: now[0])
        >>> budget.batch_ran()
        >>> async def step() -> int:
        ...     now[0] += 1.0
        ...     return 5000
        >>> asyncio.run(budget.charge(step())), budget.next_at
        (5000, 4.0)
        """
        started = self.clock()
        rescored = await step
        if rescored:
            self.spent(self.clock() - started)
        return rescored
