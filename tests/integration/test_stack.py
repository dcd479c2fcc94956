"""The local stack: real Kafka 3.9 (KRaft), Redis 7 and ClickHouse; pid-exact shutdown; two stacks at once."""

from __future__ import annotations

import re

from infra import kafka_broker, redis_server
from infra.processes import _start_time
from tests.conftest import StackHandle, make_stack


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.strip("│┃ ").startswith(name))


def test_status_reports_real_versions(stack: StackHandle) -> None:
    out = stack.cli("stack", "status").stdout
    assert re.search(r"kafka\s+│\s+up\s+│\s+3\.9\.\d+", _row(out, "kafka")), out
    assert re.search(r"redis\s+│\s+up\s+│\s+7\.\d+", _row(out, "redis")), out
    assert re.search(r"clickhouse\s+│\s+up\s+│\s+\d+\.\d+", _row(out, "clickhouse")), out
    assert f"127.0.0.1:{stack.settings.kafka_port}" in out
    # the version comes from the running broker itself, not from the jar we resolved
    assert kafka_broker.broker_version(stack.settings).startswith("3.9.")


def test_up_is_idempotent(stack: StackHandle) -> None:
    pid = kafka_broker.process(stack.settings).pid()
    out = stack.cli("stack", "up").stdout
    assert "already there" in out or "topics ready" in out
    assert kafka_broker.process(stack.settings).pid() == pid
    md = kafka_broker.admin(stack.settings).list_topics(timeout=10)
    for topic in stack.settings.all_topics:
        assert len(md.topics[topic].partitions) == stack.settings.partitions


def test_two_stacks_side_by_side_and_down_stops_exactly_its_own(stack: StackHandle, tmp_path) -> None:
    other = make_stack(tmp_path / "second")
    try:
        other.cli("stack", "up")
        out_other = other.cli("stack", "status").stdout
        out_main = stack.cli("stack", "status").stdout
        assert str(other.settings.kafka_port) in out_other and str(stack.settings.kafka_port) in out_main
        pids = {
            p.name: (p.pid(), _start_time(p.pid() or 0))
            for p in (kafka_broker.process(other.settings), redis_server.process(other.settings))
        }
        assert all(pid for pid, _ in pids.values())
    finally:
        other.cli("stack", "down")
    for pid, started in pids.values():
        assert _start_time(pid) != started, f"process {pid} still running after down"
    assert other.cli("stack", "status", check=False).returncode == 1
    # the session's stack was not touched
    assert kafka_broker.process(stack.settings).running() and redis_server.process(stack.settings).running()
    stack.cli("stack", "status")


def test_redis_aof_state_is_read_from_the_server(stack: StackHandle) -> None:
    assert redis_server.describe(stack.settings)["aof"] == "on"  # the stack's redis.conf says `appendonly yes`
    r = redis_server.client(stack.settings)
    r.config_set("appendonly", "no")
    try:
        assert redis_server.describe(stack.settings)["aof"] == "off"
    finally:
        r.config_set("appendonly", "yes")
    assert redis_server.describe(stack.settings)["aof"] == "on"
