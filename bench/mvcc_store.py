"""The key-value store's costs by size: memory per key and per historic version, and what a
snapshot costs at 10^5 and 10^6 keys (the view on the event loop, the write, the restore).

Not a test. Run: python bench/mvcc_store.py [--keys 100000 1000000] [--value-bytes 100]

Keys are `key/<n>` (10-16 bytes) with values of `--value-bytes` bytes, written through the
state machine's own apply (encoded requests, one per slot, as the engine applies them).
Memory is what the interpreter allocated (tracemalloc) for the store, divided by the keys
(after the first writes) or by the historic versions (after every key is written a second
time, which supersedes every first version). Times are wall clock on this machine, the best
of `--rounds`: `snapshot_view()` is what the event loop pays, `write` streams the captured
state to a sink that only counts bytes (in the node it runs in a worker thread), `restore`
reads it back.
"""

from __future__ import annotations

import argparse
import gc
import io
import time
import tracemalloc
from typing import Any

from paxosd.service import Request, Router, encode


class CountingSink(io.RawIOBase):
    """A binary file that keeps nothing but its length."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.size += len(data)
        return len(data)


def fill(router: Router, keys: int, value: bytes, start_slot: int) -> int:
    from paxosd.service.kv import Put

    slot = start_slot
    for i in range(keys):
        slot += 1
        op = Put(key=b"key/%d" % i, value=value)
        router.apply(slot, encode(Request(client_id="bench", seq=slot, op=op)))
    return slot


def measure(keys: int, value_bytes: int, rounds: int) -> None:
    value = b"v" * value_bytes
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    router = Router()
    slot = fill(router, keys, value, 0)
    gc.collect()
    after_keys = tracemalloc.get_traced_memory()[0]
    slot = fill(router, keys, value, slot)  # every key again: every first version is history
    gc.collect()
    after_history = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_key = (after_keys - before) / keys
    per_version = (after_history - after_keys) / keys
    store = router.kv.store
    print(
        f"{keys:>9,} keys, {value_bytes} B values: {per_key:6.0f} B per key, "
        f"{per_version:6.0f} B per historic version "
        f"(history_bytes estimates {store.history_bytes / keys:.0f} B)"
    )
    view_s = write_s = restore_s = float("inf")
    size = 0
    for _ in range(rounds):
        started = time.perf_counter()
        view = router.snapshot_view()
        view_s = min(view_s, time.perf_counter() - started)
        sink = CountingSink()
        started = time.perf_counter()
        view.write(sink)  # type: ignore[arg-type]
        write_s = min(write_s, time.perf_counter() - started)
        view.close()
        size = sink.size
    data = router.snapshot()
    for _ in range(rounds):
        started = time.perf_counter()
        Router.restore(io.BytesIO(data))
        restore_s = min(restore_s, time.perf_counter() - started)
    print(
        f"{'':>9}  snapshot of {size / 2**20:.1f} MiB: view {view_s * 1000:.2f} ms on the loop, "
        f"write {write_s:.2f} s, restore {restore_s:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for keys in args.keys:
        measure(keys, args.value_bytes, args.rounds)


if __name__ == "__main__":
    main()
