"""The oracle is the true probability of the rows the data sets produce and of the rows at calendar cutoffs:
calibrated per decile on a large simulated sample, within sampling error, and never worse than the base rate.
It sees the history up to as_of only: twins with the same past and different futures get the same probability.
The checks have power: an oracle that ignores dormancy fails calibration, the clairvoyant fails the twins."""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict

import numpy as np
import orjson
import pytest

from core.days import day_end
from core.tasks import TASKS, label
from features import offline
from features.state import DAY_MS
from models import dataset
from models.evaluate import calibration_by_decile
from models.oracle import Oracle, SessionState, session_outcome, session_purchase_probability
from simulation import generator, latent

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
    y = np.array([label("churn", accepted[e["user_id"]], e["ts"], ts[e["user_id"]]) for e in rows])
    p = oracle.scores("churn", [e["user_id"] for e in rows], [e["ts"] for e in rows])
    table = calibration_by_decile(y, p, [e["user_id"] for e in rows])
    assert y.sum() > 50 and all(abs(b["z"]) <= Z_MAX for b in table), table


def _calendar_rows(accepted: offline.Accepted, every_days: int = 7) -> tuple[list[str], list[int]]:
    """Every user with an event in the 60 days up to the end of every ``every_days``-th day, horizons inside."""
    ts = {u: [e.ts_ms for e in evs] for u, evs in accepted.items()}
    first, end = generator.DEFAULT_START_MS // DAY_MS, generator.DEFAULT_START_MS + DAYS * DAY_MS
    quiet = TASKS["churn"].horizon_days * DAY_MS
    users, as_of = [], []
    for day in range(first + every_days - 1, first + DAYS, every_days):
        if day_end(day) + quiet >= end:
            break
        for user in sorted(ts):
            i = bisect.bisect_right(ts[user], day_end(day))
            if i and day_end(day) - ts[user][i - 1] < quiet:
                users.append(user)
                as_of.append(day_end(day))
    return users, as_of


def _z_table(y: np.ndarray, p: np.ndarray, users: list[str]) -> tuple[list[dict[str, float]], str]:
    table = calibration_by_decile(y, p, users)
    return table, "\n".join(
        f"decile {i}: n={b['rows']:.0f} predicted {b['predicted']:.4f} observed {b['observed']:.4f} z={b['z']:+.1f}"
        for i, b in enumerate(table)
    )


@pytest.mark.parametrize("task", list(TASKS))
def test_oracle_is_calibrated_at_calendar_cutoffs(world, task: str) -> None:  # type: ignore[no-untyped-def]
    """Weekly day ends, every user with an event in the 60 days before: many of them quiet for weeks."""
    _, _, accepted, oracle = world
    users, as_of = _calendar_rows(accepted)
    ts = {u: [e.ts_ms for e in evs] for u, evs in accepted.items()}
    y = np.array([label(task, accepted[u], t, ts[u]) for u, t in zip(users, as_of, strict=True)])
    p = oracle.scores(task, users, as_of)
    table, shown = _z_table(y, p, users)
    assert len(y) > 15_000 and 0.1 < y.mean() < 0.9, shown
    assert all(abs(b["z"]) <= Z_MAX for b in table), shown
    (overall,) = calibration_by_decile(y, p, users, bins=1)
    assert abs(overall["z"]) <= Z_MEAN_MAX, f"all rows: z={overall['z']:+.1f}\n{shown}"
    assert np.mean((p - y) ** 2) < np.mean((y.mean() - y) ** 2), "the true probability must beat the base rate"


def test_posterior_of_the_hidden_state_is_calibrated(world) -> None:  # type: ignore[no-untyped-def]
    """P(gone | history) and P(active | history) against the generator's true state on as_of's day."""
    _, _, accepted, oracle = world
    users, as_of = _calendar_rows(accepted)
    state = oracle.states(users, as_of)
    truth = oracle.true_states(users, as_of)
    for s in (latent.ACTIVE, latent.GONE):
        table, shown = _z_table(truth[:, s], state[:, s], users)
        assert 0.05 < truth[:, s].mean() < 0.95 and all(abs(b["z"]) <= Z_MAX for b in table), f"state {s}\n{shown}"


def test_calibration_catches_an_oracle_that_ignores_dormancy(world) -> None:  # type: ignore[no-untyped-def]
    """The check has power: told that users never doze off, the oracle takes a quiet user for gone."""
    users, events, accepted, _ = world
    blind = [dataclasses.replace(u, dormancy=0.0, wake=0.0) for u in users]
    wrong = Oracle(blind, events, end_ms=generator.DEFAULT_START_MS + DAYS * DAY_MS)
    rows, as_of = _calendar_rows(accepted)
    ts = {u: [e.ts_ms for e in evs] for u, evs in accepted.items()}
    y = np.array([label("churn", accepted[u], t, ts[u]) for u, t in zip(rows, as_of, strict=True)])
    table, shown = _z_table(y, wrong.scores("churn", rows, as_of), rows)
    assert max(abs(b["z"]) for b in table) > 2 * Z_MAX, shown


def test_the_oracle_does_not_use_the_future(world) -> None:  # type: ignore[no-untyped-def]
    """Twins: the same latent parameters and events up to as_of, then the twin leaves for good at once. The
    oracle must give both the same probability; the clairvoyant, told the hidden state, must not."""
    users, events, _, _ = world
    end = generator.DEFAULT_START_MS + DAYS * DAY_MS
    by_user: defaultdict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e)
    rng = np.random.default_rng(1)
    twins, twin_events, rows = [], [], []
    for i in rng.choice(len(users), 400, replace=False).tolist():
        u, evs = users[i], by_user[users[i].user_id]
        if not evs:
            continue
        e = evs[int(rng.integers(len(evs)))]  # as_of: just after an event, or a day end up to 60 days later
        as_of = e["ts"] if rng.random() < 0.4 else day_end(e["ts"] // DAY_MS + int(rng.integers(0, 60)))
        if as_of >= end:
            continue
        past = [x for x in evs if x["ts"] <= as_of]
        cut = past[-1]["ts"] // DAY_MS + 1 - u.signup_ms // DAY_MS  # the twin is gone from the next day on
        twin = dataclasses.replace(
            u, user_id=f"twin-{u.user_id}", path=u.path[:cut] + "G" * (len(u.path) - cut), churn_ms=0
        )
        twins.append(twin)
        twin_events += [x | {k: f"twin-{x[k]}" for k in ("user_id", "event_id", "session_id")} for x in past]
        rows.append((u.user_id, twin.user_id, as_of))
    both = Oracle([*users, *twins], [*events, *twin_events], end_ms=end)
    ids, twin_ids, as_of = (list(c) for c in zip(*rows, strict=True))
    for task in TASKS:
        p, p_twin = both.scores(task, ids, as_of), both.scores(task, twin_ids, as_of)
        assert len(rows) > 300 and np.array_equal(p, p_twin), np.max(np.abs(p - p_twin))
        c, c_twin = both.clairvoyant_scores(task, ids, as_of), both.clairvoyant_scores(task, twin_ids, as_of)
        assert np.sum(np.abs(c - c_twin) > 0.1) > 30, "the twins' futures must differ for the check to mean anything"


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
