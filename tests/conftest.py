"""Test tiers: ``tests/unit`` (pure logic) and ``tests/integration`` (a real stack started once per session).

The session's stack gets its own free ports and a temporary home, so it runs beside a demo stack.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from churnstream.settings import Settings
from infra.processes import ManagedProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StackHandle:
    settings: Settings
    env: dict[str, str]

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``churnstream <args>`` against this stack in a child process."""
        proc = subprocess.run(
            [sys.executable, "-m", "churnstream.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"churnstream {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def spawn_worker(self, name: str = "worker") -> ManagedProcess:
        proc = ManagedProcess(name, self.settings.dir("run") / f"test-{name}.pid")
        proc.spawn(
            [sys.executable, "-m", "churnstream.cli", "worker"], self.settings.dir("logs") / f"{name}.log", env=self.env
        )
        return proc


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
        yield handle
    finally:
        handle.cli("stack", "down", check=False)
