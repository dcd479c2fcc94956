"""The champion of each task, loaded from the registry and reloaded when a promotion changes it.

A rejected artifact never replaces the model in service: the error is logged and the old champion keeps
scoring. A worker checks every ``interval_s`` seconds, so a promotion takes effect within seconds.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from core.tasks import TASKS
from models.experiments import Experiment, Experiments
from models.pretrained import Pretrained
from models.registry import ModelRef, ModelRejected, Registry

log = logging.getLogger(__name__)


class Champions:
    def __init__(self, root: Path, interval_s: float = 2.0) -> None:
        self.registry = Registry(root)
        self.interval_s = interval_s
        self.serving: dict[str, tuple[ModelRef, Pretrained]] = {}
        self.experiments = Experiments(root)
        self.trials: dict[str, tuple[Experiment, Pretrained]] = {}  # task -> its running experiment and challenger
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
        for task in TASKS:
            self._refresh_trial(task)

    def _refresh_trial(self, task: str) -> None:
        exp = self.experiments.running(task)
        current = self.trials.get(task)
        if exp is None or exp.challenger in self._rejected:
            if current is not None:
                log.warning("experiment %s of %s ended", current[0].experiment_id, task)
            self.trials.pop(task, None)
            return
        if current is not None and current[0] == exp:
            return
        try:
            self.trials[task] = (exp, self.registry.load(exp.challenger))
        except ModelRejected as exc:
            self._rejected.add(exp.challenger)
            log.error("challenger %s refused: %s; the champion alone scores", exp.challenger, exc)
            self.trials.pop(task, None)
            return
        log.warning("experiment %s: %s against the champion of %s", exp.experiment_id, exp.challenger, task)

    def trial(self, task: str) -> tuple[Experiment, Pretrained] | None:
        """The task's running experiment and its challenger model (None: none runs)."""
        return self.trials.get(task)

    def get(self, task: str) -> tuple[ModelRef, Pretrained] | None:
        return self.serving.get(task)
