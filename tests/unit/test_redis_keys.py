"""One Redis key schema: no string literal starting with ``cs:`` outside :mod:`core.keys`, in any of our modules
(product, tests, benchmarks). A key written elsewhere would drift from the schema its readers use."""

from __future__ import annotations

import ast
from pathlib import Path

from core import keys

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "churnstream", "simulation", "streams", "features", "serving", "models", "infra", "bench", "tests")
SCHEMA = ROOT / "core" / "keys.py"


def key_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal, or f-string, that starts with the key prefix."""
    nodes = ast.walk(ast.parse(source))  # the parts of an f-string are Constant nodes too
    texts = [(n.lineno, n.value) for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return sorted((line, text) for line, text in texts if text.startswith(keys.PREFIX))


def test_the_scan_finds_keys_in_every_literal_form() -> None:
    source = 'a = "cs:u:{" + u + "}"\nb = f"cs:s:{{{u}}}"\nc = f"x{y}"\nd = "cs_token"\n"""Docs: cs:u:{u}."""'
    assert [line for line, _ in key_literals(source)] == [1, 2]


def test_every_redis_key_is_built_in_core_keys() -> None:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if p != SCHEMA]
    assert len(files) > 100
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}" for path in files for line, text in key_literals(path.read_text())
    ]
    assert not offenders, "build these keys with core.keys:\n" + "\n".join(offenders)
    assert key_literals(SCHEMA.read_text()), "the schema itself holds the literals"
