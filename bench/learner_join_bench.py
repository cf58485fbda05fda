"""A learner joining a large cluster: how long until it has the state, and until it votes?

Not a test. Run: python bench/learner_join_bench.py [--keys 1000000] [--join]
                 [--snapshot-every 1000] [--base-port N] [--dir DIR] [--keep-logs DIR]

1. Four `paxosd node` processes (fsync on) on 127.0.0.1, every node in every config file.
   Node 4 is removed (`paxosd member remove 4`, the real command) and stopped, so it joins
   later as a removed member comes back, with none of the state. With --join: three nodes,
   and node 4 is a new node in no config file.
2. `--keys` distinct keys are loaded into the three voters through the Redis protocol,
   pipelined (the loader of bench/snapshot_cluster.py; key `lj:%09d`, a 10-byte value);
   then the voters' snapshots of the load are awaited.
3. One writer puts one key at a time through the paxosd client (which follows the leader),
   timing each write, while node 4 is started and `paxosd member add 4` is run (with --join:
   `paxosd node --join` on an empty data directory, which asks to be added by itself).
4. Reported: the command's wall time; the time until node 4 has applied the leader's commit
   point as it was once node 4 was started and asked for (node 4's /v1/status `applied`);
   until the leader has promoted it (it is a voter); where that time went, from node 4's log
   (the snapshot's transfer, its check and restore, the tail of the log after it); and the
   writes made meanwhile, the worst of them and the writes that failed.

Figures go to docs/operations.md ("Members and upgrades") with the command that made them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from members_bench import Writer, member  # bench/, beside this script
from snapshot_cluster import load

from paxosd.benchmark.peers import Cluster, Node, start_paxosd
from paxosd.runtime.ports import free_layout

joiner = 4  # the node that joins: removed before the keys are loaded (--join: a new node)
wait_s = 120.0


def status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=2) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]
    except OSError:  # not up yet, or busy installing past the timeout
        return None


def bring_in(cluster: Cluster, voters: list[str], join: bool) -> float | None:
    """Start node 4 and have it taken in as a learner: the seconds of the operator's command
    (`paxosd member add 4`), or None with --join, where the new node asks by itself."""
    cluster.nodes[joiner - 1].start()
    if join:
        return None
    took, _ = member(voters, "add", str(joiner))
    return took


def fresh_node(root: Path, base: int, member_http: str) -> Node:
    """Node 4 as `paxosd node --join` starts it: in no config file, an empty data directory,
    its addresses at the local layout's next place."""
    data_dir = root / f"joined{joiner}"
    data_dir.mkdir()
    argv = [sys.executable, "-m", "paxosd", "node", "--join", member_http,
            "--id", str(joiner), "--data-dir", str(data_dir),
            "--peer", f"127.0.0.1:{base + 100 + joiner}",
            "--http", f"127.0.0.1:{base + joiner}",
            "--resp", f"127.0.0.1:{base - 600 + joiner}"]  # fmt: skip
    node = Node(joiner - 1, argv, base - 600 + joiner, root / f"joined{joiner}.log")
    node.http_port = base + joiner
    return node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument(
        "--snapshot-every", type=int, default=1000, help="the nodes' snapshot_every_slots"
    )
    parser.add_argument("--base-port", type=int, default=None)
    parser.add_argument("--dir", default=None, help="data directory (default: a temporary one)")
    parser.add_argument("--keep-logs", default=None, help="copy the nodes' logs to this folder")
    parser.add_argument(
        "--join",
        action="store_true",
        help="three nodes, and node 4 a new one started with `paxosd node --join`",
    )
    args = parser.parse_args()
    base = args.base_port or free_layout(joiner)
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        founders = joiner - 1 if args.join else joiner
        cluster = start_paxosd(root, base, nodes=founders, snapshot_every_slots=args.snapshot_every)
        if args.join:
            cluster.nodes.append(fresh_node(Path(root), base, f"127.0.0.1:{base + 1}"))
        try:
            report = run(cluster, args.keys, args.snapshot_every, args.join)
        finally:
            cluster.stop()
            if args.keep_logs:
                Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
                for node in cluster.nodes:
                    shutil.copy(node.log_path, Path(args.keep_logs) / f"node{node.index + 1}.log")
    print(json.dumps(report, indent=2))


