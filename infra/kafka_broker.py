"""A real Apache Kafka 3.9 broker in KRaft mode, its jars resolved from Maven Central by Maven."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from churnstream.settings import Settings
from infra.processes import ManagedProcess

HERE = Path(__file__).parent / "kafka"
POM = HERE / "pom.xml"


class StackError(RuntimeError):
    """A stack component could not be set up or started."""


def libs_dir(settings: Settings) -> Path:
    """Jar directory for the pom's exact contents (a changed pom resolves into a new directory)."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return settings.cache_dir / "kafka" / f"libs-{digest}"


def resolve_jars(settings: Settings) -> Path:
    """Copy the broker's runtime classpath from Maven Central into the cache (once)."""
    libs = libs_dir(settings)
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is not installed: run `make setup` or `apt-get install -y maven`")
    tmp = libs.with_name(libs.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        "-DincludeScope=runtime",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(f"Maven could not resolve the Kafka broker:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    (tmp / ".complete").touch()
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


def process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("kafka", settings.dir("run") / "kafka.pid")


def log_path(settings: Settings) -> Path:
    return settings.dir("logs") / "kafka.log"


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("Java is not installed: run `make setup` or `apt-get install -y openjdk-17-jre-headless`")
    return java


def _config(settings: Settings) -> Path:
    data = settings.dir("kafka")
    conf = data / "server.properties"
    conf.write_text(
        (HERE / "server.properties")
        .read_text()
        .format(
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            log_dir=data / "log",
            partitions=settings.partitions,
        )
    )
    return conf


def _classpath(libs: Path) -> str:
    return str(libs / "*")


def _format_storage(settings: Settings, libs: Path, conf: Path) -> None:
    if (settings.home / "kafka" / "log" / "meta.properties").exists():
        return
    cluster_id = (
        subprocess.run(
            [_java(), "-cp", _classpath(libs), "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or uuid.uuid4().hex[:22]
    )
    proc = subprocess.run(
        [
            _java(),
            "-Xmx256m",
            f"-Dlog4j.configuration=file:{HERE / 'log4j.properties'}",
            "-cp",
            _classpath(libs),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(conf),
            "-g",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise StackError(f"Formatting Kafka storage failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def start(settings: Settings) -> int:
    """Start the broker (formatting storage on first start) unless it already runs; returns its pid."""
    proc = process(settings)
    pid = proc.pid()
    if pid is not None:
        return pid
    libs = resolve_jars(settings)
    conf = _config(settings)
    _format_storage(settings, libs, conf)
    log = log_path(settings)
    log.write_text("")  # the version is read from this run's log
    argv = [
        _java(),
        f"-Xmx{settings.kafka_heap}",
        f"-Xms{settings.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{HERE / 'log4j.properties'}",
        f"-Dkafka.logs.dir={settings.dir('logs')}",
        "-cp",
        _classpath(libs),
        "kafka.Kafka",
        str(conf),
    ]
    return proc.spawn(argv, log)


def admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "socket.timeout.ms": 5000, "log_level": 0})


def wait_ready(settings: Settings, timeout: float = 90.0) -> None:
    """Block until the broker answers a metadata request."""
    deadline = time.monotonic() + timeout
    client = admin(settings)
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not process(settings).running() and _is_local(settings):
            raise StackError(f"Kafka exited during start; see {log_path(settings)}:\n{_tail(log_path(settings))}")
        try:
            md = client.list_topics(timeout=2)
            if md.brokers:
                return
        except KafkaException as exc:
            last = exc
        time.sleep(0.3)
    raise StackError(f"Kafka did not answer metadata within {timeout:.0f}s ({last}); see {log_path(settings)}")


def _is_local(settings: Settings) -> bool:
    return settings.kafka_bootstrap == f"127.0.0.1:{settings.kafka_port}"


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def ensure_topics(settings: Settings, partitions: int | None = None) -> list[str]:
    """Create the input and dead-letter topics if missing (idempotent); returns the ones created."""
    partitions = partitions or settings.partitions
    client = admin(settings)
    existing = client.list_topics(timeout=10).topics
    missing = [t for t in settings.all_topics if t not in existing]
    for topic, partition_count in ((t, len(existing[t].partitions)) for t in settings.input_topics if t in existing):
        if partition_count != partitions:
            raise StackError(
                f"topic {topic} has {partition_count} partitions, expected {partitions}: the input topics must be "
                "co-partitioned"
            )
    if missing:
        futures = client.create_topics([NewTopic(t, partitions, 1) for t in missing])
        for fut in futures.values():
            try:
                fut.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    return missing


_VERSION = re.compile(r"Kafka version: (\S+)")


def broker_version(settings: Settings) -> str | None:
    """The version the running broker logged about itself at start (AppInfoParser), if it is up."""
    if not process(settings).running():
        return None
    match = _VERSION.search(log_path(settings).read_text(errors="replace"))
    return match.group(1) if match else None


def describe(settings: Settings) -> dict[str, str]:
    """Live facts from the broker: id and cluster id from a metadata request, version from the broker itself."""
    md = admin(settings).list_topics(timeout=5)
    return {
        "cluster_id": md.cluster_id or "?",
        "brokers": str(len(md.brokers)),
        "topics": str(len([t for t in md.topics if not t.startswith("__")])),
        "version": broker_version(settings) or "unknown",
    }
