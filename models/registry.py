"""Versioned model registry on disk: ``<root>/<task>/<model>/<version>/{model.json|model.skops, meta.json}``.

Every version records its feature names and order, training window, metrics, data fingerprint, library versions
and the artifact's sha256. Loading checks all of it: a corrupt artifact, a checksum mismatch or a feature list
that differs from the running code's is refused with :class:`ModelRejected`, and the caller keeps serving the
previous champion. The champion of a task is ``<root>/<task>/champion.json``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from features.compute import FEATURE_NAMES
from models.pretrained import ADAPTERS, Pretrained


class ModelRejected(RuntimeError):
    """A model version that must not serve: corrupt, tampered with, or trained on other features."""


@dataclass(frozen=True)
class ModelRef:
    task: str
    model: str
    version: str

    def __str__(self) -> str:
        return f"{self.task}/{self.model}@{self.version}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in ("scikit-learn", "xgboost-cpu", "skops", "numpy", "river"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[lib] = metadata.version(lib)
    return out


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, ref: ModelRef) -> Path:
        return self.root / ref.task / ref.model / ref.version

    def save(self, task: str, model: Pretrained, meta: dict[str, Any]) -> ModelRef:
        version = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        ref = ModelRef(task, model.name, version)
        directory = self._dir(ref)
        directory.mkdir(parents=True, exist_ok=False)
        path = model.save(directory)
        full = {
            **meta,
            "task": task,
            "model": model.name,
            "version": version,
            "artifact": path.name,
            "sha256": sha256(path),
            "size_bytes": path.stat().st_size,
            "feature_names": list(model.feature_names),
            "libraries": library_versions(),
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        (directory / "meta.json").write_text(json.dumps(full, indent=2, sort_keys=True))
        return ref

    def meta(self, ref: ModelRef) -> dict[str, Any]:
        path = self._dir(ref) / "meta.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise ModelRejected(f"{ref}: unreadable metadata {path}: {exc}") from exc

    def versions(self, task: str, model: str) -> list[ModelRef]:
        base = self.root / task / model
        names = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []
        return [ModelRef(task, model, v) for v in names]

    def latest(self, task: str) -> dict[str, ModelRef]:
        return {m: vs[-1] for m in ADAPTERS if (vs := self.versions(task, m))}

    def load(self, ref: ModelRef) -> Pretrained:
        """Load and verify one version; raises :class:`ModelRejected` with the reason."""
        meta = self.meta(ref)
        if tuple(meta.get("feature_names", ())) != FEATURE_NAMES:
            raise ModelRejected(
                f"{ref}: trained on other features than this churnstream computes "
                f"({len(meta.get('feature_names', ()))} vs {len(FEATURE_NAMES)} names, or another order)"
            )
        path = self._dir(ref) / meta["artifact"]
        if not path.exists():
            raise ModelRejected(f"{ref}: artifact {path} is missing")
        digest = sha256(path)
        if digest != meta["sha256"]:
            raise ModelRejected(
                f"{ref}: checksum mismatch for {path.name} (sha256 {digest[:12]}..., "
                f"expected {meta['sha256'][:12]}...): refusing a modified artifact"
            )
        try:
            return ADAPTERS[ref.model].load(path, FEATURE_NAMES)
        except Exception as exc:
            raise ModelRejected(f"{ref}: artifact {path.name} cannot be loaded: {exc}") from exc

    def promote(self, ref: ModelRef) -> None:
        """Make ``ref`` the task's champion, after checking that it loads."""
        self.load(ref)
        target = self.root / ref.task / "champion.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"model": ref.model, "version": ref.version}))
        os.replace(tmp, target)  # atomic: a running worker sees the old or the new champion, never half

    def champion(self, task: str) -> ModelRef | None:
        try:
            data = json.loads((self.root / task / "champion.json").read_text())
        except (OSError, ValueError):
            return None
        return ModelRef(task, data["model"], data["version"])
