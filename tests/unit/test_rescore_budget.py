"""The rescoring budget (streams/budget.py): rescoring takes at most its share of the worker's time while events
flow, all the time on a quiet stream, and is never gated at share 1. A fake clock stands in for time."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from streams.budget import RescoreBudget

STEP_SECONDS = (1.5, 4.0, 2.5, 3.0, 2.0)  # what a step of 5,000 users takes on the benchmark machine
BATCH_SECONDS = 0.1  # an event batch takes much less


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_worker(budget: RescoreBudget, clock: FakeClock, seconds: float) -> tuple[float, float]:
    """The worker's loop while events flow and users are due: an event batch, then a rescoring step if the budget
    allows it. Returns (seconds spent rescoring, seconds spent on event batches)."""
    steps = itertools.cycle(STEP_SECONDS)
    rescoring = events = 0.0
    end = clock.now + seconds
    while clock.now < end:
        clock.now += BATCH_SECONDS
        events += BATCH_SECONDS
        budget.batch_ran()
        if budget.allows():
            t = next(steps)
            clock.now += t
            rescoring += t
            budget.spent(t)
    return rescoring, events


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.75])
def test_rescoring_takes_its_share_while_events_flow(share: float) -> None:
    clock = FakeClock()
    rescoring, events = run_worker(RescoreBudget(share, clock=clock), clock, seconds=2000)
    assert rescoring / (rescoring + events) == pytest.approx(share, abs=0.02)


def test_share_one_never_gates() -> None:
    clock = FakeClock()
    budget = RescoreBudget(1.0, clock=clock)
    for t in STEP_SECONDS * 20:  # events flow: a batch, then a step
        clock.now += BATCH_SECONDS
        budget.batch_ran()
        assert budget.allows()
        clock.now += t
        budget.spent(t)
        assert budget.allows()  # even right after a long step


def test_share_one_never_gates_back_to_back_steps_despite_rounding() -> None:
    """At share 1 a step owes no wait, but float rounding of (end - duration) can leave a hair of wait owed."""
    clock = FakeClock()
    clock.now = 98.1072803493832
    budget = RescoreBudget(1.0, clock=clock)
    budget.batch_ran()
    budget.spent(0.0)
    clock.now += 3.7937318418620904  # (now + t) - t < now in floating point
    budget.spent(3.7937318418620904)  # a catch-up step right after the first
    assert budget.allows()


def test_a_quiet_stream_is_not_gated() -> None:
    clock = FakeClock()
    budget = RescoreBudget(0.25, clock=clock)
    budget.batch_ran()
    clock.now += 1.0  # no batch for a second
    for t in STEP_SECONDS:  # back-to-back steps, as the timer runs them on a quiet stream
        assert budget.allows()
        clock.now += t
        budget.spent(t)
    assert budget.quiet()


def test_a_worker_that_never_saw_a_batch_is_quiet() -> None:
    assert RescoreBudget(0.5, clock=FakeClock()).allows()


def test_time_spent_rescoring_does_not_make_the_stream_look_quiet() -> None:
    """Batches wait while a step runs: a 4 s step right after a batch leaves the stream flowing, not quiet."""
    clock = FakeClock()
    budget = RescoreBudget(0.5, clock=clock)
    budget.batch_ran()
    clock.now += 4.0
    budget.spent(4.0)
    assert not budget.quiet() and not budget.allows()
    clock.now += 0.9  # 0.9 s without a batch since the step: still flowing, still owed 3.1 s
    assert not budget.quiet() and not budget.allows()
    clock.now += 0.1  # a second without a batch: quiet, so no gate though 3 s are still owed
    assert budget.quiet() and budget.allows()


def test_the_wait_is_proportional_to_the_step() -> None:
    clock = FakeClock()
    budget = RescoreBudget(0.2, clock=clock)
    budget.batch_ran()
    clock.now += 3.0
    budget.spent(3.0)  # share 0.2: the next gated step waits 3 * 0.8 / 0.2 = 12 s
    for _ in range(119):
        clock.now += BATCH_SECONDS
        budget.batch_ran()
        assert not budget.allows()
    clock.now += BATCH_SECONDS + 1e-9
    budget.batch_ran()
    assert budget.allows()


def test_steps_that_must_run_push_the_gated_steps_back() -> None:
    """A catch-up step runs regardless of the budget, and its time is owed on top of the wait still owed."""
    clock = FakeClock()
    budget = RescoreBudget(0.5, clock=clock)
    budget.batch_ran()
    clock.now += 2.0
    budget.spent(2.0)  # owes 2 s
    clock.now += 1.0
    budget.batch_ran()  # 1 s of events: 1 s still owed
    clock.now += 3.0
    budget.spent(3.0)  # an ungated catch-up step: owes 1 + 3 s
    clock.now += 3.9
    budget.batch_ran()
    assert not budget.allows()
    clock.now += 0.2
    budget.batch_ran()
    assert budget.allows()


def test_charge_times_the_step_and_ignores_steps_that_found_nobody() -> None:
    clock = FakeClock()
    budget = RescoreBudget(0.5, clock=clock)
    budget.batch_ran()

    async def step(seconds: float, users: int) -> int:
        clock.now += seconds
        return users

    assert asyncio.run(budget.charge(step(0.01, 0))) == 0
    assert budget.allows()  # an empty step does not hold back the other partitions
    assert asyncio.run(budget.charge(step(2.0, 5000))) == 5000
    assert not budget.allows() and budget.next_at == pytest.approx(clock.now + 2.0)


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_the_share_is_in_zero_one(share: float) -> None:
    with pytest.raises(ValueError):
        RescoreBudget(share)
