"""One SQLite per cluster: a node whose data directory was made with another SQLite refuses
to start, naming both versions and what to do, and the cluster serves on without it.
(Peers of another SQLite are refused at the handshake: tests/runtime/test_transport.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from paxosd import Client
from paxosd.runtime.sqlite_pin import SQLITE_VERSION_FILE, settle
from paxosd.service.sql.machine import SQLITE_VERSION

from .cluster import Cluster


def test_a_node_restarted_with_another_sqlite_refuses_to_start(cluster: Cluster) -> None:
    data = cluster.configs[2].data_dir
    assert (data / SQLITE_VERSION_FILE).read_text().strip() == SQLITE_VERSION, "pinned at init"
    Client(cluster.endpoints()).put("before", 1)
    cluster.kill9(3)
    # What a node sees when its Python (so its SQLite) changed under its data directory.
    (data / SQLITE_VERSION_FILE).write_text("3.0.1\n")
    done = subprocess.run(
        [sys.executable, "-m", "paxosd", "node", "--config", str(cluster.root / "node3.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "made with SQLite '3.0.1'" in done.stderr
    assert f"this node runs SQLite '{SQLITE_VERSION}'" in done.stderr
    assert "paxosd snapshot save" in done.stderr  # what to do
    Client(cluster.endpoints([1, 2])).put("after", 2)
    # Put back as it was, it starts and catches up.
    (data / SQLITE_VERSION_FILE).write_text(SQLITE_VERSION + "\n")
    cluster.launch(3)
    cluster.wait_until_all_answer()
    assert Client(cluster.endpoints([3])).get("after").value == 2


def test_a_data_directory_from_before_the_pin_adopts_the_running_sqlite(tmp_path: Path) -> None:
    assert settle(tmp_path, 1) is True
    assert (tmp_path / SQLITE_VERSION_FILE).read_text().strip() == SQLITE_VERSION
    assert settle(tmp_path, 1) is False
