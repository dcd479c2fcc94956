"""The oracle is the true probability of the rows the data sets produce: calibrated per decile on a large
simulated sample, within sampling error, and never worse than the base rate."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from core.tasks import TASKS
from features import offline
from features.state import DAY_MS
from models import dataset
from models.evaluate import calibration_by_decile
from models.oracle import Oracle, SessionState, session_outcome, session_purchase_probability
from simulation import generator

USERS, DAYS, SEED = 2000, 240, 11
Z_MAX = 4.0  # standard errors per decile; with 10 deciles x 2 tasks a calibrated oracle stays inside
Z_MEAN_MAX = 3.0  # standard errors for the mean over all rows (one check per task)


@pytest.fixture(scope="module")
def world() -> tuple[list[generator.User], list[dict], offline.Accepted, Oracle]:
    users = generator.make_users(USERS, DAYS, SEED)
    events = generator.simulate(users, DAYS, SEED)
    accepted = offline.accept((e["type"], orjson.dumps(e)) for e in events)
    return users, events, accepted, Oracle(users, events, end_ms=generator.DEFAULT_START_MS + DAYS * DAY_MS)


def _rows(world, task: str):  # type: ignore[no-untyped-def]
    _, _, accepted, oracle = world
    ts = dataset.build(accepted, task, seed=SEED)
    users = ts.train.users + ts.validation.users + ts.test.users
    as_of = ts.train.as_of + ts.validation.as_of + ts.test.as_of
    y = np.concatenate([ts.train.y, ts.validation.y, ts.test.y])
    return y, oracle.scores(task, users, as_of), users


@pytest.mark.parametrize("task", list(TASKS))
def test_oracle_is_calibrated_on_the_data_sets_rows(world, task: str) -> None:  # type: ignore[no-untyped-def]
    y, p, users = _rows(world, task)
    table = calibration_by_decile(y, p, users)
    shown = "\n".join(
        f"decile {i}: n={b['rows']:.0f} predicted {b['predicted']:.4f} observed {b['observed']:.4f} z={b['z']:+.1f}"
        for i, b in enumerate(table)
    )
    assert len(y) > 50_000 and y.sum() > 200, shown  # a sample large enough to see a miscalibration
    assert all(abs(b["z"]) <= Z_MAX for b in table), shown
    (overall,) = calibration_by_decile(y, p, users, bins=1)
    assert abs(overall["z"]) <= Z_MEAN_MAX, f"all rows: predicted {overall['predicted']:.4f} observed " + (
        f"{overall['observed']:.4f} z={overall['z']:+.1f}\n{shown}"
    )
    base = y.mean()
    assert np.mean((p - y) ** 2) < np.mean((base - y) ** 2), "the true probability must beat the base rate"


def test_oracle_is_calibrated_where_the_simulation_ends(world) -> None:  # type: ignore[no-untyped-def]
    """Rows whose horizon runs past the end: the labels are censored there, and the oracle knows it."""
    _, events, accepted, oracle = world
    end = generator.DEFAULT_START_MS + DAYS * DAY_MS
    rows = [e for e in events[::7] if e["ts"] > end - TASKS["churn"].horizon_days * DAY_MS]
    ts = {u: [e.ts_ms for e in evs] for u, evs in accepted.items()}
    from core.tasks import label

    y = np.array([label("churn", accepted[e["user_id"]], e["ts"], ts[e["user_id"]]) for e in rows])
    p = oracle.scores("churn", [e["user_id"] for e in rows], [e["ts"] for e in rows])
    table = calibration_by_decile(y, p, [e["user_id"] for e in rows])
    assert y.sum() > 50 and all(abs(b["z"]) <= Z_MAX for b in table), table


def test_session_funnel_matches_a_direct_simulation() -> None:
    """session_outcome against the generator's funnel simulated a million times for one user."""
    u = generator.User("u", 0, 1.0, 0.02, 0.4, 0.35, 10**12)
    q = session_purchase_probability(u)
    rng = np.random.default_rng(0)
    n = 400_000
    pages = 1 + rng.poisson(generator.EXTRA_PAGES_MEAN, n)
    adds = rng.binomial(pages, generator.PRODUCT_SHARE * u.cart_rate)
    removed = (adds > 0) & (rng.random(n) < generator.REMOVE_RATE)
    bought = (adds - removed > 0) & (rng.random(n) < u.purchase_propensity)
    se = np.sqrt(q * (1 - q) / n)
    assert abs(bought.mean() - q) < 4 * se, (bought.mean(), q)
    # a session after checkout with items left ends in a purchase with the propensity, or not at all
    assert session_outcome(u, SessionState(pages=3, cart=2, checkout=True)) == pytest.approx((0.6, 0.4))
    assert session_outcome(u, SessionState(pages=3, cart=1, done=True)) == (1.0, 0.0)
