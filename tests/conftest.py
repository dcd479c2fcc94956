"""Test tiers: ``tests/unit`` (pure logic) and ``tests/integration`` (a real stack started once per session).

The session's stack gets its own free ports and a temporary home, so it runs beside a demo stack.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from churnstream.settings import Settings
from infra.processes import ManagedProcess, free_port

REDIS_DATABASES = 64  # infra/redis/redis.conf: `databases 64`; database 0 is the session stack's own
_redis_databases = itertools.count(1)


@dataclass
class StackHandle:
    settings: Settings
    env: dict[str, str]
    metrics_port: int = field(default_factory=free_port)

    def cli(self, *args: str, check: bool = True, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``churnstream <args>`` against this stack in a child process (``env``: more variables)."""
        proc = subprocess.run(
            [sys.executable, "-m", "churnstream.cli", *args],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"churnstream {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def spawn_worker(self, name: str = "worker", command: str = "worker", **env: str) -> ManagedProcess:
        """``churnstream worker`` (or ``run``: worker and API in one process) with this stack's settings."""
        proc = ManagedProcess(name, self.settings.dir("run") / f"test-{name}.pid")
        proc.spawn(
            [sys.executable, "-m", "churnstream.cli", command],
            self.settings.dir("logs") / f"{name}.log",
            env=self.env | {"CHURNSTREAM_METRICS_PORT": str(self.metrics_port)} | env,
        )
        return proc

    @contextlib.contextmanager
    def worker(self, name: str = "worker", command: str = "worker", **env: str) -> Iterator[ManagedProcess]:
        """A worker process for the duration of the block; stopped (by pid) on exit."""
        proc = self.spawn_worker(name, command, **env)
        try:
            yield proc
        finally:
            proc.stop()

    def wait_consumed(self, timeout: float = 300, worker: ManagedProcess | None = None) -> None:
        """Block until the worker's consumer group has committed everything in the input topics, and has rescored
        every user whose day end its partition's watermark has passed."""
        from streams.lag import group_lag

        deadline = time.monotonic() + timeout
        while (lag := group_lag(self.settings)) > 0 or (due := self.due_behind()) > 0:
            if time.monotonic() > deadline:
                what = f"consumer lag still {lag}" if lag else f"{due} users still due"
                raise AssertionError(f"{what} after {timeout}s\n{self.worker_log()}")
            if worker is not None and not worker.running():
                raise AssertionError(f"worker died\n{self.worker_log()}")
            time.sleep(0.5)

    def due_behind(self) -> int:
        """Users whose next day end to be rescored at their partition's watermark has passed (read from Redis)."""
        import redis

        from core.keys import WATERMARKS, due_key

        r = redis.Redis.from_url(self.settings.redis_url)
        try:
            lateness = int(self.settings.label_lateness_s * 1000)
            clocks = {int(m): int(c) for m, c in r.zrange(WATERMARKS, 0, -1, withscores=True)}
            return sum(int(r.zcount(due_key(p), "-inf", c - lateness)) for p, c in clocks.items())
        finally:
            r.close()

    def isolated(self, name: str) -> StackHandle:
        """The same services with everything else of its own, names unique to this call: topics, consumer group,
        model registry (empty) and Redis database. What runs on it neither sees nor leaves anything for the other
        tests. ClickHouse is shared: tests read it by their own user-id prefix."""
        from infra import kafka_broker

        name = f"{name}{time.time_ns() % 10**7}"
        db = next(_redis_databases)
        assert db < REDIS_DATABASES, f"more than {REDIS_DATABASES - 1} isolated handles in one session"
        overrides = {
            "app_id": f"{name}-group",
            "topic_page_views": f"{name}.page_views",
            "topic_cart": f"{name}.cart_events",
            "topic_purchases": f"{name}.purchases",
            "topic_dlq": f"{name}.dlq",
            "topic_alerts": f"{name}.alerts",
            "models_dir": str(self.settings.home / "registries" / name),
            "redis_url": f"redis://127.0.0.1:{self.settings.redis_port}/{db}",
        }
        settings = self.settings.model_copy(update=overrides | {"models_dir": Path(overrides["models_dir"])})
        kafka_broker.ensure_topics(settings)
        return StackHandle(settings, self.env | {f"CHURNSTREAM_{k.upper()}": v for k, v in overrides.items()})

    def worker_log(self, name: str = "worker") -> str:
        path = self.settings.home / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def make_stack(home: Path) -> StackHandle:
    overrides = {
        "CHURNSTREAM_HOME": str(home),
        "CHURNSTREAM_KAFKA_PORT": str(free_port()),
        "CHURNSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        "CHURNSTREAM_REDIS_PORT": str(free_port()),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_")} | overrides
    settings = Settings(**{k.removeprefix("CHURNSTREAM_").lower(): v for k, v in overrides.items()})  # type: ignore[arg-type]
    return StackHandle(settings, env)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    handle = make_stack(tmp_path_factory.mktemp("stack"))
    try:
        handle.cli("stack", "up")
        from tests.integration.endstate import stop_merges

        stop_merges(handle.settings.clickhouse_dsn)  # raw rows stay as written: checks count duplicates
        yield handle
    finally:
        handle.cli("stack", "down", check=False)
