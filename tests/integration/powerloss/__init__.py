"""Power loss for real node processes: what survives is what was synced, nothing more.

Killing a process (kill -9) loses nothing it wrote: the kernel's page cache keeps it and
writes it out later. A power cut loses everything not yet synced. `faultfs.c`, an LD_PRELOAD
shim built here with the system's C compiler, records in a shadow directory what a process
made durable (a file's data at fsync/fdatasync, a directory's entries at fsync of the
directory); `cut_power` then replaces the tree with that record alone. Together they turn a
kill -9 into a power cut, for any store format (the shim sees only system calls).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).with_name("faultfs.c")
DIR_VARIABLE = "PAXOSD_POWERLOSS_DIR"
SHADOW_VARIABLE = "PAXOSD_POWERLOSS_SHADOW"


def build_shim(folder: Path) -> Path:
    """Compile the shim into `folder`; a test that needs it fails (never skips) without a
    compiler, saying so."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("the power-loss tests need a C compiler (cc or gcc) to build faultfs.c")
    library = folder / "faultfs.so"
    command = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror"]
    built = subprocess.run(
        [*command, "-o", str(library), str(SOURCE), "-ldl"], capture_output=True, text=True
    )
    if built.returncode != 0:
        pytest.fail(f"faultfs.c does not build:\n{built.stderr}")
    return library


def environment(shim: Path, tree: Path, shadow: Path) -> dict[str, str]:
    """The variables that make a process record what it syncs under `tree`."""
    shadow.mkdir(parents=True, exist_ok=True)
    return {"LD_PRELOAD": str(shim), DIR_VARIABLE: str(tree), SHADOW_VARIABLE: str(shadow)}


@dataclass(frozen=True)
class PowerCut:
    files: int  # files that came back
    bytes_lost: int  # bytes that were written but had not been synced


def cut_power(tree: Path, shadow: Path, keep: tuple[str, ...] = ("node.log",)) -> PowerCut:
    """Replace `tree` by what its shadow says a power cut would have left. Every process that
    wrote under it must be dead. Files named in `keep` (the test's own logs) stay as they are.
    The shadow is emptied, so the next process under the shim takes the new tree as its
    baseline."""
    if not (shadow / "BASELINE").exists():
        raise AssertionError(f"{shadow}: no record: was the process started under the shim?")
    after = tree.with_name(tree.name + ".after-power-cut")
    shutil.rmtree(after, ignore_errors=True)
    files = _rebuild(shadow, ".", after)
    before = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and p.name not in keep)
    now = sum(p.stat().st_size for p in after.rglob("*") if p.is_file())
    for name in keep:
        if (tree / name).exists():
            shutil.copy2(tree / name, after / name)
    shutil.rmtree(tree)
    after.rename(tree)
    shutil.rmtree(shadow)
    shadow.mkdir()
    return PowerCut(files, max(0, before - now))


def _rebuild(shadow: Path, relative: str, target: Path) -> int:
    target.mkdir(parents=True)
    listing = shadow / ("dir-" + relative.replace("/", "|"))
    if not listing.exists():
        return 0  # a directory whose entries were never synced comes back empty
    files = 0
    for line in listing.read_text().splitlines():
        kind, rest = line.split(" ", 1)
        if kind == "d":
            child = rest if relative == "." else f"{relative}/{rest}"
            files += _rebuild(shadow, child, target / rest)
            continue
        identity, name = rest.split(" ", 1)
        data = shadow / f"file-{identity}"
        if data.exists():
            shutil.copyfile(data, target / name)
        else:
            (target / name).touch()  # its name was durable, its data never was
        files += 1
    return files


__all__ = ["PowerCut", "build_shim", "cut_power", "environment"]
