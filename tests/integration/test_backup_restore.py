"""Backup and restore on real processes: `paxosd snapshot save` from a running 3-node cluster
while writes go on, `status`, and `restore` into a new 3-node cluster that serves every key
with the revisions it had (and the names and SQL tables), under a new cluster id."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from paxosd import Client
from paxosd.runtime.config import local_cluster, to_toml
from tests.ports import free_layout

from .cluster import Cluster


def _paxosd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paxosd", *args], capture_output=True, text=True, timeout=120
    )


def _rows(client: Client, revision: int = 0) -> list[tuple[Any, ...]]:
    found = client.range(prefix="", revision=revision)
    return [(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version) for kv in found.kvs]


def test_a_backup_taken_under_writes_restores_into_a_new_cluster(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    old = Cluster.start(tmp_path / "old")
    new: Cluster | None = None
    try:
        client = Client(old.endpoints(), timeout_s=30)
        for i in range(150):
            client.put(f"key/{i % 60:03d}", {"n": i})  # overwritten: versions above 1
        client.delete("key/007")
        client.register("service/a", "owner-1")
        sql = f"http://{old.http(1)}/v1/sql"
        created = httpx.post(f"{sql}/execute", json={"statements": [
            "CREATE TABLE signups (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
            ["INSERT INTO signups (name) VALUES (?)", ["ada"]],
        ]}, timeout=30)  # fmt: skip
        assert created.status_code == 200, created.text
        acknowledged = client.put("before/save", "yes")
        # Writes go on during the save, from another client.
        stop = threading.Event()
        written: list[int] = []

        def writer() -> None:
            other = Client(old.endpoints(), timeout_s=30)
            i = 0
            while not stop.is_set() and i < 2000:
                written.append(other.put(f"live/{i:05d}", i))
                i += 1
            other.close()

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while len(written) < 20:
                threading.Event().wait(0.05)
            path = tmp_path / "backup.pxbk"
            saved = _paxosd("snapshot", "save", str(path), "--endpoints",
                            ",".join(old.endpoints()), "--json")  # fmt: skip
        finally:
            stop.set()
            thread.join(timeout=60)
        assert saved.returncode == 0, saved.stderr
        meta = json.loads(saved.stdout)
        revision = meta["revision"]
        assert revision >= acknowledged
        assert written and min(written) <= revision < max(written), "writes went on meanwhile"
        assert meta["cluster_id"] == old.configs[0].cluster_id
        expected = _rows(client, revision)  # the old cluster as it was at that revision
        assert ("before/save", "yes") in [row[:2] for row in expected]

        status = _paxosd("snapshot", "status", str(path), "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["revision"] == revision

        # A new cluster, its own ports and id, from config files: the restore refuses to
        # write beside data, and the new cluster serves exactly the backup's state.
        base = free_layout(3, offset=1000)
        configs = local_cluster(3, tmp_path / "new", base, "restored-from-backup")
        (tmp_path / "new").mkdir()
        for config in configs:
            (tmp_path / "new" / f"node{config.node_id}.toml").write_text(to_toml(config))
        files = [f"--config={tmp_path / 'new' / f'node{c.node_id}.toml'}" for c in configs]
        restored = _paxosd("snapshot", "restore", str(path), *files, "--json")
        assert restored.returncode == 0, restored.stderr
        again = _paxosd("snapshot", "restore", str(path), *files)
        assert again.returncode == 2 and "not empty" in again.stderr

        new = Cluster(tmp_path / "new", configs)
        for config in configs:
            new.launch(config.node_id)
        new.wait_for_leader()
        new.wait_until_all_answer()
        fresh = Client(new.endpoints(), timeout_s=30)
        assert _rows(fresh) == expected, "every key, value and revision as at the backup"
        assert fresh.lookup("service/a") == "owner-1"
        rows = httpx.post(
            f"http://{new.http(2)}/v1/sql/query",
            json={"statements": ["SELECT name FROM signups"]},
            timeout=30,
        ).json()
        assert "ada" in json.dumps(rows), rows
        assert fresh.put("after/restore", 1) == revision + 1, "revisions go on from the backup"
        for node in (1, 2, 3):
            status_of = new.status(node) or {}
            assert status_of.get("cluster_id") == "restored-from-backup"
        fresh.close()
        client.close()
    finally:
        old.stop()
        if new is not None:
            new.stop()
