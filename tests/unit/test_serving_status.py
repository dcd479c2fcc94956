"""The pure parts of serving scores as of a time: status, the score cache's old and new entries, daily history."""

from __future__ import annotations

import orjson

from core.days import DAY_MS, LAPSE_DAYS
from features.state import UserState
from serving.on_demand import now_ms
from serving.routes.history import daily
from serving.status import cached_scores, status

T = (0.3, 0.7)


def test_status_bounds() -> None:
    last = 10 * DAY_MS + 123
    quiet = last + LAPSE_DAYS * DAY_MS
    assert status(quiet, last, 0.0, T) == "lapsed"  # exactly 60 days: lapsed, whatever the score
    assert status(quiet - 1, last, 0.0, T) == "active"
    assert status(quiet - 1, last, 0.7, T) == "at_risk"  # at the high threshold
    assert status(quiet - 1, last, 0.6999, T) == "active"  # `medium` risk is not at risk
    assert status(quiet - 1, last, None, T) == "active"  # no churn score: nothing says at risk


def blob(score: float, as_of: int, **extra: object) -> bytes:
    return orjson.dumps({"score": score, "model": "m", "version": "v", "as_of_ms": as_of} | extra)


def test_cached_scores_old_and_new_entries_and_purchase_follows_churn() -> None:
    last = 100 * DAY_MS
    cache = {
        "churn:pretrained": blob(0.9, last),  # an entry written before scores followed time
        "purchase:pretrained": blob(0.05, last),
        "churn:online": blob(0.1, last + 61 * DAY_MS, trigger="time", last_event_ms=last),
        "purchase:online": blob(0.5, last + 61 * DAY_MS, trigger="time", last_event_ms=last),
    }
    out = cached_scores(cache, T)
    got = {(t, s["model_kind"]): (s["trigger"], s["last_event_ms"], s["status"]) for t in out for s in out[t]}
    assert got == {
        ("churn", "pretrained"): ("event", last, "at_risk"),
        ("purchase", "pretrained"): ("event", last, "at_risk"),  # the user's status: by the churn score
        ("churn", "online"): ("time", last, "lapsed"),
        ("purchase", "online"): ("time", last, "lapsed"),
    }
    assert out["churn"][0]["as_of"] == "1970-06-11T00:00:00.000Z"  # online sorts first; 161 days after epoch


def test_on_demand_as_of_never_precedes_the_last_event() -> None:
    state = UserState(last_ms=50 * DAY_MS)
    assert now_ms(state, clock_ms=80 * DAY_MS) == 80 * DAY_MS
    assert now_ms(state, clock_ms=10 * DAY_MS) == 50 * DAY_MS


def test_daily_pairs_each_day_with_its_own_churn_score() -> None:
    end = [d * DAY_MS - 1 for d in (11, 12, 13)]
    rows = [
        ("churn", "1970-01-11", end[0], "event", end[0] - 5, "x", "1", 0.8),
        ("purchase", "1970-01-11", end[0], "event", end[0] - 5, "x", "1", 0.2),
        ("churn", "1970-01-12", end[1], "time", end[0] - 5, "x", "1", 0.2),
        ("purchase", "1970-01-12", end[1], "time", end[0] - 5, "x", "1", 0.3),
        ("purchase", "1970-01-13", end[2], "time", end[0] - 5, "x", "1", 0.3),  # no churn row that day
    ]
    days = daily(rows, "purchase", T)
    assert [(d["day"], d["status"], d["trigger"]) for d in days] == [
        ("1970-01-11", "at_risk", "event"),
        ("1970-01-12", "active", "time"),
        ("1970-01-13", "active", "time"),
    ]
    assert [d["day"] for d in daily(rows, "churn", T)] == ["1970-01-11", "1970-01-12"]
