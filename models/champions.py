"""The champion of each task, loaded from the registry and reloaded when a promotion changes it.

A rejected artifact never replaces the model in service: the error is logged and the old champion keeps
scoring. A worker checks every ``interval_s`` seconds, so a promotion takes effect within seconds.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from core.tasks import TASKS
from models.pretrained import Pretrained
from models.registry import ModelRef, ModelRejected, Registry

log = logging.getLogger(__name__)


class Champions:
    def __init__(self, root: Path, interval_s: float = 2.0) -> None:
        self.registry = Registry(root)
        self.interval_s = interval_s
        self.serving: dict[str, tuple[ModelRef, Pretrained]] = {}
        self._rejected: set[ModelRef] = set()
        self._checked = 0.0

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.interval_s:
            return
        self._checked = now
        for task in TASKS:
            ref = self.registry.champion(task)
            current = self.serving.get(task)
            if ref is None or (current and current[0] == ref) or ref in self._rejected:
                continue
            try:
                model = self.registry.load(ref)
            except ModelRejected as exc:
                self._rejected.add(ref)
                keep = f"keeping {current[0]}" if current else "no pretrained model serves this task"
                log.error("champion %s refused: %s; %s", ref, exc, keep)
                continue
            self.serving[task] = (ref, model)
            log.warning("serving %s for %s", ref, task)

    def get(self, task: str) -> tuple[ModelRef, Pretrained] | None:
        return self.serving.get(task)