def run(cluster: Cluster, keys: int, every: int, join: bool) -> dict[str, Any]:
    cluster.wait_leader()
    endpoints = [f"127.0.0.1:{node.http_port}" for node in cluster.nodes]
    voters = endpoints[: joiner - 1]
    if not join:
        member(endpoints, "remove", str(joiner))  # a removed leader hands over first
        cluster.nodes[joiner - 1].stop()
        cluster.wait_leader()
    leader = cluster.leader_index()
    assert leader is not None
    load_s = load(cluster.nodes[leader].client_port, keys, prefix="lj")
    settled(cluster, every)
    writer = Writer(voters)
    writer.start()
    time.sleep(1.0)
    started, started_at = time.perf_counter(), time.time()
    command_s = bring_in(cluster, voters, join)
    target = commit_point(cluster, leader)
    applied_s = promoted_s = None
    learner = cluster.nodes[joiner - 1].http_port
    while time.perf_counter() - started < wait_s and promoted_s is None:
        answer = status(learner)
        now = time.perf_counter() - started
        if answer is not None and applied_s is None and answer.get("applied", -1) >= target:
            applied_s = now
        if answer is not None and joiner in answer.get("configuration", {}).get("voters", []):
            promoted_s = now
            applied_s = applied_s or now
        time.sleep(0.02)
    ended = time.perf_counter()
    time.sleep(0.5)
    writer.stop.set()
    writer.join(timeout=30)
    if promoted_s is None:
        raise SystemExit(f"node {joiner} was not promoted within {wait_s:.0f} s")
    during = [w for w in writer.writes if started <= w[0] <= ended + 0.5]
    return {
        "keys": keys,
        "load s": round(load_s, 2),
        "how": "paxosd node --join" if join else "paxosd member add (in every config file)",
        "command s (paxosd member add)": None if command_s is None else round(command_s, 2),
        "until applied s (the leader's commit when started and asked)": round(applied_s, 2),
        "until promoted s (a voter)": round(promoted_s, 2),
        "of which (from the learner's log)": phases(
            cluster.nodes[joiner - 1].log_path, started_at, applied_s
        ),
        "writes meanwhile": len(during),
        "worst write ms": round(max((w[1] for w in during), default=0) * 1000, 1),
        "failed writes": sum(1 for w in during if w[2]),
    }


def commit_point(cluster: Cluster, leader: int) -> int:
    answer = status(cluster.nodes[leader].http_port)
    if answer is None:
        raise SystemExit("the leader did not answer /v1/status")
    return int(answer["commit"])


def settled(cluster: Cluster, every: int) -> None:
    """Wait until every voter has written the snapshot the load made due (applied less than a
    snapshot's worth of slots past its last one). The writer's own slots may still reach the
    next snapshot point while node 4 joins, as in any cluster taking writes: a snapshot of
    the load then runs on every voter at once (the slowest runs in docs/operations.md)."""
    deadline = time.perf_counter() + wait_s
    while time.perf_counter() < deadline:
        answers = [status(node.http_port) for node in cluster.nodes[: joiner - 1]]
        if all(a is not None and a["applied"] - a["snapshot_slot"] < every for a in answers):
            return
        time.sleep(0.1)
    raise SystemExit(f"the voters were still writing snapshots after {wait_s:.0f} s")


_LINE = re.compile(r"^(\S+) \S+ .*event=(\w+)(.*)$")


def phases(log_path: Path, started_at: float, applied_s: float) -> dict[str, float]:
    """Where the learner's time went, from its log (the node logs each event's time, and
    the snapshot thread's time for the install as work_ms): from the command's start to its
    first catch-up request (the node's start, the change chosen), the snapshot's transfer,
    its check and restore, and the log's tail after it, until applied."""
    events: list[tuple[float, str, str]] = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if match is not None:
            at = datetime.fromisoformat(match.group(1)).timestamp() - started_at
            events.append((at, match.group(2), match.group(3)))
    asked = next((at for at, name, _ in events if at >= 0 and name in _ASKING), None)
    installed = next(
        ((at, rest) for at, name, rest in events if at >= 0 and name == "snapshot_installed"),
        None,
    )
    if asked is None or installed is None:
        return {}  # caught up from the log alone: no snapshot was needed
    at, rest = installed
    work = re.search(r"work_ms=(\d+)", rest)
    install_s = int(work.group(1)) / 1000 if work else 0.0
    return {
        "until its first catch-up request s": round(asked, 2),
        "snapshot transfer s": round(at - install_s - asked, 2),
        "snapshot check and restore s": round(install_s, 2),
        "log tail, until applied s": round(applied_s - at, 2),
    }


# The events with which a node starting behind begins to catch up.
_ASKING = frozenset({"catchup_started", "epoch_behind"})


if __name__ == "__main__":
    main()
