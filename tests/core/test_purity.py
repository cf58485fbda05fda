"""The protocol cores do no I/O, read no clock and use no global random generator.

That is what lets the simulator, the explorer and the real node drive the same code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "paxosd"
PURE_PACKAGES = ["core", "service", "watch"]
FORBIDDEN = {"asyncio", "socket", "time", "os", "threading", "selectors", "subprocess"}


def pure_modules() -> list[Path]:
    return sorted(p for pkg in PURE_PACKAGES for p in (SRC / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_module_imports_no_io_clock_or_global_random(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                assert root not in FORBIDDEN, f"{path.name} imports {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            assert root not in FORBIDDEN, f"{path.name} imports from {node.module}"
            assert root != "random", f"{path.name} imports names from random"
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
        ):
            # `random.Random` as a type is fine; `random.random()` would be the global one.
            assert node.attr == "Random", f"{path.name} uses the global random.{node.attr}"


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The purity check itself can fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nx = random.random()\n")
    with pytest.raises(AssertionError):
        test_core_module_imports_no_io_clock_or_global_random(bad)
