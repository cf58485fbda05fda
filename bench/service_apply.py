"""Micro-benchmark: microseconds per StateMachine.apply for the common commands.

Not a test. Run: python bench/service_apply.py [--n 200000] [--only put]

`--only put` runs the single-key write alone: the figure to compare, old against new, in
instructions (docs/benchmarks.md: valgrind --tool=callgrind at two sizes, differenced).

Each figure is the best of several rounds of `n` applies of pre-encoded payloads (so it
measures what a replica pays per chosen slot: decode + dedup check + the operation + the
result), wrapped in a Request as clients send them. Encoding is measured separately, since the
leader pays it once per proposal rather than every replica per slot.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from paxosd.service import (
    AdvanceTime,
    LockAcquire,
    Request,
    StateMachine,
    decode,
    encode,
)
from paxosd.service.kv import Compare, CompareTarget, Put, Range, Txn
from paxosd.service.values import json_text

ROUNDS = 5


def per_call_us(run: Callable[[], None], n: int) -> float:
    """Best-of-ROUNDS microseconds per call of a loop that performs `n` calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def bench_apply(name: str, make_op: Callable[[int], object], n: int, setup: list[object]) -> None:
    # Fresh machine per round so every round does the same work (new seqs, same table sizes).
    payloads = [
        encode(Request(client_id=f"client-{i % 64}", seq=i, op=make_op(i))) for i in range(n)
    ]

    def run() -> None:
        machine = StateMachine()
        for slot, command in enumerate(setup):
            machine.apply(slot, encode(command))
        base = len(setup)
        apply = machine.apply
        for i, payload in enumerate(payloads):
            apply(base + i, payload)

    print(f"apply {name:<28} {per_call_us(run, n):6.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="applies per round")
    parser.add_argument("--only", choices=("put",), help="run one benchmark alone")
    args = parser.parse_args()
    n = args.n
    # The small JSON document /v1 stores as its JSON text.
    value = json_text({"host": "10.0.0.7", "port": 8080, "tags": ["a", "b"]})
    keys = [b"user/%d" % i for i in range(1000)]
    seeded = [Put(key=key, value=value) for key in keys]

    bench_apply("put (1k keys, small doc)", lambda i: Put(key=keys[i % 1000], value=value), n, [])
    if args.only == "put":
        return
    bench_apply("range of one key via log (hit)", lambda i: Range(key=keys[i % 1000]), n, seeded)
    bench_apply(
        "txn compare-and-put (match)",
        lambda i: Txn(
            compare=(Compare(key=keys[i % 1000], target=CompareTarget.VALUE, value=value),),
            success=(Put(key=keys[i % 1000], value=value),),
        ),
        n,
        seeded,
    )
    bench_apply(
        "lock acquire (re-entrant)",
        lambda i: LockAcquire(name=f"lock/{i % 100}", owner="worker-1", ttl_ms=10_000),
        n,
        [AdvanceTime(now_ms=1)],
    )
    bench_apply(
        "lock acquire (contended)",
        lambda i: LockAcquire(name="lock/hot", owner=f"worker-{i % 8}", ttl_ms=10_000),
        n,
        [],
    )

    # Retry of the last seq: the exactly-once fast path.
    retry = encode(Request(client_id="client-0", seq=1, op=Put(key=b"k", value=value)))

    def run_retries() -> None:
        machine = StateMachine()
        for slot in range(n):
            machine.apply(slot, retry)

    print(f"apply {'put retry (cached answer)':<28} {per_call_us(run_retries, n):6.2f} us")

    machine = StateMachine()
    for slot, command in enumerate(seeded):
        machine.apply(slot, encode(command))
    query = Range(key=b"user/1")

    def run_reads() -> None:
        for _ in range(n):
            machine.read(query)

    print(f"read {'range of one key (no log)':<29} {per_call_us(run_reads, n):6.2f} us")

    put = Request(client_id="client-1", seq=1, op=Put(key=b"user/1", value=value))
    payload = encode(put)

    def run_encode() -> None:
        for _ in range(n):
            encode(put)

    def run_decode() -> None:
        for _ in range(n):
            decode(payload)

    print(f"encode {'put request':<27} {per_call_us(run_encode, n):6.2f} us")
    print(f"decode {'put request':<27} {per_call_us(run_decode, n):6.2f} us")


if __name__ == "__main__":
    main()
