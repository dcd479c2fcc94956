"""ClickHouse through clickhouse-connect: embedded chDB (``chdb:///path``) or a server (``http://host:8123``).

The schema lives in numbered SQL files next to this module (``clickhouse/NNN_name.sql``), applied once each and
recorded in ``schema_migrations``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

MIGRATIONS = Path(__file__).parent / "clickhouse"
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def connect(dsn: str) -> Client:
    """One client for either backend; an embedded path must exist before chDB opens it."""
    if dsn.startswith("chdb://") and dsn not in ("chdb://", "chdb://memory", "chdb://:memory:"):
        Path(dsn.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(dsn=dsn)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, in order.

    >>> [v for v, _, _ in migrations()] == sorted(v for v, _, _ in migrations())
    True
    """
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name must look like 001_name.sql: {path.name}")
        found.append((int(match.group(1)), path.stem, path.read_text()))
    return found


def split_statements(sql: str) -> list[str]:
    """Split a migration into statements on ``;`` at line ends, dropping comments.

    >>> split_statements("-- x\\nCREATE TABLE a (x UInt8) ENGINE=Log;\\nSELECT 1;\\n")
    ['CREATE TABLE a (x UInt8) ENGINE=Log', 'SELECT 1']
    """
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def apply_migrations(client: Client) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied. Idempotent."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now())"
        " ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        for statement in split_statements(sql):
            client.command(statement)
        client.insert("schema_migrations", [[version, name]], column_names=["version", "name"])
        applied.append(name)
    return applied


def describe(client: Client, dsn: str) -> dict[str, Any]:
    version = client.query("SELECT version()").result_rows[0][0]
    return {"version": version, "mode": "embedded chDB" if dsn.startswith("chdb:") else "server"}
