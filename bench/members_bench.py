"""Writes during membership changes: how long does each kind of change take, and what do the
writes that run meanwhile see?

Not a test. Run: python bench/members_bench.py [--base-port N] [--dir DIR]

Five `paxosd node` processes (fsync on) on 127.0.0.1, and one writer that puts one key at a
time through the paxosd client (which follows the leader), timing each write. Then, as an
operator would, with the real commands: remove a follower, remove the leader (it hands
leadership over first), add each back as a learner (the leader promotes it once it has
caught up: the step lasts until it votes). For each change: the command's wall time (and
until the promotion), the writes made meanwhile, the worst of them, and the writes that
failed.

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
from typing import Any

from paxosd import Client, PaxosdError
from paxosd.benchmark.peers import start_paxosd


class Writer(threading.Thread):
    """Puts one key at a time until stopped: (finished at, seconds, failed) per write."""

    def __init__(self, endpoints: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = Client(endpoints, timeout_s=10)
        self.stop = threading.Event()
        self.writes: list[tuple[float, float, bool]] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set() and n < 1_000_000:
            started = time.perf_counter()
            failed = False
            try:
                self.client.put(f"w/{n}", n)
            except PaxosdError:
                failed = True
            now = time.perf_counter()
            self.writes.append((now, now - started, failed))
            n += 1


def member(endpoints: list[str], *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "member", *args, "--endpoints", ",".join(endpoints),
         "--timeout", "30", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"paxosd member {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return took, json.loads(done.stdout)


def promoted(endpoints: list[str], node: int) -> dict[str, Any]:
    """Wait until `node` votes; the configuration then, as a member reports it."""
    client = Client(endpoints, timeout_s=5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for endpoint in endpoints:
            try:
                configuration = client.status(endpoint, timeout_s=1.0).get("configuration")
            except PaxosdError:
                continue
            if configuration and node in configuration.get("voters", []):
                return dict(configuration)
        time.sleep(0.02)
    raise SystemExit(f"node {node} was not promoted within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-port", type=int, default=None)
    parser.add_argument("--dir", default=None, help="data directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        cluster = start_paxosd(root, args.base_port, nodes=5)
        try:
            report = run(cluster)
        finally:
            cluster.stop()
    print(json.dumps(report, indent=2))


def run(cluster: Any) -> list[dict[str, Any]]:
    cluster.wait_leader()
    leader = cluster.leader_index()
    assert leader is not None
    endpoints = [f"127.0.0.1:{node.http_port}" for node in cluster.nodes]
    leader_id = leader + 1
    follower = next(n for n in range(1, 6) if n != leader_id)
    writer = Writer(endpoints)
    writer.start()
    time.sleep(1.0)
    steps = [
        ("remove a follower", ("remove", str(follower))),
        ("remove the leader (handover first)", ("remove", str(leader_id))),
        ("add a learner, promoted once caught up", ("add", str(follower))),
        ("add a learner, promoted once caught up", ("add", str(leader_id))),
    ]
    report = []
    for name, command in steps:
        time.sleep(0.5)
        started = time.perf_counter()
        took, answer = member(endpoints, *command)
        if command[0] == "add":
            answer = promoted(endpoints, int(command[1]))
        ended = time.perf_counter()
        during = [w for w in writer.writes if started <= w[0] <= ended + 0.5]
        report.append(
            {
                "change": name,
                "command s": round(took, 3),
                "until done s (an add: until it votes)": round(ended - started, 3),
                "epoch": answer["epoch"],
                "writes during (and 0.5 s after)": len(during),
                "worst write ms": round(max((w[1] for w in during), default=0) * 1000, 1),
                "failed writes": sum(1 for w in during if w[2]),
            }
        )
    writer.stop.set()
    writer.join(timeout=30)
    median = sorted(w[1] for w in writer.writes)[len(writer.writes) // 2] * 1000
    report.append({"writes": len(writer.writes), "median write ms": round(median, 1),
                   "failed writes": sum(1 for w in writer.writes if w[2])})  # fmt: skip
    return report


if __name__ == "__main__":
    main()
