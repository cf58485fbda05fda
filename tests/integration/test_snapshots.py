"""Snapshots on real processes: snapshot files written beside the log, a node restarted from
its own snapshot, a lagging node brought up to date with a snapshot streamed from a peer's
file, and a node whose snapshot file is damaged refusing to vote."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from paxosd import Client
from paxosd.runtime.config import NodeConfig

from .cluster import Cluster

every = 20  # slots between snapshots: a few dozen writes cross several


def _often(config: NodeConfig) -> NodeConfig:
    return replace(config, snapshot_every_slots=every)


def _wait(predicate: Any, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s  # a loaded machine is slow
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout_s} s")


def _snapshot_files(root: Path, node: int) -> list[Path]:
    return sorted((root / f"node{node}" / "snapshots").glob("snapshot-*.snap"))


def test_a_node_restarts_from_its_own_snapshot_and_a_lagging_one_installs_a_peers(
    tmp_path: Path,
) -> None:
    cluster = Cluster.start(tmp_path, configure=_often)
    try:
        cluster.terminate(3)  # node 3 falls behind, for the second half
        client = Client(cluster.endpoints([1, 2]))
        for i in range(120):
            client.put(f"k{i}", {"n": i})
        _wait(lambda: all((cluster.status(n) or {}).get("snapshot_slot", 0) > 0 for n in (1, 2)))
        for node in (1, 2):  # older files go once a newer record is durable
            _wait(lambda n=node: len(_snapshot_files(tmp_path, n)) == 1, what="one file")
            status = cluster.status(node) or {}
            assert status["disk_bytes"] > status["snapshot_bytes"] > 0
        # A restart from its own snapshot: the file the log names, at the slot it names.
        before = cluster.status(2)
        assert before is not None
        cluster.kill9(2)
        cluster.launch(2)
        _wait(lambda: cluster.status(2) is not None, what="node 2 answering")
        _wait(lambda: "snapshot_loaded" in cluster.log(2), what="node 2 loading its snapshot")
        status = cluster.status(2)
        assert status is not None and status["snapshot_slot"] >= before["snapshot_slot"]
        assert status["applied"] >= status["snapshot_slot"]
        # Node 3 lags behind both snapshots: it gets one, streamed from a peer's file.
        cluster.launch(3)
        _wait(lambda: "snapshot_installed" in cluster.log(3), what="node 3 installing a snapshot")
        _wait(lambda: (cluster.status(3) or {}).get("applied", 0) >= 120, what="node 3 catching up")
        assert len(_snapshot_files(tmp_path, 3)) == 1
        reader = Client(cluster.endpoints([3]))
        for i in (0, 59, 119):
            value = reader.get(f"k{i}")
            assert value is not None and value.value == {"n": i}
    finally:
        cluster.stop()


def test_a_damaged_snapshot_file_keeps_the_node_out_of_the_protocol(tmp_path: Path) -> None:
    """A node whose state would not match its log must not apply the next slots to it: it
    stays up as damaged, saying which file and why."""
    cluster = Cluster.start(tmp_path, configure=_often)
    try:
        client = Client(cluster.endpoints())
        for i in range(60):
            client.put(f"k{i}", "v")
        _wait(lambda: _snapshot_files(tmp_path, 3) != [], what="a snapshot on node 3")
        cluster.terminate(3)
        for path in _snapshot_files(tmp_path, 3):  # an older one may not be removed yet
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        cluster.launch(3)
        _wait(lambda: cluster.status(3) is not None, what="node 3 answering")
        status = cluster.status(3)
        assert status is not None and status["role"] == "damaged"
        assert "snapshot of slot" in status["damage"]
        assert client.get("k59") is not None  # the others go on
    finally:
        cluster.stop()
