"""Online models (river) that learn from labels the stream resolves later.

- :class:`Snapshot`: the features and scores of a user at as_of, pending until its label is known.
- :func:`resolve_by_event` and :func:`resolve_by_watermark`: the label rules of ``models/tasks.py`` applied
  as events arrive and as event time passes the horizon.
- :class:`OnlineModel`: a river pipeline (standard scaler + logistic regression, or an adaptive random
  forest) with river's verbs, and a checkpoint signed with HMAC-SHA256. The checkpoint is a pickle, so it
  is only loaded when the signature made with this deployment's key matches. Besides the model it keeps the
  number of labels learned, an order-independent digest of them (:func:`label_hash`, summed modulo 2**63)
  and the learner's metadata (``meta``: what the checkpoint includes, see :mod:`streams.online`).

>>> snap = Snapshot(as_of_ms=0, x=[0.0], scores={})
>>> resolve_by_event("purchase", snap, kind="purchase", ts_ms=5 * DAY_MS)
1
>>> resolve_by_event("churn", snap, kind="page_view", ts_ms=0) is None  # not after as_of
True
>>> resolve_by_watermark("churn", snap, watermark_ms=61 * DAY_MS)
1
>>> m = OnlineModel("churn")
>>> m.learn_one(dict.fromkeys(FEATURE_NAMES, 0.0), 1, label_hash("churn", "u1", 0, 1))
>>> back = OnlineModel.loads(m.dumps(b"k", {"watermark": 7}), b"k")
>>> (back.learned, back.digest == label_hash("churn", "u1", 0, 1), back.meta)
(1, True, {'watermark': 7})
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from core.tasks import TASKS
from features.compute import FEATURE_NAMES
from features.state import DAY_MS

ONLINE_KINDS = ("logreg", "arf")
DIGEST_MODULUS = 1 << 63  # Redis keeps the same sum with BITFIELD ... OVERFLOW WRAP INCRBY u63


def label_hash(task: str, user_id: str, as_of_ms: int, y: int) -> int:
    """A 63-bit hash of one label (its snapshot's task, user and as_of, and its value).

    Sums of these modulo :data:`DIGEST_MODULUS` are order-independent digests of sets of labels: the checkpoint
    keeps one of the labels it learned, Redis one of the labels resolved.
    """
    h = hashlib.blake2b(f"{task}|{user_id}|{as_of_ms}|{y}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


class Snapshot(msgspec.Struct, array_like=True):
    as_of_ms: int
    x: list[float]  # features in FEATURE_NAMES order
    scores: dict[str, float]  # model kind -> score made at as_of (for progressive validation)
    partition: int = 0
    experiment: str = ""  # the experiment whose variants' scores (`champion`, `challenger`) are in ``scores``


def resolve_by_event(task: str, snap: Snapshot, kind: str, ts_ms: int) -> int | None:
    """The label an event settles, if any: churn 0 on any later event, purchase 1 on a later purchase."""
    if not snap.as_of_ms < ts_ms <= snap.as_of_ms + TASKS[task].horizon_days * DAY_MS:
        return None
    if task == "churn":
        return 0
    return 1 if kind == "purchase" else None


def resolve_by_watermark(task: str, snap: Snapshot, watermark_ms: int) -> int | None:
    """Once event time has passed the horizon with nothing settling it: churn 1, purchase 0."""
    if watermark_ms <= snap.as_of_ms + TASKS[task].horizon_days * DAY_MS:
        return None
    return 1 if task == "churn" else 0


class OnlineModel:
    def __init__(self, task: str, kind: str = "logreg", seed: int = 0) -> None:
        from river import forest, linear_model, optim, preprocessing

        if kind not in ONLINE_KINDS:
            raise ValueError(f"online model kind must be one of {ONLINE_KINDS}")
        self.task, self.kind, self.learned, self.digest = task, kind, 0, 0
        self.meta: dict[str, Any] = {}  # the learner's: what this checkpoint includes
        if kind == "logreg":
            self.model: Any = preprocessing.StandardScaler() | linear_model.LogisticRegression(
                optimizer=optim.SGD(0.01), l2=1e-4
            )
        else:
            self.model = forest.ARFClassifier(n_models=10, seed=seed)

    @property
    def name(self) -> str:
        return f"online:{self.kind}"

    @property
    def version(self) -> str:
        return f"n{self.learned}"

    def predict_proba_one(self, x: dict[str, float]) -> float:
        if self.kind == "logreg":  # the batch formula, so one row scores as it would in a batch
            return float(self.predict_proba_many(np.array([[x[n] for n in FEATURE_NAMES]], dtype=np.float64))[0])
        return float(self.model.predict_proba_one(x).get(True, 0.5 if not self.learned else 0.0))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        """P(label = 1) for each row of ``X`` (columns in ``FEATURE_NAMES`` order).

        The logistic regression scores the whole batch with numpy from river's fitted state (the scaler's running
        means and variances, the weights and the intercept), with river's formulas: ``(x - mean) / sqrt(var)``
        (0 where the variance is 0), the dot product plus the intercept, and river's sigmoid (0 below -30, 1
        above 30). The dot product is accumulated column by column in ``FEATURE_NAMES`` order, elementwise, so a
        row's score never depends on the other rows of its batch (a replayed backlog scores as the live stream
        did). The forest scores row by row through river.
        """
        X = np.asarray(X, dtype=np.float64)
        if self.kind != "logreg":
            return np.array(
                [self.predict_proba_one(dict(zip(FEATURE_NAMES, r, strict=True))) for r in X.tolist()],
                dtype=np.float64,
            )
        lr = self.model["LogisticRegression"]
        weights, scaled = lr.weights, self._scaled(X)
        z = np.full(len(X), float(lr.intercept))
        for j, name in enumerate(FEATURE_NAMES):
            if w := weights.get(name, 0.0):
                z += scaled[:, j] * w
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-z))
        return np.where(z < -30, 0.0, np.where(z > 30, 1.0, p))

    def learn_one(self, x: dict[str, float], y: int, label: int = 0) -> None:
        """Learn one label; ``label`` is its :func:`label_hash`, added to the digest."""
        self.model.learn_one(x, bool(y))
        self.learned += 1
        self.digest = (self.digest + label) % DIGEST_MODULUS

    def learn_many(self, X: np.ndarray, y: Sequence[int], labels: Sequence[int]) -> None:
        """Learn a batch of labels in order; ``labels``: their :func:`label_hash` values.

        The logistic regression's scaler takes the batch at once (river's ``StandardScaler.learn_many``, an exact
        merge of the running moments), then the regression learns each row, scaled with the moments that include
        the batch, one SGD step per label as with ``learn_one``. The forest learns row by row.
        """
        if not len(X):
            return
        if self.kind != "logreg" or len(X) == 1:  # one row: river's pipeline learns it as it comes
            for row, target, label in zip(np.asarray(X).tolist(), y, labels, strict=True):
                self.learn_one(dict(zip(FEATURE_NAMES, row, strict=True)), target, label)
            return
        import pandas as pd

        X = np.asarray(X, dtype=np.float64)
        scaler, lr = self.model["StandardScaler"], self.model["LogisticRegression"]
        scaler.learn_many(pd.DataFrame(X, columns=list(FEATURE_NAMES)))
        for name, var in scaler.vars.items():  # the batch formula E[x^2] - mean^2 can leave a constant column at
            if var < 0:  # -1e-17, whose square root river's transform_one would take as a complex number
                scaler.vars[name] = 0.0
        for row, target in zip(self._scaled(X).tolist(), y, strict=True):
            lr.learn_one(dict(zip(FEATURE_NAMES, row, strict=True)), bool(target))
        self.count(labels)

    def count(self, labels: Sequence[int]) -> None:
        """Add labels (their :func:`label_hash` values) to the count and digest the checkpoint keeps; called alone
        for labels this model cannot learn (snapshots of another feature list), which are consumed, not learned."""
        self.learned += len(labels)
        self.digest = (self.digest + sum(labels)) % DIGEST_MODULUS

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        """``X`` scaled as river's ``StandardScaler.transform_one`` scales a row: 0 where the variance is 0."""
        scaler = self.model["StandardScaler"]
        out = np.zeros_like(X)
        for j, name in enumerate(FEATURE_NAMES):
            if (var := scaler.vars.get(name, 0.0)) > 0:
                out[:, j] = (X[:, j] - scaler.means.get(name, 0.0)) / np.sqrt(var)
        return out

    def dumps(self, key: bytes, meta: dict[str, Any] | None = None) -> bytes:
        body = pickle.dumps((self.task, self.kind, self.learned, self.model, self.digest, meta or {}))
        return hmac.new(key, body, hashlib.sha256).digest() + body

    @classmethod
    def loads(cls, blob: bytes, key: bytes) -> OnlineModel:
        mac, body = blob[:32], blob[32:]
        if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
            raise ValueError("online model checkpoint signature does not match: refusing to load it")
        fields = pickle.loads(body)
        task, kind, learned, model = fields[:4]
        out = cls(task, kind)
        out.learned, out.model = learned, model
        if len(fields) == 6:  # checkpoints written before the digest and meta have four fields
            out.digest, out.meta = fields[4], fields[5]
        return out
