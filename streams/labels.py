"""What the online learner keeps in Redis and writes to ClickHouse: a resolved :class:`Label` (one label log entry,
msgpack), the pending snapshots' codec, label log entry ids, what resolving labels writes besides the snapshots, and
the rows of live model quality.

Keys: ``cs:p:{user}`` holds the user's pending snapshots (at most one per task); ``cs:exp:<partition>`` scores
``<task>|<user>`` by the snapshot's expiry (as_of + horizon); ``cs:lab:<partition>`` is a Redis stream of the
partition's resolved labels not yet in a checkpoint; ``cs:labels:<task>`` counts snapshots ``taken`` and labels
``resolved`` and ``cs:labels:<task>:digest`` sums their :func:`~models.online.label_hash` (modulo 2**63), to
compare with the checkpoint's; ``cs:labels:watermark`` holds the latest event time of the events the learner
has seen (written with their labels, so a restart resumes from it); ``cs:online:<task>:<kind>`` holds the
signed checkpoint of an online model. :mod:`core.keys` builds them all.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, cast

import msgspec
import numpy as np

from core.days import DAY_MS
from core.keys import counts_key, digest_key, expiry_key, log_key
from core.tasks import TASKS
from models.metrics import quality
from models.online import DIGEST_MODULUS, Snapshot, label_hash
from streams.sinks import Sink

METRIC_COLUMNS = ("ts", "task", "model_kind", "model", "labels", "window", "roc_auc", "log_loss", "positive_rate")
RESOLVED_COLUMNS = (
    "task", "model_kind", "user_id", "as_of", "horizon_end", "score", "label", "resolved_at", "experiment",
)  # fmt: skip
VARIANT_KINDS = frozenset({"champion", "challenger"})  # an experiment's scores in a snapshot


class Label(msgspec.Struct, array_like=True):
    """A resolved label: the snapshot it settles and its value."""

    task: str
    user_id: str
    snap: Snapshot
    y: int

    @property
    def hash(self) -> int:
        return label_hash(self.task, self.user_id, self.snap.as_of_ms, self.y)


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(dict[str, Snapshot])
_label_dec = msgspec.msgpack.Decoder(Label)
Entries = list[tuple[bytes, dict[bytes, bytes]]]  # XRANGE's answer (the client does not decode responses)


def stream_id(raw: bytes | str) -> tuple[int, int]:
    """A Redis stream entry id (``<ms>-<seq>``) as a comparable pair."""
    ms, seq = (raw.decode() if isinstance(raw, bytes) else raw).split("-")
    return int(ms), int(seq)


def metric_rows(
    validation: Mapping[tuple[str, str], deque[tuple[int, float]]],
    labels: Mapping[tuple[str, str], int],
    online_names: Mapping[str, str],
) -> list[tuple[Any, ...]]:
    """``model_metrics`` rows (``METRIC_COLUMNS``): per (task, model kind) with at least 20 labels in its
    progressive-validation window, the rolling ROC-AUC, log loss and positive rate."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    for (task, kind), q in validation.items():
        if len(q) < 20:
            continue
        y = np.array([a for a, _ in q], dtype=np.int8)
        p = np.array([b for _, b in q])
        m = quality(y, p) if 0 < y.sum() < len(y) else None
        model = online_names[task] if kind == "online" else kind
        auc, loss = (m["roc_auc"], m["log_loss"]) if m else (None, float("nan"))
        rows.append((now, task, kind, model, labels[(task, kind)], len(q), auc, loss, float(y.mean())))
    return rows


def resolved_rows(labels: Sequence[Label], watermark_ms: int) -> list[tuple[Any, ...]]:
    """``resolved_scores`` rows (``RESOLVED_COLUMNS``): one per label and model kind that scored its snapshot.

    >>> from models.online import Snapshot
    >>> resolved_rows([Label("purchase", "u1", Snapshot(0, [], {"pretrained": 0.25}), 1)], 9)
    [('purchase', 'pretrained', 'u1', 0, 2592000000, 0.25, 1, 9, '')]
    >>> snap = Snapshot(0, [], {"pretrained": 0.25, "champion": 0.25, "challenger": 0.5}, experiment="e1")
    >>> [(r[1], r[-1]) for r in resolved_rows([Label("purchase", "u1", snap, 1)], 9)]
    [('pretrained', ''), ('champion', 'e1'), ('challenger', 'e1')]
    """
    rows = []
    for lab in labels:
        end = lab.snap.as_of_ms + TASKS[lab.task].horizon_days * DAY_MS
        for kind, score in lab.snap.scores.items():
            exp = lab.snap.experiment if kind in VARIANT_KINDS else ""
            rows.append((lab.task, kind, lab.user_id, lab.snap.as_of_ms, end, score, lab.y, watermark_ms, exp))
    return rows


def queue_labels(pipe: Any, labels: Sequence[Label]) -> None:
    """Queue, in a transaction, what resolving ``labels`` writes besides their snapshots: one log entry per label,
    one ``ZREM`` per partition from the expiry index, and the counters."""
    settled: dict[int, list[str]] = {}  # partition -> expiry index members to remove
    for lab in labels:
        pipe.xadd(log_key(lab.snap.partition), {"l": _enc.encode(lab)})
        settled.setdefault(lab.snap.partition, []).append(f"{lab.task}|{lab.user_id}")
    for partition, members in settled.items():
        pipe.zrem(expiry_key(partition), *members)
    for task in TASKS:
        mine = [lab.hash for lab in labels if lab.task == task]
        if mine:
            pipe.hincrby(counts_key(task), "resolved", len(mine))
            pipe.execute_command(
                "BITFIELD", digest_key(task), "OVERFLOW", "WRAP", "INCRBY", "u63", 0, sum(mine) % DIGEST_MODULUS
            )


class ResolvedScores:
    """``resolved_scores`` rows waiting for their insert (none without a sink). The learner adds the rows of every
    label it learns and writes them before each checkpoint, so what a crash loses is learned, and added, again."""

    def __init__(self, sink: Sink | None) -> None:
        self.sink, self.rows = sink, cast(list[tuple[Any, ...]], [])

    def add(self, labels: Sequence[Label], watermark_ms: int) -> None:
        if self.sink is not None:
            self.rows += resolved_rows(labels, watermark_ms)

    async def write(self) -> int:
        """Insert the waiting rows; on failure they wait for the next call (and the caller's checkpoint too)."""
        rows, self.rows = self.rows, []
        try:
            return await self.sink.write(rows) if self.sink is not None and rows else 0
        except BaseException:
            self.rows = rows + self.rows
            raise


async def trim_logs(redis: Any, positions: dict[int, tuple[int, int]]) -> None:
    """Drop the label log entries up to ``positions``: only once a checkpoint that includes them is written."""
    async with redis.pipeline(transaction=False) as pipe:
        for partition, (ms, seq) in positions.items():  # MINID keeps entries at or above the id
            pipe.xtrim(log_key(partition), minid=f"{ms}-{seq + 1}", approximate=False)
        await pipe.execute()
