"""Bad input never crashes a node or harms its data."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from paxosd import Client
from paxosd.runtime import codec
from paxosd.runtime.config import load, to_toml

from .cluster import Cluster


def _peer_port(cluster: Cluster, node: int) -> int:
    return cluster.configs[node - 1].me.peer[1]


def test_garbage_on_the_peer_port_is_refused_and_the_node_keeps_serving(cluster: Cluster) -> None:
    rng = random.Random(7)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", _peer_port(cluster, 1)), timeout=2) as sock:
            sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))))
    huge = (200 << 20).to_bytes(4, "big")  # a frame header over the size limit
    with socket.create_connection(("127.0.0.1", _peer_port(cluster, 1)), timeout=2) as sock:
        sock.sendall(huge + b"x" * 100)
    client = Client(cluster.endpoints())
    client.put("still", "alive")
    assert client.get("still").value == "alive"
    assert cluster.processes[1].poll() is None


def test_a_peer_from_another_cluster_is_refused(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    with socket.create_connection(("127.0.0.1", _peer_port(cluster, leader)), timeout=2) as sock:
        sock.sendall(codec.encode_handshake("some-other-cluster", 2))
        sock.settimeout(2)
        assert sock.recv(1) == b"", "the connection should be closed"
    client = Client(cluster.endpoints())
    client.put("k", 1)
    assert cluster.wait_for_leader() == leader


def test_a_node_started_with_another_nodes_data_directory_refuses_to_run(
    cluster: Cluster, tmp_path: Path
) -> None:
    Client(cluster.endpoints()).put("precious", 1)
    cluster.kill9(3)
    config = load(cluster.root / "node3.toml")
    wrong = tmp_path / "node3-wrong.toml"
    wrong.write_text(to_toml(config).replace(str(config.data_dir), str(cluster.root / "node1")))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "node", "--config", str(wrong)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0 and time.monotonic() - started < 30
    assert "data directory" in done.stderr
    # Node 1's data is untouched and the cluster still works.
    assert Client(cluster.endpoints([1, 2])).get("precious").value == 1


def test_a_config_error_says_what_to_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('cluster_id = "c"\nnode_id = 4\ndata_dir = "d"\n[[members]]\nid = 1\n')
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "node", "--config", str(path)],
        capture_output=True, text=True, timeout=30, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 2
    assert "members[0] is missing 'peer'" in done.stderr
