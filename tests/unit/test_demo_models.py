"""``make demo`` trains models when a champion is missing, and when one was trained on another feature list (an
earlier version's registry), which the worker would refuse to load."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from rich.console import Console

from churnstream.demo import ensure_models
from churnstream.settings import Settings
from core.tasks import TASKS
from models.pretrained import create
from models.registry import Registry


def test_a_champion_trained_on_other_features_is_trained_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    registry = Registry(settings.registry_dir())
    X = np.random.default_rng(0).normal(size=(60, 3))
    old = create("logreg").fit(X, (X[:, 0] > 0).astype(np.int8))
    for task in TASKS:
        ref = registry.save(task, old, {})
        meta = registry._dir(ref) / "meta.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "feature_names": ["a", "b", "c"]}))
        (tmp_path / "models" / task / "champion.json").write_text(
            json.dumps({"model": "logreg", "version": ref.version})
        )
    out = io.StringIO()
    ensure_models(settings, Console(file=out, width=200), users=80, days=90)
    assert "trained on other features" in out.getvalue()
    for task in TASKS:
        champion = registry.champion(task)
        assert champion is not None and registry.load(champion)
