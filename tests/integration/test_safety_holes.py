"""Safety holes found by attacking a real cluster, each closed, each shown on real processes:
a node that lost its log, a forged ballot at the top of the range, a damaged log, skewed wall
clocks, and memory spent on connections before they say who they are."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from paxosd import Client
from paxosd.core.multi.ballots import first_round
from paxosd.core.multi.messages import Prepare
from paxosd.core.types import Ballot, ballot_round_max
from paxosd.runtime import codec
from paxosd.runtime.config import NodeConfig
from paxosd.runtime.transport import unnamed_connections_max

from .cluster import Cluster


def _status(cluster: Cluster, node: int, patience_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + patience_s  # a loaded machine answers slowly
    while (status := cluster.status(node)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status is not None, f"node {node} does not answer"
    return status


def _wait(predicate: Any, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout_s} s")


def test_a_node_that_lost_its_log_is_refused_then_rebuilds_and_no_acked_write_is_lost(
    tmp_path: Path,
) -> None:
    """The amnesia attack: with one node behind (down) and another losing its log, the two
    could form a quorum that forgets an acknowledged write. The node without a log refuses
    to start; with --reinitialize it waits for EVERY peer before it votes."""
    cluster = Cluster.start(tmp_path)
    try:
        cluster.terminate(3)  # node 3 falls behind
        client = Client(cluster.endpoints([1, 2]))
        revision = client.put("amnesia", "acked")
        for node in (1, 2):
            cluster.terminate(node)
        (tmp_path / "node2" / "paxos.log").unlink()  # node 2's disk is gone
        cluster.launch(2)
        assert cluster.processes[2].wait(timeout=30) != 0
        assert "--reinitialize" in cluster.log(2)
        cluster.launch(2, "--reinitialize")
        cluster.launch(3)
        # 2 and 3 are a majority, but 2 may not vote before it heard from node 1.
        _wait(lambda: all(cluster.status(n) for n in (2, 3)), 60, "nodes 2 and 3 answering")
        time.sleep(3)
        assert all(_status(cluster, n)["role"] != "leader" for n in (2, 3))
        assert _status(cluster, 2)["rebuilding"] is True
        cluster.launch(1)
        _wait(lambda: (cluster.status(2) or {}).get("rebuilding") is False, 60, "the rebuild")
        cluster.wait_for_leader()
        for node in (1, 2, 3):
            value = Client(cluster.endpoints([node])).get("amnesia")
            assert value is not None, node
            assert value.value == "acked" and value.revision == revision, node
    finally:
        cluster.stop()


def test_a_forged_prepare_at_the_top_of_the_ballot_range_wedges_nothing(tmp_path: Path) -> None:
    """Two forged frames once promised round 2^62 and left no ballot anyone could lead with,
    even after restarts. Now neither the top of the ballot range (a round of a far later epoch:
    it only makes a node look for that epoch, never vote) nor the top of the node's own epoch
    (refused, and logged) is promised."""
    cluster = Cluster.start(tmp_path)
    try:
        leader = cluster.wait_for_leader()
        cluster_id = cluster.configs[0].cluster_id
        for victim in (n for n in (1, 2, 3) if n != leader):
            port = cluster.configs[victim - 1].me.peer[1]
            for top in (ballot_round_max, first_round(1) - 1):
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                    forged = Prepare(ballot=Ballot(top, leader), from_slot=10**9)
                    sock.sendall(codec.encode_handshake(cluster_id, leader) + codec.encode(forged))
                    time.sleep(0.3)
        for victim in (n for n in (1, 2, 3) if n != leader):
            promised = str(_status(cluster, victim)["promised"])
            assert str(ballot_round_max) not in promised
            assert str(first_round(1) - 1) not in promised
            _wait(lambda v=victim: "event=ballot_refused" in cluster.log(v), what="log line")
        client = Client(cluster.endpoints())
        client.put("after", 1)
        cluster.stop()
        for node in (1, 2, 3):
            cluster.launch(node)
        cluster.wait_for_leader()
        Client(cluster.endpoints()).put("after-restart", 2)
    finally:
        cluster.stop()


def test_a_damaged_log_keeps_the_node_up_saying_why_and_out_of_the_protocol(
    tmp_path: Path,
) -> None:
    cluster = Cluster.start(tmp_path)
    try:
        client = Client(cluster.endpoints())
        for i in range(50):
            client.put(f"k{i}", "x" * 200)
        cluster.terminate(3)
        log = tmp_path / "node3" / "paxos.log"
        data = bytearray(log.read_bytes())
        data[len(data) // 2] ^= 0xFF  # a flipped byte in the middle: damage, not a torn tail
        log.write_bytes(bytes(data))
        cluster.launch(3)
        _wait(lambda: cluster.status(3) is not None, what="node 3 answering")
        status = _status(cluster, 3)
        assert status["role"] == "damaged" and "checksum" in status["damage"]
        assert cluster.processes[3].poll() is None
        host, port = cluster.configs[2].me.http
        request = urllib.request.Request(
            f"http://{host}:{port}/v1/kv/x", data=b'{"value": 1}', method="PUT"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        body = refused.value.read()
        assert refused.value.code == 503 and b"damaged" in body
        assert str(tmp_path).encode() not in body, "a client never learns the node's paths"
        assert str(tmp_path) not in status["damage"] and "paxos.log" in status["damage"]
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5)
        health = json.loads(unhealthy.value.read())
        assert health["ok"] is False and health["reason"].startswith("damaged: ")
        assert "checksum" in health["reason"]
        with socket.create_connection(("127.0.0.1", cluster.resp_port(3)), timeout=5) as resp:
            resp.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nx\r\n")
            reply = resp.recv(1000)
        assert reply.startswith(b"-DAMAGED") and str(tmp_path).encode() not in reply, reply
        assert str(tmp_path) in cluster.log(3), "the node's own log has the whole story"
        assert Client(cluster.endpoints([1, 2])).get("k49").value == "x" * 200
    finally:
        cluster.stop()


def _skewed(offsets: dict[int, float], root: Path) -> Any:
    def configure(config: NodeConfig) -> NodeConfig:
        path = root / f"clock{config.node_id}.json"
        path.write_text(json.dumps({"wall_offset_ms": offsets[config.node_id]}))
        return replace(config, clock_file=path)

    return configure


@pytest.mark.parametrize("variant", ["correct", "wall-clock-leases"])
def test_skewed_wall_clocks_never_shorten_a_lease(tmp_path: Path, variant: str) -> None:
    """Node clocks ten minutes apart: a 20 s lock taken under one leader must still be held
    under the next. (The planted wall-clock variant loses it: the test can fail.)"""
    offsets = {1: 600_000.0, 2: -600_000.0, 3: 0.0}
    configure = _skewed(offsets, tmp_path)
    cluster = Cluster.start(tmp_path, configure=lambda c: replace(configure(c), variant=variant))
    try:
        # Lead on the slowest clock first, so the next leader's wall clock is ahead.
        while cluster.wait_for_leader() != 2:
            cluster.kill9(cluster.wait_for_leader())
            for node in (1, 2, 3):
                if node not in cluster.processes:
                    cluster.launch(node)
        client = Client(cluster.endpoints())
        grant = client.acquire("job", "holder-a", ttl_s=20)
        assert grant.acquired
        cluster.kill9(2)
        cluster.wait_for_leader()
        time.sleep(1)
        other = Client(cluster.endpoints([1, 3])).acquire("job", "holder-b", ttl_s=20)
        if variant == "correct":
            assert not other.acquired and other.owner == "holder-a"
        else:
            assert other.acquired, "the planted bug should have ended the lease early"
    finally:
        cluster.stop()


def test_unnamed_peer_connections_cost_little_and_the_node_keeps_serving(
    cluster: Cluster,
) -> None:
    port = cluster.configs[0].me.peer[1]
    big = socket.create_connection(("127.0.0.1", port), timeout=2)
    big.sendall((100 << 20).to_bytes(4, "big") + b"x" * 65536)  # a 100 MiB frame, unnamed
    big.settimeout(2)
    assert big.recv(1) == b"", "an oversized frame before the handshake closes the connection"
    big.close()
    idle = [
        socket.create_connection(("127.0.0.1", port), timeout=2)
        for _ in range(unnamed_connections_max + 5)
    ]
    try:
        closed = 0
        for sock in idle[unnamed_connections_max:]:
            sock.settimeout(2)
            try:
                closed += sock.recv(1) == b""
            except (ConnectionResetError, TimeoutError):
                closed += 1
        assert closed == 5, "connections past the cap are refused"
        client = Client(cluster.endpoints())
        client.put("served", True)
        assert client.get("served").value is True
    finally:
        for sock in idle:
            sock.close()
    assert os.path.exists(cluster.root)
