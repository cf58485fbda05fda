"""Snapshots of a large SQL database: time, memory, and the event loop's stalls.

Not a test. Run: python bench/sql_snapshot_bench.py [--mb 256,1024]

For each size, in a fresh process (so memory figures belong to that size alone), a state
machine is filled with a SQL table of that many megabytes (rows of 64 KiB of hex text, which
compresses about 2:1, applied directly as a node applies chosen writes), with the node's
options (its database in a directory when the node keeps it there), and then, as a node
does it:

  view     the on-loop part: `snapshot_view()`
  write    the view written to a snapshot file by a worker thread (fsynced and renamed,
           storage/snapshots.py) while an asyncio loop runs a 10 ms timer (`stall`: its worst
           lateness, what the node's heartbeats would see)
  restore  the file read back into a new machine and checked, in a worker thread (a peer
           installing the snapshot), with the same timer
  memory   resident memory of the filled machine (`RSS`), and the peak above it during the
           write and during the restore (sampled every 5 ms)

Figures go to docs/sql.md ("Where the database lives").
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table
from snapshot_bench import PeakMemory, _with_timer, rss_bytes

from paxosd.cli.node import gc_thresholds
from paxosd.runtime.node import collector_paused
from paxosd.service import Request, StateMachine, encode
from paxosd.service.namespace import Options
from paxosd.service.sql import SqlExecute, Statement
from paxosd.storage.snapshots import DirSnapshots

row_bytes = 64 * 1024
rows_per_write = 16


def options_for(directory: Path) -> Options:
    """The node's options: its database in `directory` where this code keeps it in one."""
    if "sql_files" in {f.name for f in dataclasses.fields(Options)}:
        from paxosd.storage.sql_files import SqlFiles

        return Options(sql_files=SqlFiles(directory))  # type: ignore[call-arg]
    if "sql_directory" in {f.name for f in dataclasses.fields(Options)}:
        return Options(sql_directory=str(directory))  # type: ignore[call-arg]
    return Options()


def fill(machine: StateMachine, megabytes: int) -> None:
    def apply(seq: int, statements: tuple[Statement, ...]) -> None:
        request = Request(client_id="fill", seq=seq, op=SqlExecute(statements=statements))
        machine.apply(seq, encode(request))

    apply(1, (Statement("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"),))
    rows = megabytes * 1024 * 1024 // row_bytes
    seq = 1
    for start in range(0, rows, rows_per_write):
        seq += 1
        batch = tuple(
            Statement("INSERT INTO t (v) VALUES (?)", (os.urandom(row_bytes // 2).hex(),))
            for _ in range(min(rows_per_write, rows - start))
        )
        apply(seq, batch)


def measure(megabytes: int) -> dict[str, float]:
    gc.set_threshold(*gc_thresholds)  # as `paxosd node` runs
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        root = Path(tmp)
        (root / "sql").mkdir()
        options = options_for(root / "sql")
        machine = StateMachine(options=options)
        started = time.perf_counter()
        fill(machine, megabytes)
        fill_s = time.perf_counter() - started
        gc.freeze()
        base = rss_bytes()
        files = DirSnapshots(root / "snapshots")
        with PeakMemory() as write_memory:
            started = time.perf_counter()
            view = machine.snapshot_view()
            view_ms = (time.perf_counter() - started) * 1000
            work = partial(collector_paused, partial(files.save, 1, view.write))
            record, write_s, write_stall = asyncio.run(_with_timer(work))
            view.close()

        def restore() -> StateMachine:
            with files.open(record) as reader:
                restored = StateMachine.restore(reader, options=options)
                reader.verify()
            return restored

        before_restore = rss_bytes()
        with PeakMemory() as restore_memory:
            restored, restore_s, restore_stall = asyncio.run(
                _with_timer(partial(collector_paused, restore))
            )
        assert restored.sql.revision == machine.sql.revision
        assert restored.sql.content_digest() == machine.sql.content_digest()
        return {
            "mb": megabytes,
            "fill_s": fill_s,
            "rss_mb": base / 1e6,
            "file_mb": record.size_bytes / 1e6,
            "view_ms": view_ms,
            "write_s": write_s,
            "write_stall_ms": write_stall,
            "write_extra_mb": (write_memory.peak - base) / 1e6,
            "restore_s": restore_s,
            "restore_stall_ms": restore_stall,
            "restore_extra_mb": (restore_memory.peak - before_restore) / 1e6,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", default="256", help="comma-separated database sizes in MB")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child's single size
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return
    table = Table(title="Snapshots of a SQL database (64 KiB rows of hex text)")
    columns = [
        ("DB MB", "mb", "{:,.0f}"),
        ("RSS MB", "rss_mb", "{:,.0f}"),
        ("file MB", "file_mb", "{:,.1f}"),
        ("view ms", "view_ms", "{:,.0f}"),
        ("write s", "write_s", "{:.2f}"),
        ("stall ms", "write_stall_ms", "{:.0f}"),
        ("+MB", "write_extra_mb", "{:,.0f}"),
        ("restore s", "restore_s", "{:.2f}"),
        ("stall ms", "restore_stall_ms", "{:.0f}"),
        ("+MB", "restore_extra_mb", "{:,.0f}"),
    ]
    for title, _, _ in columns:
        table.add_column(title, justify="right")
    for megabytes in (int(size) for size in args.mb.split(",")):
        command = [sys.executable, __file__, "--one", str(megabytes)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout)
        table.add_row(*(fmt.format(row[key]) for _, key, fmt in columns))
        print(json.dumps(row))
    Console(width=140).print(table)
    print(
        "RSS: the filled machine; view: on the loop; stall: the 10 ms timer's worst lateness\n"
        "during the write (restore) in a worker thread; +MB: peak memory above the filled\n"
        "machine during the write (restore)."
    )


if __name__ == "__main__":
    main()
