"""Import jobs of the API (``POST /v1/imports``): the uploaded file is kept under ``<home>/imports/<job>/`` and
imported in a thread of the API process by :func:`churnstream.import_job.run_import`, the same code as
``churnstream import``; its progress is a JSON record in Redis (:func:`core.keys.import_job_key`, kept
``TTL_S``), so any API process of the deployment answers ``GET /v1/imports/{id}``.

A job that was running when its API process stopped stays in its last phase; importing the file again is safe
(the import ledger sends only what is new).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from churnstream.import_job import ImportProgress, run_import
from churnstream.settings import Settings
from core.keys import import_job_key

log = logging.getLogger(__name__)
TTL_S = 7 * 86_400


class ImportJobs:
    def __init__(self, settings: Settings, redis_async: aioredis.Redis) -> None:
        self.settings, self.redis = settings, redis_async

    def new_dir(self) -> tuple[str, Path]:
        job_id = secrets.token_hex(8)
        path = self.settings.dir("imports") / job_id
        path.mkdir(parents=True)
        return job_id, path

    def start(
        self, job_id: str, path: Path, kind: str | None, mapping: Mapping[str, str], ts_format: str | None, tz: str,
        dry_run: bool,
    ) -> None:  # fmt: skip
        """Run the import of ``path`` in a thread; progress goes to Redis from the first phase on."""
        client = redis.Redis.from_url(self.settings.redis_url)
        key = import_job_key(job_id)

        def save(p: ImportProgress) -> None:
            client.set(key, orjson.dumps(p.as_dict() | {"job_id": job_id, "file": path.name}), ex=TTL_S)

        def work() -> None:
            rejects = path.with_name(path.name + ".rejects.csv")
            try:
                run_import(self.settings, path, kind, mapping, ts_format, tz, rejects, dry_run, on_progress=save)
            except Exception as exc:
                log.exception("import job %s failed", job_id)
                save(ImportProgress(phase="failed", error=f"{type(exc).__name__}: {exc}"[:500]))
            finally:
                client.close()

        save(ImportProgress())
        threading.Thread(target=work, name=f"import-{job_id}", daemon=True).start()

    async def status(self, job_id: str) -> dict[str, Any] | None:
        blob = await self.redis.get(import_job_key(job_id))
        return orjson.loads(blob) if blob else None

    def rejects(self, job_id: str) -> Path | None:
        folder = self.settings.home / "imports" / job_id
        found = sorted(folder.glob("*.rejects.csv")) if folder.is_dir() else []
        return found[0] if found else None
