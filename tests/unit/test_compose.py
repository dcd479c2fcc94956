"""docker-compose.yml stays consistent with the local stack: same settings, same commands."""

import re
from pathlib import Path

from churnstream.cli import app
from churnstream.settings import Settings

COMPOSE = (Path(__file__).parents[2] / "docker-compose.yml").read_text()


def test_compose_uses_only_real_settings() -> None:
    names = set(re.findall(r"CHURNSTREAM_([A-Z_]+):", COMPOSE))
    assert names, "compose passes no CHURNSTREAM_ settings"
    assert {n.lower() for n in names} <= set(Settings.model_fields)


def test_compose_commands_exist_in_the_cli() -> None:
    commands = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    for command in re.findall(r'command: \["([a-z-]+)"', COMPOSE):
        if command not in ("redis-server",):
            assert command in commands, command
