"""Snapshots of a large state: what they cost, and whether they stall the event loop.

Not a test. Run: python bench/snapshot_bench.py [--keys 100000,1000000] [--value-bytes 10]

For each size, in a fresh process (so memory figures belong to that size alone), a state
machine is filled with that many keys (puts applied directly, values of `--value-bytes`
bytes, as `paxosd up` would hold them after a RESP load), and then, as a node does it:

  view     the on-loop part: `snapshot_view()` (copies the tables' dicts)
  write    the view written to a snapshot file by a worker thread (with the collector
           settings and pauses of `paxosd node`: runtime/node.py), fsynced and renamed
           (storage/snapshots.py), while an asyncio loop runs a 10 ms timer: the timer's
           worst lateness is what the node's heartbeats would see (`loop stall`)
  restore  the file read back into a new machine and checked, in a worker thread, with the
           same timer running (a peer installing the snapshot)
  memory   peak resident memory above the filled machine's, during write and restore
           (sampled every 5 ms from /proc/self/statm)
  baseline the timer's worst lateness while a worker thread only spins in Python for as long:
           what any Python work beside the loop costs on this machine (the operating
           system's scheduling on a busy machine, the interpreter's hand-over between
           threads); a stall near it is not the snapshot's own

Figures go to docs/storage.md ("Snapshot files": how large a state is expected to work, how
snapshot time grows, and what a snapshot costs in memory). Sizes of 10^7 keys need about
10 GB of memory and minutes; run them on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from paxosd.cli.node import gc_thresholds
from paxosd.core.multi.records import Snapshot
from paxosd.runtime.node import collector_paused
from paxosd.service import Put, Request, StateMachine, encode
from paxosd.storage.snapshots import DirSnapshots

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
timer_ms = 10.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


class PeakMemory:
    """The highest resident memory seen by a sampling thread while it runs."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def fill(keys: int, value_bytes: int) -> StateMachine:
    machine = StateMachine()
    value = "v" * value_bytes
    for n in range(keys):
        request = Request(
            client_id=f"c{n % 64}", seq=n // 64 + 1, op=Put(key=f"k{n:09d}", value=value)
        )
        machine.apply((n + 1) << 16, encode(request))
    return machine


async def _with_timer(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run `work` in a worker thread while a 10 ms timer ticks on the loop: (its result, wall
    seconds, the timer's worst lateness in ms)."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            before = loop.time()
            await asyncio.sleep(timer_ms / 1000)
            worst = max(worst, (loop.time() - before) * 1000 - timer_ms)

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    result = await loop.run_in_executor(None, work)
    took = time.perf_counter() - started
    done = True
    await tick
    return result, took, worst


def measure(keys: int, value_bytes: int) -> dict[str, float]:
    gc.set_threshold(*gc_thresholds)  # as `paxosd node` runs
    started = time.perf_counter()
    machine = fill(keys, value_bytes)
    fill_s = time.perf_counter() - started
    gc.freeze()
    base = rss_bytes()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        files = DirSnapshots(tmp)
        with PeakMemory() as write_memory:
            record, view_ms, write_s, write_stall = _save(machine, files)

        def restore() -> StateMachine:
            with files.open(record) as reader:
                restored = StateMachine.restore(reader)
                reader.verify()
            return restored

        before_restore = rss_bytes()
        with PeakMemory() as restore_memory:
            restored, restore_s, restore_stall = asyncio.run(
                _with_timer(partial(collector_paused, restore))
            )
        assert restored.revision == machine.revision
    _, _, spin_stall = asyncio.run(_with_timer(lambda: _spin(min(write_s, 2.0))))
    return {
        "keys": keys,
        "fill_s": fill_s,
        "state_mb": base / 1e6,
        "file_mb": record.size_bytes / 1e6,
        "view_ms": view_ms,
        "write_s": write_s,
        "write_stall_ms": write_stall,
        "write_extra_mb": (write_memory.peak - base) / 1e6,
        "restore_s": restore_s,
        "restore_stall_ms": restore_stall,
        # A restore builds a second machine beside the running one: its size, plus what the
        # restore itself holds on top.
        "restore_extra_mb": (restore_memory.peak - before_restore) / 1e6,
        "baseline_stall_ms": spin_stall,
    }


def _save(machine: StateMachine, files: DirSnapshots) -> tuple[Snapshot, float, float, float]:
    """As a node takes a snapshot: (the record, view ms on the loop, write s, worst stall ms)."""
    started = time.perf_counter()
    view = machine.snapshot_view()
    view_ms = (time.perf_counter() - started) * 1000
    work = partial(collector_paused, partial(files.save, 1, view.write))
    record, write_s, stall = asyncio.run(_with_timer(work))
    return record, view_ms, write_s, stall


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", default="100000", help="comma-separated sizes")
    parser.add_argument("--value-bytes", type=int, default=10)
    parser.add_argument("--quiet-json", action="store_true", help="JSON rows to stderr")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child's single size
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.value_bytes)))
        return
    table = Table(title=f"Snapshots of a key-value state ({args.value_bytes}-byte values)")
    columns = [
        ("keys", "keys", "{:,.0f}"),
        ("RSS MB", "state_mb", "{:,.0f}"),
        ("file MB", "file_mb", "{:,.1f}"),
        ("view ms", "view_ms", "{:,.0f}"),
        ("write s", "write_s", "{:.2f}"),
        ("stall ms", "write_stall_ms", "{:.0f}"),
        ("+MB", "write_extra_mb", "{:,.0f}"),
        ("restore s", "restore_s", "{:.2f}"),
        ("stall ms", "restore_stall_ms", "{:.0f}"),
        ("+MB", "restore_extra_mb", "{:,.0f}"),
        ("baseline ms", "baseline_stall_ms", "{:.0f}"),
    ]
    for title, _, _ in columns:
        table.add_column(title, justify="right")
    for keys in (int(size) for size in args.keys.split(",")):
        command = [
            sys.executable,
            __file__,
            "--one",
            str(keys),
            "--value-bytes",
            str(args.value_bytes),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout)
        table.add_row(*(fmt.format(row[key]) for _, key, fmt in columns))
        print(json.dumps(row), file=sys.stderr if args.quiet_json else sys.stdout)
    Console(width=140).print(table)
    print(
        "RSS: the filled machine; view: on the loop; stall: the 10 ms timer's worst lateness\n"
        "during the write (restore) in a worker thread; +MB: peak memory above the filled\n"
        "machine; baseline: the timer's lateness beside a thread that only spins in Python."
    )


if __name__ == "__main__":
    main()
