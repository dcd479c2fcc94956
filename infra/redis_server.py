"""Debian's redis-server on its own port and data dir, with AOF on."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis

from churnstream.settings import Settings
from infra.kafka_broker import StackError
from infra.processes import ManagedProcess

TEMPLATE = Path(__file__).parent / "redis" / "redis.conf"


def process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("redis", settings.dir("run") / "redis.pid")


def start(settings: Settings) -> int:
    proc = process(settings)
    pid = proc.pid()
    if pid is not None:
        return pid
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server is not installed: run `make setup` or `apt-get install -y redis-server`")
    data = settings.dir("redis")
    conf = data / "redis.conf"
    conf.write_text(TEMPLATE.read_text().format(port=settings.redis_port, dir=data))
    return proc.spawn([binary, str(conf)], settings.dir("logs") / "redis.log")


def client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=5)


def wait_ready(settings: Settings, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    r = client(settings)
    while time.monotonic() < deadline:
        try:
            if r.ping():
                return
        except redis.RedisError:
            time.sleep(0.1)
    raise StackError(f"Redis at {settings.redis_url} did not answer within {timeout:.0f}s")


def describe(settings: Settings) -> dict[str, str]:
    """Version and append-only-file state as the server reports them (``INFO server`` and ``INFO persistence``)."""
    r = client(settings)
    version = r.info("server")["redis_version"]
    aof = r.info("persistence")["aof_enabled"]
    return {"version": str(version), "aof": "on" if int(aof) else "off"}
