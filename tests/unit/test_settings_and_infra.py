from __future__ import annotations

import os
import sys
import time

import pytest
from pydantic import ValidationError

from churnstream.settings import Settings
from infra import clickhouse_db
from infra.processes import ManagedProcess


def test_env_prefix_and_derived_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CHURNSTREAM_HOME", str(tmp_path))
    monkeypatch.setenv("CHURNSTREAM_KAFKA_PORT", "39092")
    monkeypatch.setenv("CHURNSTREAM_PARTITIONS", "8")
    s = Settings()
    assert s.kafka_bootstrap == "127.0.0.1:39092"
    assert s.partitions == 8
    assert s.clickhouse_dsn == f"chdb://{tmp_path}/clickhouse"
    assert s.embedded_clickhouse


def test_server_dsn_is_kept(tmp_path) -> None:
    s = Settings(home=tmp_path, clickhouse_dsn="http://127.0.0.1:8123")
    assert not s.embedded_clickhouse


def test_settings_are_frozen(tmp_path) -> None:
    s = Settings(home=tmp_path)
    with pytest.raises(ValidationError):
        s.partitions = 3  # type: ignore[misc]


def test_migrations_are_numbered_and_parse() -> None:
    found = clickhouse_db.migrations()
    assert found and [v for v, _, _ in found] == list(range(1, len(found) + 1))
    for _, _, sql in found:
        assert clickhouse_db.split_statements(sql)


def test_managed_process_stops_only_its_own(tmp_path) -> None:
    proc = ManagedProcess("sleeper", tmp_path / "sleeper.pid")
    pid = proc.spawn([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "sleeper.log")
    assert proc.pid() == pid
    # a pid file naming a live process with another start time is not ours
    (tmp_path / "other.pid").write_text(f"{os.getpid()} 1")
    assert ManagedProcess("other", tmp_path / "other.pid").pid() is None
    assert proc.stop(timeout=5)
    time.sleep(0.1)
    assert proc.pid() is None
    assert not proc.stop()
