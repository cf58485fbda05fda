"""Snapshots of a large state on a running cluster: do they stall it?

Not a test. Run: python bench/snapshot_cluster.py [--keys 1000000] [--snapshots 10]
                 [--every 1000] [--base-port N] [--dir DIR]

The reproduction of a finding of the adversarial review (N4: with snapshots on the event loop,
700,000 keys made the cluster elect leaders in a loop and stalled reads for seconds), as a
benchmark: three `paxosd node` processes (fsync on, a snapshot every `--every` slots) on
127.0.0.1.

1. `--keys` distinct keys are loaded through the Redis protocol, pipelined 2,000 SETs at a
   time (key `mk:%09d`, a 10-byte value).
2. Then single SETs, one at a time, until every node has taken (or installed) a snapshot at
   the last of the next `--snapshots` snapshot points, while a probe GETs one key on a
   FOLLOWER every 20 ms (a linearizable read: the follower asks the leader to confirm it, so a
   stalled leader or a stalled follower both show).
3. Reported: leader changes (the elections counters of all nodes, before and after), the
   snapshots each node took and installed (from its log), the worst probe read and its p99,
   how many probe reads took over 100 ms, and the times.

The finding is fixed when, at 1,000,000 keys and ten snapshot points, no leader changes and no
follower read takes over 100 ms. Run it on a quiet machine (docs/storage.md); at small sizes it
only shows that it works:

    python bench/snapshot_cluster.py --keys 20000 --every 100 --snapshots 3
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from paxosd.benchmark.peers import Cluster, start_paxosd

pipeline_sets = 2000
probe_ms = 20.0


def status(cluster: Cluster, index: int) -> dict[str, Any]:
    port = cluster.nodes[index].http_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def elections(cluster: Cluster) -> int:
    return sum(int(status(cluster, i).get("elections", 0)) for i in range(len(cluster.nodes)))


def load(port: int, keys: int, prefix: str = "mk") -> float:
    """`keys` SETs of 10-byte values through RESP, pipelined; the seconds they took.
    (bench/backup_bench.py loads its cluster with it too.)"""
    client = redis.Redis(port=port, socket_timeout=60)
    started = time.perf_counter()
    for first in range(0, keys, pipeline_sets):
        pipe = client.pipeline(transaction=False)
        for n in range(first, min(keys, first + pipeline_sets)):
            pipe.set(f"{prefix}:{n:09d}", "0123456789")
        pipe.execute()
    return time.perf_counter() - started


class Probe(threading.Thread):
    """GETs one key on a follower every 20 ms, timing each read."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(port=port, socket_timeout=30)
        self.latencies_ms: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(probe_ms / 1000):
            started = time.perf_counter()
            try:
                self.client.get("mk:000000000")
            except redis.RedisError:
                self.errors += 1
                continue
            self.latencies_ms.append((time.perf_counter() - started) * 1000)


def snapshot_events(cluster: Cluster) -> dict[str, list[int]]:
    """Per node: [snapshots taken, snapshots installed], from its log."""
    counts = {}
    for node in cluster.nodes:
        text = Path(node.log_path).read_text(errors="replace")
        counts[f"n{node.index + 1}"] = [
            len(re.findall(r"event=snapshot_taken\b", text)),
            len(re.findall(r"event=snapshot_installed\b", text)),
        ]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--every", type=int, default=1000, help="slots between snapshots")
    parser.add_argument("--base-port", type=int, default=None)
    parser.add_argument("--dir", default=None, help="data directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        cluster = start_paxosd(root, args.base_port, snapshot_every_slots=args.every)
        try:
            report = run(cluster, args)
        finally:
            cluster.stop()
    print(json.dumps(report, indent=2))


def run(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    cluster.wait_leader()
    leader = cluster.leader_index()
    assert leader is not None
    follower = next(i for i in range(len(cluster.nodes)) if i != leader)
    load_s = load(cluster.nodes[leader].client_port, args.keys)
    elections_before = elections(cluster)
    start_commit = int(status(cluster, leader)["commit"])
    last_point = (start_commit // args.every + args.snapshots) * args.every
    probe = Probe(cluster.nodes[follower].client_port)
    probe.start()
    writer = redis.Redis(port=cluster.nodes[leader].client_port, socket_timeout=30)
    started = time.perf_counter()
    writes = 0
    while True:
        for _ in range(50):
            writer.set(f"w:{writes % 1000}", str(writes))
            writes += 1
        nodes = range(len(cluster.nodes))
        if min(int(status(cluster, i)["snapshot_slot"]) for i in nodes) >= last_point:
            break
    write_s = time.perf_counter() - started
    probe.stop.set()
    probe.join()
    latencies = sorted(probe.latencies_ms) or [0.0]
    return {
        "keys": args.keys,
        "snapshot_every_slots": args.every,
        "load_s": round(load_s, 1),
        "slots_written": int(status(cluster, leader)["commit"]) - start_commit,
        "writes": writes,
        "write_s": round(write_s, 1),
        "leader_changes": elections(cluster) - elections_before,
        "snapshots_taken_installed": snapshot_events(cluster),
        "follower_reads": len(probe.latencies_ms),
        "follower_read_errors": probe.errors,
        "follower_read_ms_max": round(latencies[-1], 1),
        "follower_read_ms_p99": round(latencies[int(0.99 * (len(latencies) - 1))], 1),
        "follower_read_ms_median": round(statistics.median(latencies), 1),
        "follower_reads_over_100ms": sum(1 for ms in latencies if ms > 100),
    }


if __name__ == "__main__":
    main()
