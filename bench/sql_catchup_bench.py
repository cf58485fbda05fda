"""A node catching up a large SQL database from a snapshot, on real processes.

Not a test (tests/integration/test_sql_catchup.py runs it small). Run:

    python bench/sql_catchup_bench.py [--mb 1024] [--every 20] [--base-port N] [--dir DIR]

1. Three `paxosd node` processes (fsync on, a snapshot every `--every` slots) on 127.0.0.1.
   One follower is killed (SIGKILL).
2. The two others take a table of about `--mb` MB: each write request is one INSERT ... SELECT
   whose rows (64 KiB of hex text each, from a linear congruential sequence: it compresses
   about as much as the text of an ordinary table) SQLite computes on every replica, so the
   log carries statements of a few hundred bytes, not the data. Then small writes until both
   have snapshotted past the load: the log before it is gone, so the killed node can only
   catch up from a snapshot.
3. The killed node starts again (with `--wipe`: as a new node, its store moved aside by
   `paxosd node --reinitialize`, rebuilding from its peers), and the time until it has
   applied everything the leader had committed is measured, while every node's resident
   memory is sampled every 100 ms: the peak of the node catching up (the receiver), and of
   the others while it does (the senders: a lagging node takes a snapshot's chunks from its
   peers, one per round trip).
4. The caught-up node's table is compared with the leader's (rows and total length).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from paxosd.benchmark.peers import Cluster, start_paxosd

row_chars = 64 * 1024
rows_per_request = 16  # 1 MiB: SQLite computes it in a fraction of a second on every replica
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

# Rows of `row_chars` hex digits, the digits of a linear congruential sequence started at
# :seed (the sequence is ours, fixed: every replica computes the same rows).
INSERT = f"""
WITH RECURSIVE r(i, x) AS (
  SELECT 0, :seed
  UNION ALL
  SELECT i + 1, (x * 1103515245 + 12345) % 2147483648 FROM r
  WHERE i < {rows_per_request * row_chars // 8} - 1
)
INSERT INTO big (v) SELECT group_concat(printf('%08x', x), '') FROM r GROUP BY i / {row_chars // 8}
"""


def http(cluster: Cluster, index: int, path: str, body: Any = None) -> Any:
    port = cluster.nodes[index].http_port
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def status(cluster: Cluster, index: int) -> dict[str, Any]:
    return http(cluster, index, "/v1/status")  # type: ignore[no-any-return]


def execute(cluster: Cluster, statements: list[Any], timeout_s: float = 120) -> None:
    """Through whichever node leads, tried again while none does (503): a write whose
    outcome a leader change left unknown may apply twice, which only adds a row here."""
    deadline = time.monotonic() + timeout_s
    while True:
        leader = cluster.leader_index()
        try:
            if leader is not None:
                answer = http(cluster, leader, "/v1/sql/execute", {"statements": statements})
                break
        except urllib.error.HTTPError as error:
            if error.code != 503:
                raise
            print(f"503 from node {leader + 1}: {error.read()[:300]!r}", file=sys.stderr)
        except OSError:
            pass
        assert time.monotonic() < deadline, "no node took the write"
        time.sleep(0.2)
    errors = [r.get("error") for r in answer.get("results", []) if r.get("error")]
    assert not errors, errors


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


class Peaks(threading.Thread):
    """Every node's peak resident memory, sampled every 100 ms while it runs (by node index:
    a node restarted meanwhile is sampled under its new PID)."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.peaks = [0] * len(cluster.nodes)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for node in self.cluster.nodes:
                if node.pid is not None and node.alive():
                    self.peaks[node.index] = max(self.peaks[node.index], rss_bytes(node.pid))


def run(
    cluster: Cluster, megabytes: int, wipe: bool = False, timeout_s: float = 1800
) -> dict[str, Any]:
    cluster.wait_ready()
    leader = cluster.leader_index()
    assert leader is not None
    catcher = next(i for i in range(len(cluster.nodes)) if i != leader)
    cluster.kill(catcher)
    started = time.perf_counter()
    execute(cluster, ["CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)"])
    requests = max(1, megabytes * 1024 * 1024 // (rows_per_request * row_chars))
    for n in range(requests):
        execute(cluster, [[INSERT, {"seed": n + 1}]])
    load_s = time.perf_counter() - started
    loaded = int(status(cluster, leader)["commit"])
    # Past the load, every live node snapshots and drops the log before it.
    live = [i for i in range(len(cluster.nodes)) if i != catcher]
    n = 0
    deadline = time.monotonic() + timeout_s
    while min(int(status(cluster, i)["snapshot_slot"]) for i in live) < loaded:
        assert time.monotonic() < deadline, "the live nodes did not snapshot past the load"
        execute(cluster, [["INSERT INTO big (v) VALUES (?)", [f"tick {n}"]]])
        n += 1
        time.sleep(0.05)
    snapshot_s = time.perf_counter() - started - load_s
    target = status(cluster, leader)
    database_bytes = int(target["sql"]["bytes"])
    peaks = Peaks(cluster)
    peaks.start()
    base = [rss_bytes(cluster.nodes[i].pid or 0) for i in live]
    started = time.perf_counter()
    node = cluster.nodes[catcher]
    argv = node.argv
    if wipe:
        node.argv = [*argv, "--reinitialize"]
    try:
        node.start()
    finally:
        node.argv = argv
    while True:
        assert time.monotonic() < deadline, "the restarted node did not catch up in time"
        try:
            mine = status(cluster, catcher)
        except OSError:
            mine = {}
        if mine.get("applied", -1) >= int(target["commit"]) and mine.get("sql", {}).get(
            "revision", -1
        ) >= int(target["sql"]["revision"]):
            break
        time.sleep(0.1)
    catchup_s = time.perf_counter() - started
    peaks.stop.set()
    peaks.join()
    # Each node's own table (level none: its state as it is, not the leader's).
    query = {"statements": ["SELECT count(*), sum(length(v)) FROM big"], "level": "none"}
    counted = [http(cluster, i, "/v1/sql/query", query) for i in (leader, catcher)]
    rows = [answer["results"][0]["rows"] for answer in counted]
    assert rows[0] == rows[1], rows
    log = Path(cluster.nodes[catcher].log_path).read_text(errors="replace")
    return {
        "mb_asked": megabytes,
        "database_mb": round(database_bytes / 1e6),
        "snapshot_file_mb": round(int(target["snapshot_bytes"]) / 1e6),
        "load_s": round(load_s, 1),
        "snapshots_past_load_s": round(snapshot_s, 1),
        "wiped": wipe,
        "catchup_s": round(catchup_s, 1),
        "installed_snapshots": len(re.findall(r"event=snapshot_installed\b", log)),
        "receiver_peak_rss_mb": round(peaks.peaks[catcher] / 1e6),
        "senders_rss_before_mb": [round(b / 1e6) for b in base],
        "senders_peak_rss_mb": [round(peaks.peaks[i] / 1e6) for i in live],
        "rows": rows[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=1024, help="the database's size, about")
    parser.add_argument("--every", type=int, default=20, help="slots between snapshots")
    parser.add_argument("--wipe", action="store_true", help="the node comes back as a new one")
    parser.add_argument("--base-port", type=int, default=None)
    parser.add_argument("--dir", default=None, help="data directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        cluster = start_paxosd(root, args.base_port, snapshot_every_slots=args.every)
        try:
            report = run(cluster, args.mb, args.wipe)
        finally:
            cluster.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
