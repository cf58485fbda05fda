"""The SQL database survives what a node survives: a node killed and restarted catches up
(from a peer's snapshot of the database when the log before it is gone), and a whole cluster
killed at once comes back with every acknowledged write, rebuilt from snapshots and logs."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from .cluster import Cluster


def _post(cluster: Cluster, node: int, path: str, body: Any) -> dict[str, Any]:
    response = httpx.post(f"http://{cluster.http(node)}{path}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


_seq = iter(range(1, 10**6))


def _write(cluster: Cluster, node: int, sql: str, params: list[Any]) -> None:
    """An insert, resent (with the same exactly-once identity) to the next node until one
    answers: a leader killed meanwhile leaves its outcome unknown, never applied twice."""
    headers = {"Paxosd-Client-Id": "durability", "Paxosd-Seq": str(next(_seq))}
    body = {"statements": [[sql, params]]}
    deadline = time.monotonic() + 60
    nodes = [n for n in (1, 2, 3) if n in cluster.processes]
    attempt = nodes.index(node) if node in nodes else 0
    while True:
        target = nodes[attempt % len(nodes)]
        attempt += 1
        try:
            response = httpx.post(f"http://{cluster.http(target)}/v1/sql/execute", json=body,
                                  headers=headers, timeout=10)  # fmt: skip
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            return
        assert response is None or response.status_code == 503, response.text
        assert time.monotonic() < deadline, "no node took the write within 60 s"
        time.sleep(0.1)


def _rows(cluster: Cluster, node: int, sql: str) -> list[list[Any]]:
    answer = _post(cluster, node, "/v1/sql/query", {"statements": [sql]})
    rows: list[list[Any]] = answer["results"][0]["rows"]
    return rows


def test_kills_and_restarts_lose_no_acknowledged_row(tmp_path: Path) -> None:
    # Snapshots every 20 slots, so that restarts load the database from a snapshot.
    cluster = Cluster.start(tmp_path, configure=lambda c: replace(c, snapshot_every_slots=20))
    try:
        _post(cluster, 1, "/v1/sql/execute", {"statements": [
            "CREATE TABLE acked (n INTEGER PRIMARY KEY, who TEXT)",
            "CREATE TEMP VIEW acked_count AS SELECT count(*) FROM acked"]})  # fmt: skip
        for n in range(60):
            _write(cluster, 1 + n % 3, "INSERT INTO acked VALUES (?, ?)", [n, f"w{n}"])
        victim = cluster.wait_for_leader()  # the leader: its successor takes the writes
        cluster.kill9(victim)
        for n in range(60, 120):
            _write(cluster, 1 + n % 3, "INSERT INTO acked VALUES (?, ?)", [n, f"w{n}"])
        cluster.launch(victim)
        cluster.wait_until_all_answer()
        assert _rows(cluster, victim, "SELECT * FROM acked_count") == [[120]]
        for node in (1, 2, 3):
            cluster.kill9(node)
        for node in (1, 2, 3):
            cluster.launch(node)
        cluster.wait_for_leader()
        cluster.wait_until_all_answer()
        expected = [[n, f"w{n}"] for n in range(120)]
        for node in (1, 2, 3):
            assert _rows(cluster, node, "SELECT n, who FROM acked ORDER BY n") == expected
        assert _rows(cluster, 3, "SELECT * FROM acked_count") == [[120]]
        # Each node started from a snapshot of its own (the database's image in it).
        for node in (1, 2, 3):
            status = httpx.get(f"http://{cluster.http(node)}/v1/status", timeout=10).json()
            assert status["snapshot_slot"] > 0, status["snapshot_slot"]
            # Its database lives in a file of the running process alone: what the killed
            # process left was removed at the start (it is rebuilt, never read).
            files = {p.name for p in (cluster.configs[node - 1].data_dir / "sql").iterdir()}
            databases = {name for name in files if name.endswith(".sqlite")}
            assert len(databases) == 1, files
            assert databases.pop().startswith(f"db-{status['pid']}-"), files
    finally:
        cluster.stop()
