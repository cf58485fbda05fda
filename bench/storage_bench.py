"""Benchmark of the durable log stores (FileLog, SqliteLog) on this machine's disk.

Not a test. Run: python bench/storage_bench.py [--rounds 5] [--seconds 2] [--dir DIR]

For each backend, in a fresh temporary directory on the same filesystem as the repository
(unless --dir says otherwise), with real fsyncs:

  (a) syncs/s with one small record (one ~100-byte command) per sync: the latency-bound case,
      a lone client;
  (b) records/s with 100 records (each a ~100-byte batch) per sync: group commit under load;
  (c) microseconds of CPU per record (time.process_time) in (b), write() and sync() together,
      and write() alone;
  (d) seconds to open and load() a store holding 100,000 accepted slots (and, for SQLite, the
      same with PRAGMA integrity_check).

Plus the raw cost of write(2) + fdatasync(2) of 100 bytes on the same filesystem, as the floor
both backends sit on. Disk flush latency on virtual machines drifts by 10x or more over
minutes, so rounds alternate the backends and every figure is the median over rounds, with
the range beside it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from paxosd.core.multi.records import Accepted, Promised
from paxosd.core.types import Ballot
from paxosd.storage import FileLog, SqliteLog

REPO = Path(__file__).resolve().parent.parent
IDENTITY = b"bench-cluster/node-1"
BALLOT = Ballot(3, 1)
COMMAND = b"x" * 100
LOAD_SLOTS = 100_000
GROUP = 100

Store = FileLog | SqliteLog
Opener = Callable[..., Store]  # (path, fsync=True) -> store

BACKENDS: dict[str, Opener] = {
    "file": lambda path, fsync=True: FileLog(path, IDENTITY, fsync=fsync),
    "sqlite": lambda path, fsync=True: SqliteLog(path, IDENTITY, fsync=fsync),
}


def fdatasync_us(root: Path, seconds: float) -> float:
    path = root / "fdatasync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.write(fd, COMMAND)
            os.fdatasync(fd)
            count += 1
        return (time.perf_counter() - start) / count * 1e6
    finally:
        os.close(fd)
        path.unlink()


def single_syncs_per_s(open_store: Opener, root: Path, seconds: float, fsync: bool = True) -> float:
    store = open_store(root, fsync=fsync)
    store.write([Promised(BALLOT)])
    store.sync()
    slot = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        slot += 1
        store.write([Accepted(slot, BALLOT, (COMMAND,))])
        store.sync()
    rate = slot / (time.perf_counter() - start)
    store.close()
    return rate


def group_commit(open_store: Opener, root: Path, seconds: float) -> tuple[float, float, float]:
    """(records/s, CPU us per record for write+sync, CPU us per record for write alone)."""
    store = open_store(root)
    slot = 0
    write_cpu = 0.0
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    while time.perf_counter() - wall_start < seconds:
        records = [Accepted(slot + i, BALLOT, (COMMAND,)) for i in range(1, GROUP + 1)]
        slot += GROUP
        before = time.process_time()
        store.write(records)
        write_cpu += time.process_time() - before
        store.sync()
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - wall_start
    store.close()
    return slot / wall, cpu / slot * 1e6, write_cpu / slot * 1e6


def load_seconds(name: str, root: Path) -> tuple[float, float | None, int]:
    """(open + load seconds, the same with integrity_check for SQLite, disk bytes)."""
    store = BACKENDS[name](root)
    for base in range(0, LOAD_SLOTS, 1000):
        store.write([Accepted(base + i, BALLOT, (COMMAND,)) for i in range(1, 1001)])
        store.sync()
    size = store.disk_bytes()
    store.close()
    start = time.perf_counter()
    reopened = BACKENDS[name](root)
    recovered = reopened.load()
    plain = time.perf_counter() - start
    assert len(recovered.accepted) == LOAD_SLOTS
    reopened.close()
    checked = None
    if name == "sqlite":
        start = time.perf_counter()
        with SqliteLog(root, IDENTITY, integrity_check=True) as again:
            again.load()
        checked = time.perf_counter() - start
    return plain, checked, size


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per timed phase")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dirs")
    args = parser.parse_args()
    parent = args.dir or Path(tempfile.gettempdir())
    if os.stat(parent).st_dev != os.stat(REPO).st_dev:
        parent = REPO.parent  # the same disk as the repository, as promised
    console = Console(width=110)
    command = " ".join(shlex.quote(arg) for arg in [Path(sys.executable).name, *sys.argv])
    console.print(f"$ {command}")
    console.print(f"temp dirs under {parent} (same device as {REPO})")

    figures: dict[str, dict[str, list[float]]] = {name: {} for name in BACKENDS}
    fsync_floor: list[float] = []
    for round_number in range(args.rounds):
        order = list(BACKENDS) if round_number % 2 == 0 else list(reversed(BACKENDS))
        for name in order:
            root = Path(tempfile.mkdtemp(prefix=f"storage-bench-{name}-", dir=parent))
            try:
                fsync_floor.append(fdatasync_us(root, args.seconds / 2))
                rows = figures[name]
                rate = single_syncs_per_s(BACKENDS[name], root / "a", args.seconds)
                rows.setdefault("syncs/s, 1 record per sync", []).append(rate)
                # The same without fsync: each backend's own cost per sync, i.e. the ceiling on
                # a disk whose flush is nearly free (NVMe with power-loss protection).
                rate = single_syncs_per_s(BACKENDS[name], root / "n", args.seconds / 2, False)
                rows.setdefault("  same, fsync off (software ceiling)", []).append(rate)
                records, cpu, write_cpu = group_commit(BACKENDS[name], root / "b", args.seconds)
                rows.setdefault(f"records/s, {GROUP} per sync", []).append(records)
                rows.setdefault("CPU us/record (write+sync)", []).append(cpu)
                rows.setdefault("CPU us/record (write only)", []).append(write_cpu)
                plain, checked, size = load_seconds(name, root / "c")
                rows.setdefault(f"open+load {LOAD_SLOTS // 1000}k slots, s", []).append(plain)
                checks = rows.setdefault("  with integrity_check, s", [])
                if checked is not None:
                    checks.append(checked)
                rows.setdefault(f"disk MB, {LOAD_SLOTS // 1000}k slots", []).append(size / 1e6)
            finally:
                shutil.rmtree(root)
        console.print(f"round {round_number + 1}/{args.rounds} done")

    table = Table(title=f"storage backends: median (min-max) of {args.rounds} rounds")
    table.add_column("measure")
    for name in BACKENDS:
        table.add_column(name, justify="right")
    measures = list(dict.fromkeys(key for rows in figures.values() for key in rows))
    for measure in measures:
        cells = []
        for name in BACKENDS:
            values = figures[name].get(measure)
            if not values:
                cells.append("-")
            else:
                median = statistics.median(values)
                cells.append(f"{number(median)} ({number(min(values))}-{number(max(values))})")
        table.add_row(measure, *cells)
    console.print(table)
    spread = ", ".join(f"{value:,.0f}" for value in fsync_floor)
    console.print(
        f"write+fdatasync of 100 B: median {statistics.median(fsync_floor):,.0f} us "
        f"(per sample: {spread})"
    )


if __name__ == "__main__":
    main()
