"""The command line's surface stays put: every command and group of ``churnstream``, with its help and each
parameter's name, flags, default, required and help, equals the recorded ``cli_surface.json``.

Commands moved out of ``churnstream/cli.py`` into sub-apps next to what they drive (issue 13) with this check
passing against the surface recorded before the move. A deliberate change to the command line updates the record:
``.venv/bin/python -m tests.unit.test_cli_surface`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from churnstream.cli import app

RECORD = Path(__file__).with_name("cli_surface.json")


def surface(command: Any = None, path: tuple[str, ...] = ("churnstream",)) -> list[dict[str, Any]]:
    """Every command under ``command`` (default: the whole CLI), depth first, subcommands sorted by name."""
    command = command or typer.main.get_command(app)
    params = [
        {
            "name": p.name,
            "opts": p.opts,
            "secondary_opts": p.secondary_opts,
            "default": repr(p.default),
            "required": p.required,
            "multiple": p.multiple,
            "help": getattr(p, "help", None),
        }
        for p in command.params
    ]
    out = [{"path": list(path), "help": command.help, "params": params}]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        out += surface(sub, (*path, name))
    return out


def test_cli_surface_is_the_recorded_one() -> None:
    recorded = json.loads(RECORD.read_text())
    assert len(recorded) >= 27
    now = surface()
    assert [c["path"] for c in now] == [c["path"] for c in recorded], "commands added, removed or renamed"
    for current, before in zip(now, recorded, strict=True):
        assert current == before, " ".join(current["path"])


if __name__ == "__main__":
    RECORD.write_text(json.dumps(surface(), indent=1) + "\n")
    print(f"wrote {RECORD}")
