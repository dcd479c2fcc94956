"""The suite's own rules: no test module imports another test module (shared helpers live in modules whose names
do not start with ``test_``), so each module can run alone and in any order."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_test_module_imports_another() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 20
    offenders = {
        str(path.relative_to(TESTS)): sorted(
            name
            for name in imported_modules(path)
            if name.startswith("tests.") and name.split(".")[-1].startswith("test_")
        )
        for path in modules
    }
    assert {k: v for k, v in offenders.items() if v} == {}
