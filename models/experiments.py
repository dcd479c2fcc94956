"""Champion/challenger experiments: a challenger scores beside the champion, and a stable share of users is served it.

An experiment belongs to one task and lives in the registry beside the champion pointer
(``<registry>/<task>/experiment.json``, replaced atomically; ended ones are appended to ``experiments.jsonl``), so
every worker and API process sees it within ``CHURNSTREAM_MODEL_RELOAD_S``, as it sees a promotion.

Assignment is a hash of (experiment id, user id): the same user always gets the same variant for one experiment,
in every process and after every restart, and another experiment draws afresh.

>>> exp = Experiment("e1", "churn", "xgboost", "v2", share=0.25, mode="served", started_ms=0)
>>> [exp.variant(f"u{i}") for i in range(6)]
['champion', 'challenger', 'champion', 'challenger', 'champion', 'champion']
>>> sum(exp.variant(f"u{i}") == "challenger" for i in range(10_000))
2541
>>> Experiment.from_json(exp.to_json()) == exp
True
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from models.registry import ModelRef

VARIANTS = ("champion", "challenger")
MODES = ("shadow", "served")  # shadow: the challenger only scores; served: its share of users is served its score


def bucket(experiment_id: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment, user)."""
    digest = hashlib.blake2b(f"{experiment_id}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    task: str
    model: str  # the challenger
    version: str
    share: float  # of users assigned the challenger
    mode: str
    started_ms: int
    ended_ms: int = 0
    outcome: str = ""  # stopped | promoted (ended ones)

    @property
    def challenger(self) -> ModelRef:
        return ModelRef(self.task, self.model, self.version)

    def variant(self, user_id: str) -> str:
        """The user's variant: ``challenger`` for a stable ``share`` of users, else ``champion``."""
        return "challenger" if bucket(self.experiment_id, user_id) < self.share else "champion"

    def served(self, user_id: str) -> str:
        """The variant whose score the user is served (always the champion's in shadow mode)."""
        return self.variant(user_id) if self.mode == "served" else "champion"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Experiment:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class Experiments:
    """The experiments of a registry directory: at most one running per task."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _active(self, task: str) -> Path:
        return self.root / task / "experiment.json"

    def running(self, task: str) -> Experiment | None:
        try:
            return Experiment.from_json(json.loads(self._active(task).read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def start(self, challenger: ModelRef, share: float, mode: str = "served") -> Experiment:
        """Start an experiment for ``challenger`` (its task must have none running)."""
        if not 0 < share < 1 or mode not in MODES:
            raise ValueError("share must be in (0, 1) and mode one of shadow, served")
        if self.running(challenger.task) is not None:
            raise ValueError(f"{challenger.task}: an experiment is running; stop it first")
        exp = Experiment(
            uuid.uuid4().hex[:12], challenger.task, challenger.model, challenger.version, share, mode, _now()
        )
        self._write(self._active(exp.task), exp)
        return exp

    def end(self, task: str, outcome: str) -> Experiment | None:
        """End the task's running experiment (``stopped`` or ``promoted``); None if none runs."""
        exp = self.running(task)
        if exp is None:
            return None
        ended = replace(exp, ended_ms=_now(), outcome=outcome)
        with open(self.root / task / "experiments.jsonl", "a") as f:
            f.write(json.dumps(ended.to_json()) + "\n")
        self._active(task).unlink(missing_ok=True)
        return ended

    def history(self, task: str) -> list[Experiment]:
        path = self.root / task / "experiments.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [Experiment.from_json(json.loads(line)) for line in lines if line.strip()]

    def find(self, task: str, experiment_id: str) -> Experiment | None:
        running = self.running(task)
        if running is not None and running.experiment_id == experiment_id:
            return running
        return next((e for e in self.history(task) if e.experiment_id == experiment_id), None)

    @staticmethod
    def _write(target: Path, exp: Experiment) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(exp.to_json()))
        os.replace(tmp, target)  # atomic: a worker sees the old state or the new, never half


def _now() -> int:
    return int(time.time() * 1000)
