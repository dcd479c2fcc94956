"""Every model the API can score with: all four pretrained models of each task and the online model.

Pretrained models come from the registry (the champion's version for the champion's name, the newest version
for the others) and are loaded once and verified like in the worker. The online model is the worker's latest
signed checkpoint in Redis, reloaded every ``interval_s`` seconds, so the API scores with what the stream has
learnt so far.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from core.keys import checkpoint_key
from core.tasks import TASKS
from models.experiments import Experiments
from models.online import OnlineModel
from models.pretrained import MODEL_NAMES, Pretrained
from models.protocol import ScoringModel
from models.registry import ModelRef, ModelRejected, Registry
from models.retrain import retrainings

log = logging.getLogger(__name__)

MODEL_CHOICES = (*MODEL_NAMES, "online")


class ModelUnavailable(LookupError):
    """The requested model has no usable version for the task (never trained, or refused)."""


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model, ready to score rows of features in ``FEATURE_NAMES`` order."""

    task: str
    name: str
    kind: str  # pretrained | online
    version: str
    model: ScoringModel

    def predict(self, X: np.ndarray) -> list[float]:
        return list(self.model.predict_proba_many(X).tolist())


class ModelCatalog:
    def __init__(
        self, models_dir: Path, redis: aioredis.Redis, checkpoint_key: bytes, online_kind: str, interval_s: float = 2.0
    ) -> None:
        self.registry = Registry(models_dir)
        self.redis, self.key, self.online_kind, self.interval_s = redis, checkpoint_key, online_kind, interval_s
        self._loaded: dict[ModelRef, Pretrained] = {}
        self._online: dict[str, tuple[float, OnlineModel | None]] = {}
        self._refs: tuple[float, dict[str, dict[str, ModelRef]], dict[str, ModelRef | None]] = (0.0, {}, {})

    def refs(self, force: bool = False) -> tuple[dict[str, dict[str, ModelRef]], dict[str, ModelRef | None]]:
        """(task -> model name -> serving version, task -> champion), re-read from disk every few seconds."""
        checked, refs, champions = self._refs
        if force or time.monotonic() - checked > self.interval_s:
            champions = {t: self.registry.champion(t) for t in TASKS}
            refs = {t: self.registry.latest(t) for t in TASKS}
            for t, champion in champions.items():
                if champion is not None:
                    refs[t][champion.model] = champion
            self._refs = (time.monotonic(), refs, champions)
        return refs, champions

    def pretrained(self, task: str, name: str | None = None) -> LoadedModel:
        """The named model of ``task``, or the champion when ``name`` is None."""
        refs, champions = self.refs()
        ref = champions.get(task) if name is None else refs.get(task, {}).get(name)
        if ref is None:
            what = "no champion" if name is None else f"no {name} model"
            raise ModelUnavailable(f"{task}: {what} in the registry; run `churnstream train`")
        if ref not in self._loaded:
            try:
                self._loaded[ref] = self.registry.load(ref)
            except ModelRejected as exc:
                raise ModelUnavailable(str(exc)) from exc
        return LoadedModel(task, ref.model, "pretrained", ref.version, self._loaded[ref])

    async def online(self, task: str) -> LoadedModel:
        checked, model = self._online.get(task, (0.0, None))
        if time.monotonic() - checked > self.interval_s:
            blob: bytes | None = await self.redis.get(checkpoint_key(task, self.online_kind))  # type: ignore[assignment]
            if blob is not None:
                try:
                    model = await asyncio.to_thread(OnlineModel.loads, blob, self.key)
                except ValueError as exc:
                    log.error("%s", exc)
            self._online[task] = (time.monotonic(), model)
        if model is None:
            raise ModelUnavailable(f"{task}: no online model checkpoint yet (the worker writes one periodically)")
        return LoadedModel(task, model.name, "online", model.version, model)

    async def get(self, task: str, name: str | None) -> LoadedModel:
        return await self.online(task) if name == "online" else self.pretrained(task, name)

    @property
    def experiments(self) -> Experiments:
        """The registry's champion/challenger experiments."""
        return Experiments(self.registry.root)

    def latest_experiments(self) -> dict[str, Any]:
        """Each task's running experiment, else its latest ended one (None: none ever)."""
        store = self.experiments
        return {t: store.running(t) or next(iter(store.history(t)[::-1]), None) for t in TASKS}

    def retrainings(self, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
        """Each task's latest retrainings (``churnstream retrain``), newest first: window, decision and reason (the
        registry's log read once)."""
        every = retrainings(self.registry.root)
        return {task: [r for r in every if r["task"] == task][:limit] for task in TASKS}

    def champions(self) -> dict[str, ModelRef | None]:
        """Each task's champion (None: none promoted)."""
        return self.refs()[1]

    def describe(self, task: str) -> list[dict[str, Any]]:
        """Registry metadata of each serving version: metrics, measured latency, size."""
        refs, champions = self.refs()
        out = []
        for name, ref in sorted(refs.get(task, {}).items()):
            try:
                meta = self.registry.meta(ref)
            except ModelRejected:
                continue
            metrics = meta.get("metrics", {})
            out.append(
                {
                    "name": name,
                    "kind": "pretrained",
                    "version": ref.version,
                    "champion": ref == champions.get(task),
                    "metrics": {k: metrics[k] for k in ("roc_auc", "pr_auc", "log_loss", "brier") if k in metrics},
                    "latency_us": {k: metrics[k] for k in ("single_row_us", "batch_per_row_us") if k in metrics},
                    "size_bytes": meta.get("size_bytes"),
                    "trained_at": meta.get("created_at"),
                }
            )
        return out
