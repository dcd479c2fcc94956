"""Retraining on a schedule or after a drift alert, in a separate process, so scoring never pauses.

The worker holding the drift lease (:mod:`streams.drift_watch`) checks at each tick whether a retraining is due:
``CHURNSTREAM_RETRAIN_EVERY_S`` after the last one it started (``cs:retrain:last``), or, with
``CHURNSTREAM_RETRAIN_ON_ALERT``, after a drift alert asked for one (``cs:retrain:asked``) and at least
``CHURNSTREAM_RETRAIN_ALERT_GAP_S`` after the last one started (a drift that persists raises alerts every day until a
model trained on the new behaviour serves). It then starts
``churnstream retrain`` as a child process (one at a time) and goes on scoring; the child registers the new models
and decides (:mod:`models.retrain`), and the workers pick up a promotion or an experiment within seconds.

With embedded ClickHouse the child cannot open the data path the worker holds, so the worker first exports the
``events`` history (after FINAL) to a Native file beside it, and the child reads that (``--events-file``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from churnstream.settings import Settings
from core.keys import RETRAIN_ASKED, RETRAIN_LAST
from features.offline import EXPORT_COLUMNS
from streams.sinks import ClickHouseSink

log = logging.getLogger(__name__)


def export_events(client: Any, path: Path) -> int:
    """Write the ``events`` history (one row per event) to ``path`` in ClickHouse's Native format; returns bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, size = path.with_suffix(".tmp"), 0
    with open(tmp, "wb") as f:
        for chunk in client.raw_stream(f"SELECT {EXPORT_COLUMNS} FROM events FINAL", fmt="Native"):
            f.write(chunk)
            size += len(chunk)
    tmp.replace(path)
    return size


class RetrainSchedule:
    def __init__(self, settings: Settings, redis: aioredis.Redis, reader: ClickHouseSink, env: Mapping[str, str]):
        self.settings, self.redis, self.reader, self.env = settings, redis, reader, dict(env)
        self.proc: asyncio.subprocess.Process | None = None
        self.waiter: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.retrain_every_s or self.settings.retrain_on_alert)

    async def ask(self, why: str) -> None:
        """A drift alert asks for a retraining (kept until one starts; ignored unless CHURNSTREAM_RETRAIN_ON_ALERT)."""
        if self.settings.retrain_on_alert:
            await self.redis.set(RETRAIN_ASKED, why)

    async def due(self) -> str | None:
        """Why a retraining should start now (None: not due)."""
        if not self.enabled or (self.proc is not None and self.proc.returncode is None):
            return None
        last = int(await self.redis.get(RETRAIN_LAST) or 0)
        since_ms = time.time() * 1000 - last
        gap_passed = since_ms >= self.settings.retrain_alert_gap_s * 1000  # a drift that persists asks every day
        if self.settings.retrain_on_alert and gap_passed and (asked := await self.redis.get(RETRAIN_ASKED)):
            return f"asked by {asked.decode() if isinstance(asked, bytes) else asked}"
        every_ms = self.settings.retrain_every_s * 1000
        if every_ms and since_ms >= every_ms:
            return f"scheduled every {self.settings.retrain_every_s} s"
        return None

    async def tick(self) -> bool:
        """Start a retraining if one is due; True if started."""
        why = await self.due()
        if why is None:
            return False
        args = [sys.executable, "-m", "churnstream.cli", "retrain"]
        if self.settings.embedded_clickhouse:
            path = self.settings.dir("run") / "retrain-events.native"
            size = await self.reader.call(export_events, path)
            args += ["--events-file", str(path)]
            log.warning("exported the events history for retraining (%d bytes)", size)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(RETRAIN_LAST, int(time.time() * 1000))
            pipe.delete(RETRAIN_ASKED)
            await pipe.execute()
        logfile = open(self.settings.dir("logs") / "retrain.log", "ab")  # noqa: SIM115  # closed when it exits
        self.proc = await asyncio.create_subprocess_exec(*args, env=self.env, stdout=logfile, stderr=logfile)
        self.waiter = asyncio.create_task(self._reap(logfile))
        log.warning("retraining started (%s), pid %d", why, self.proc.pid)
        return True

    async def _reap(self, logfile: Any) -> None:
        assert self.proc is not None
        code = await self.proc.wait()
        logfile.close()
        (log.warning if code == 0 else log.error)("retraining finished with exit code %d (see logs/retrain.log)", code)
