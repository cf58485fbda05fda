"""Backup and restore of a large state: how long do `paxosd snapshot save` and `restore` take,
and do writes stall meanwhile?

Not a test. Run: python bench/backup_bench.py [--keys 100000] [--base-port N]
                                  [--restore-base-port N]
                                  [--dir DIR]

1. Three `paxosd node` processes (fsync on) on 127.0.0.1; `--keys` distinct keys loaded
   through the Redis protocol, pipelined (key `bk:%09d`, a 10-byte value).
2. `paxosd snapshot save` (the real command, as an operator runs it) while a writer SETs one
   key at a time on the leader: the save's wall time, the file's size, and the writer's
   writes and worst latency during the save.
3. `paxosd snapshot status` (reads and checks the file whole: checksum, state restored).
4. `paxosd snapshot restore --data-dir` into a new 3-node cluster's layout, then its nodes
   started: the restore's time, and the time until the new cluster answers a linearizable
   count of every key with the backup's count.

Figures go to docs/operations.md with the command that made them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
from snapshot_cluster import load  # bench/, beside this script

from paxosd import Client
from paxosd.benchmark.peers import start_paxosd
from paxosd.runtime.config import load as load_config
from paxosd.runtime.ports import free_layout


class Writer(threading.Thread):
    """SETs one key at a time until stopped, timing each write."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(port=port, socket_timeout=30)
        self.stop = threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set() and n < 1_000_000:
            started = time.perf_counter()
            self.client.set(f"w:{n}", n)
            self.latencies.append(time.perf_counter() - started)
            n += 1


def paxosd(*args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", *args, "--json"], capture_output=True, text=True
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"paxosd {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return took, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--base-port", type=int, default=None)
    parser.add_argument("--restore-base-port", type=int, default=None)
    parser.add_argument("--dir", default=None, help="data directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        cluster = start_paxosd(root, args.base_port)
        try:
            report = run(cluster, Path(root), args)
        finally:
            cluster.stop()
    print(json.dumps(report, indent=2))


def run(cluster: Any, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    cluster.wait_leader()
    leader = cluster.leader_index()
    assert leader is not None
    http = [f"127.0.0.1:{node.http_port}" for node in cluster.nodes]
    load_s = load(cluster.nodes[leader].client_port, args.keys, prefix="bk")
    writer = Writer(cluster.nodes[leader].client_port)
    writer.start()
    time.sleep(0.5)
    before = len(writer.latencies)
    backup = root / "backup.pxbk"
    save_s, saved = paxosd("snapshot", "save", str(backup), "--endpoints", ",".join(http))
    during = writer.latencies[before:]
    writer.stop.set()
    writer.join(timeout=30)
    status_s, _ = paxosd("snapshot", "status", str(backup))
    target = root / "restored"
    base = args.restore_base_port or free_layout(3)
    restore_s, _ = paxosd(
        "snapshot", "restore", str(backup), "--data-dir", str(target), "--base-port", str(base)
    )
    serving_s = start_restored(target, args.keys)
    return {
        "keys": args.keys,
        "load s": round(load_s, 2),
        "save s (wall, the command)": round(save_s, 2),
        "backup bytes": saved["file_bytes"],
        "revision": saved["revision"],
        "writes during the save": len(during),
        "worst write during the save ms": round(max(during, default=0) * 1000, 1),
        "status s (checks the file whole)": round(status_s, 2),
        "restore s (the command)": round(restore_s, 2),
        "restored cluster serving s (start to a linearizable count of every key)": round(
            serving_s, 2
        ),
    }


def start_restored(target: Path, keys: int) -> float:
    """Start the restored nodes; seconds until a linearizable count sees every key."""
    started = time.perf_counter()
    processes = []
    try:
        configs = [load_config(toml) for toml in sorted(target.glob("node*.toml"))]
        for config in configs:
            argv = [sys.executable, "-m", "paxosd", "node", "--config",
                    str(target / f"node{config.node_id}.toml")]  # fmt: skip
            log = open(target / f"node{config.node_id}.log", "wb")  # noqa: SIM115 - the child's
            processes.append(subprocess.Popen(argv, stdout=log, stderr=log))
        client = Client([f"127.0.0.1:{c.me.http[1]}" for c in configs], timeout_s=5)
        while time.perf_counter() - started < 120:
            try:
                if client.range(prefix="bk:", count_only=True).count == keys:
                    return time.perf_counter() - started
            except Exception:  # not up yet: the nodes are still starting
                time.sleep(0.1)
        raise SystemExit("the restored cluster did not serve the backup's keys within 120 s")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
