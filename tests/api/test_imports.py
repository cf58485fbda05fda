"""The modules of paxosd.api import each other without a cycle (type-only imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import paxosd.api

PACKAGE = "paxosd.api"
ROOT = Path(paxosd.api.__file__).parent


def imports_of(path: Path) -> set[str]:
    """The paxosd.api modules one file imports, anywhere in it (under TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from . import x / from .x import y
                base = node.module
                names = [base] if base else [alias.name for alias in node.names]
                found.update(names)
            elif node.module and node.module.startswith(PACKAGE + "."):
                found.add(node.module.removeprefix(PACKAGE + ".").split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name.removeprefix(PACKAGE + ".").split(".")[0])
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_the_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"calls": {"failures"}, "failures": {"schema"}, "schema": {"calls"}}) == [
        "calls",
        "failures",
        "schema",
        "calls",
    ]
    assert find_cycle({"http": {"calls", "schema"}, "calls": {"schema"}, "schema": set()}) is None


def test_no_import_cycle_in_the_api_package() -> None:
    modules = {path.stem for path in ROOT.glob("*.py")} - {"__init__"}
    graph = {name: imports_of(ROOT / f"{name}.py") & modules for name in modules}
    assert graph["http"], "the scan found no imports at all"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_schema_imports_nothing_of_the_package() -> None:
    assert imports_of(ROOT / "schema.py") == set()
