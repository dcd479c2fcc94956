"""The local stack: ``up``, ``down`` and ``status`` for Kafka, Redis and ClickHouse.

Every path and port comes from :class:`~churnstream.settings.Settings`, so a test session can run its own stack
beside a demo stack. ``down`` stops only the processes recorded in this stack's pid files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from churnstream.settings import Settings
from infra import clickhouse_db, kafka_broker, redis_server


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    up: bool
    version: str
    address: str
    detail: str = ""


Step = Callable[[str], None]


def up(settings: Settings, on_step: Step = lambda _msg: None) -> None:
    """Start Redis and Kafka (if not running), wait for both, create topics and apply the ClickHouse schema."""
    on_step("Redis: starting")
    redis_server.start(settings)
    on_step("Kafka: resolving jars from Maven Central")
    kafka_broker.resolve_jars(settings)
    on_step("Kafka: starting broker")
    kafka_broker.start(settings)
    redis_server.wait_ready(settings)
    on_step("Kafka: waiting for metadata")
    kafka_broker.wait_ready(settings)
    init(settings, on_step)


def init(settings: Settings, on_step: Step = lambda _msg: None) -> None:
    """Create the topics and apply the ClickHouse schema on already running services (local or not)."""
    created = kafka_broker.ensure_topics(settings)
    on_step(f"Kafka: topics ready ({', '.join(created) or 'already there'})")
    client = clickhouse_db.connect(settings.clickhouse_dsn)
    try:
        applied = clickhouse_db.apply_migrations(client)
    finally:
        client.close()
    on_step(f"ClickHouse: schema ready ({', '.join(applied) or 'up to date'})")


def clickhouse_beside(settings: Settings, name: str) -> str:
    """A ClickHouse DSN another worker process can use beside the first: the same server, or its own chDB path.

    chDB allows one process per data path, so with embedded ClickHouse each further worker gets a path of its
    own, with the schema applied here (then closed again); with a ClickHouse server they share it.
    """
    if not settings.embedded_clickhouse:
        return settings.clickhouse_dsn
    dsn = f"chdb://{settings.dir('clickhouse-more') / name}"
    init(settings.model_copy(update={"clickhouse_dsn": dsn}))
    return dsn


def down(settings: Settings) -> list[str]:
    """Stop the processes this stack started; returns the names of those stopped."""
    stopped = []
    for proc in (kafka_broker.process(settings), redis_server.process(settings)):
        if proc.stop():
            stopped.append(proc.name)
    return stopped


def status(settings: Settings) -> list[ComponentStatus]:
    return [_kafka_status(settings), _redis_status(settings), _clickhouse_status(settings)]


def _kafka_status(settings: Settings) -> ComponentStatus:
    address = settings.kafka_bootstrap
    pid = kafka_broker.process(settings).pid()
    try:
        facts = kafka_broker.describe(settings)
    except Exception as exc:
        return ComponentStatus("kafka", False, "-", address, f"not answering ({type(exc).__name__})")
    return ComponentStatus(
        "kafka",
        True,
        facts["version"],
        address,
        f"KRaft, cluster {facts['cluster_id']}, {facts['topics']} topics" + (f", pid {pid}" if pid else ""),
    )


def _redis_status(settings: Settings) -> ComponentStatus:
    pid = redis_server.process(settings).pid()
    try:
        facts = redis_server.describe(settings)
    except Exception as exc:
        return ComponentStatus("redis", False, "-", settings.redis_url, f"not answering ({type(exc).__name__})")
    return ComponentStatus("redis", True, facts["version"], settings.redis_url, f"AOF on, pid {pid}" if pid else "")


def _clickhouse_status(settings: Settings) -> ComponentStatus:
    dsn = settings.clickhouse_dsn
    try:
        client = clickhouse_db.connect(dsn)
    except Exception as exc:
        if settings.embedded_clickhouse and "already initialized" in str(exc):
            import chdb

            return ComponentStatus(
                "clickhouse", True, chdb.engine_version, dsn, "embedded chDB, data path held by a running worker"
            )
        return ComponentStatus("clickhouse", False, "-", dsn, f"not reachable ({type(exc).__name__})")
    try:
        facts = clickhouse_db.describe(client, dsn)
    finally:
        client.close()
    return ComponentStatus("clickhouse", True, str(facts["version"]), dsn, str(facts["mode"]))
