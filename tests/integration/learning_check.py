"""The online-learning end-state check: every label the stream resolved was learned exactly once.

The worker resolves labels in Redis transactions that also count them (``cs:labels:<task>``: snapshots
``taken``, labels ``resolved``, and a digest of the resolved labels); each checkpoint keeps the number and the
digest of the labels its model learned. Once the worker has settled (every due snapshot expired, every
resolved label in the checkpoint), :func:`assert_labels_learned_once` checks:

1. the checkpoint learned exactly the labels resolved: same count and same digest, per task;
2. no snapshot vanished: ``taken == resolved + pending``;
3. against the workload's records: the watermark is the latest accepted event time, and every snapshot still
   pending is one the records leave unresolved (``models/tasks.py`` rules: no later event within the churn
   horizon, no purchase within the purchase horizon, horizon not yet passed by the watermark), at the time of
   one of its user's events.

Which snapshots exist depends on the worker's micro-batches (a snapshot is taken at a user's state after a
batch), so the number of labels is not a function of the records alone; the records decide each pending
snapshot, the counters and digests decide that each resolved one was learned once.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import redis

from churnstream.settings import Settings
from core.keys import WATERMARK_KEY, checkpoint_key, counts_key, digest_key, expiry_key, log_key, pending_key, user_of
from core.tasks import TASKS
from models.online import DIGEST_MODULUS, OnlineModel, resolve_by_event, resolve_by_watermark
from streams.online import _dec
from tests.integration.endstate import Workload


def _settled(r: redis.Redis, settings: Settings) -> tuple[bool, str]:
    watermark = int(r.zscore(WATERMARK_KEY, "max") or 0)
    due_below = watermark - int(settings.label_lateness_s * 1000)
    logged = [r.xlen(log_key(p)) for p in range(settings.partitions)]
    due = [r.zcount(expiry_key(p), "-inf", f"({due_below}") for p in range(settings.partitions)]
    checkpoints = [r.exists(checkpoint_key(t, settings.online_model)) for t in TASKS]
    ok = all(checkpoints) and not any(logged) and not any(due)
    return ok, f"labels not yet in a checkpoint per partition {logged}, snapshots due {due}, checkpoints {checkpoints}"


def wait_learning_settled(settings: Settings, timeout: float = 120) -> None:
    """Block until every due snapshot has expired and a checkpoint includes every resolved label (the worker
    checkpoints every ``online_checkpoint_s``); raise with what is missing after ``timeout``."""
    r = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + timeout
    while not (state := _settled(r, settings))[0]:
        if time.monotonic() > deadline:
            raise AssertionError(f"online learning did not settle within {timeout}s: {state[1]}")
        time.sleep(1)


@dataclass
class Learned:
    taken: dict[str, int]
    resolved: dict[str, int]
    learned: dict[str, int]
    pending: dict[str, int]


def assert_labels_learned_once(settings: Settings, wl: Workload) -> Learned:
    """The three checks of the module docstring, on a Redis database that only ``wl``'s run wrote to."""
    r = redis.Redis.from_url(settings.redis_url)
    key = settings.checkpoint_secret()
    lateness = int(settings.label_lateness_s * 1000)
    out = Learned({}, {}, {}, {})
    for task in TASKS:
        model = OnlineModel.loads(r.get(checkpoint_key(task, settings.online_model)), key)  # type: ignore[arg-type]
        counts = {k.decode(): int(v) for k, v in r.hgetall(counts_key(task)).items()}  # type: ignore[union-attr]
        (digest,) = r.bitfield(digest_key(task)).get("u63", 0).execute()
        out.taken[task], out.resolved[task], out.learned[task] = counts["taken"], counts["resolved"], model.learned
        # 1. learned exactly once: a lost label lowers the count, a label learned twice raises it
        assert model.learned == counts["resolved"], f"{task}: learned {model.learned}, resolved {counts['resolved']}"
        assert model.digest == digest % DIGEST_MODULUS, f"{task}: the labels learned are not the labels resolved"

    # 3. the records: the watermark, and each pending snapshot unresolved
    accepted = wl.accepted()
    watermark = int(r.zscore(WATERMARK_KEY, "max") or 0)
    latest = max(e.ts_ms for evs in accepted.values() for e in evs)
    assert watermark == latest, f"watermark {watermark}, latest accepted event {latest}"
    pending: Counter[str] = Counter()
    wrong: list[tuple[str, str, int, str]] = []
    for k in r.scan_iter(match=pending_key("*"), count=10_000):
        user = user_of(k)
        events = accepted.get(user, [])
        times = {e.ts_ms for e in events}
        for task, snap in _dec.decode(r.get(k)).items():  # type: ignore[arg-type]
            pending[task] += 1
            if snap.as_of_ms not in times:
                wrong.append((task, user, snap.as_of_ms, "as_of is none of the user's event times"))
            elif by := next((e for e in events if resolve_by_event(task, snap, e.kind, e.ts_ms) is not None), None):
                wrong.append((task, user, snap.as_of_ms, f"settled by {by.event_id} at {by.ts_ms}"))
            elif resolve_by_watermark(task, snap, watermark - lateness) is not None:
                wrong.append((task, user, snap.as_of_ms, "past its horizon"))
    assert not wrong, f"{len(wrong)} pending snapshots the records settle, e.g. {wrong[:3]}"
    for task in TASKS:
        out.pending[task] = pending[task]
        # 2. no snapshot vanished
        assert out.taken[task] == out.resolved[task] + pending[task], (task, out)
        assert out.resolved[task] > 0 and pending[task] > 0, (task, out)
    return out
