"""A node removed from the members ends the watches it serves, saying why and where to resume
(runtime/node.py: it will hear of no write again), and ends new ones at once; a joined node
removed while it could not hear it learns it from its peers' refusals."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from paxosd import Client
from tests.ports import free_block

from .cluster import Cluster, _launched
from .test_join import _join, _member, _wait_voter


def test_a_removed_node_ends_its_watches_with_the_reason_and_where_to_resume(
    tmp_path: Path,
) -> None:
    cluster = Cluster.start(tmp_path, nodes=3)
    try:
        client = Client(cluster.endpoints(), timeout_s=30)
        first = client.put("gone/a", 1)
        url = f"http://{cluster.http(3)}/v1/watch?prefix=gone/&start_revision={first}"
        with httpx.stream("GET", url, timeout=30) as response:
            text = ""
            chunks = response.iter_text()
            while "id: " not in text:
                text += next(chunks)
            _member(cluster.endpoints([1, 2]), "remove", "3")
            for chunk in chunks:
                text += chunk
        assert "event: cancelled" in text, text
        assert "no member of the cluster" in text and '"resume_revision"' in text, text
        # A watch asked of it afterwards ends at its next tick, with the same reason.
        again = httpx.get(url, timeout=10)
        assert "event: cancelled" in again.text and "no member" in again.text, again.text
        client.close()
    finally:
        cluster.stop()


def test_a_joined_node_removed_while_it_was_down_learns_it_from_the_refusals(
    tmp_path: Path,
) -> None:
    """Its peers no longer dial it nor take its connections (it is in no config file): the
    refusal of its next handshake carries the configuration that left it out, so it refuses
    its clients as a removed member does, rather than serve them stale."""
    cluster = Cluster.start(tmp_path, nodes=3)
    first = free_block(3, offset=2950)
    peer, http, resp = (f"127.0.0.1:{first + i}" for i in range(3))
    try:
        log = _join(cluster, cluster.http(1), 4, tmp_path / "node4",
                    "--peer", peer, "--http", http, "--resp", resp)  # fmt: skip
        _wait_voter(cluster.endpoints(), 4, log, cluster.processes[4])
        assert cluster.terminate(4) == 0
        _member(cluster.endpoints(), "remove", "4")
        # Started again from its own config file (in which it is a voter of the old epoch):
        # its peers neither dial it nor take its connections.
        restart = open(tmp_path / "node4.log", "ab")  # noqa: SIM115 - the child owns it
        cluster.processes[4] = subprocess.Popen(
            [sys.executable, "-m", "paxosd", "node", "--config", str(tmp_path / "node4/node.toml")],
            stdout=restart, stderr=restart,
        )  # fmt: skip
        _launched.append(cluster.processes[4])
        deadline = time.monotonic() + 30
        text = ""
        while "no member of the cluster" not in text and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                answer = httpx.get(f"http://{http}/v1/kv/x", timeout=10)
            except httpx.ConnectError:
                continue  # not listening yet
            text = answer.text
        assert answer.status_code == 503 and "no member of the cluster" in answer.text, (
            answer.text,
            log.read_text()[-2000:],
        )
    finally:
        cluster.stop()
