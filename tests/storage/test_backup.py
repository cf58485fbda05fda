"""Backup files and restoring them: a backup round-trips into stores a node starts from, and
every kind of damage (a cut anywhere, a flipped byte, an edited header, another file) is
refused with a reason before anything is written."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import pytest

from paxosd.runtime.config import local_cluster
from paxosd.runtime.restore import RestoreRefused, check, restore_configs, restore_local
from paxosd.service import StateMachine
from paxosd.service.commands import Request, encode
from paxosd.service.kv import DeleteRange, Put, Range
from paxosd.storage import make_identity, open_store
from paxosd.storage.backup import BackupMeta, DamagedBackup, engine_slot, write_backup
from paxosd.storage.snapshots import SNAPSHOTS_DIR


def _machine(writes: int = 40) -> StateMachine:
    """A state machine with some history: puts, overwrites and a delete, over several slots."""
    machine = StateMachine()
    for i in range(writes):
        op = Put(key=f"k{i % 25:02d}".encode(), value=f"v{i}".encode())
        machine.apply((i + 1) << 16, encode(Request(client_id="c", seq=i + 1, op=op)))
    delete = DeleteRange(key=b"k03")
    machine.apply((writes + 1) << 16, encode(Request(client_id="c", seq=writes + 1, op=delete)))
    return machine


def _backup(machine: StateMachine, cluster_id: str = "old-cluster") -> bytes:
    state = machine.snapshot()
    meta = BackupMeta(
        cluster_id=cluster_id, node_id=2, slot=engine_slot(machine.applied_slot),
        revision=machine.revision, compact_revision=-1, keys=machine.kv.store.live_keys,
        state_bytes=len(state), created_at="2026-01-01T00:00:00Z", paxosd_version="test",
    )  # fmt: skip
    out = io.BytesIO()
    write_backup(out, meta, io.BytesIO(state))
    return out.getvalue()


def _everything(machine: StateMachine) -> object:
    return machine.read(Range(key=b"\x00", range_end=b"\x00"))


def test_a_backup_restores_into_stores_that_start_from_its_state(tmp_path: Path) -> None:
    """Every key comes back with its revisions, in each new node's store, under a new id."""
    machine = _machine()
    path = tmp_path / "b.pxbk"
    path.write_bytes(_backup(machine))
    checked, configs = restore_local(path, tmp_path / "new", 3, 7000, fsync=False)
    assert (checked.meta.revision, checked.meta.keys) == (machine.revision, 24)
    assert len({c.cluster_id for c in configs}) == 1
    assert configs[0].cluster_id not in ("old-cluster", "paxosd-local")
    for config in configs:
        assert (tmp_path / "new" / f"node{config.node_id}.toml").exists()
        store = open_store(
            config.data_dir, identity=make_identity(config.cluster_id, config.node_id),
            create=False, fsync=False,
        )  # fmt: skip
        try:
            recovered = store.load()
            assert recovered.promised is None and not recovered.accepted
            assert recovered.configuration is not None
            assert recovered.configuration.voters == (1, 2, 3)
            snapshot = recovered.snapshot
            assert snapshot is not None and snapshot.slot == checked.meta.slot
            with store.snapshots.open(snapshot) as reader:
                restored = StateMachine.restore(reader)
                reader.verify()
        finally:
            store.close()
        assert _everything(restored) == _everything(machine)
        assert restored.revision == machine.revision


def test_status_names_what_the_backup_holds(tmp_path: Path) -> None:
    machine = _machine()
    path = tmp_path / "b.pxbk"
    data = _backup(machine)
    path.write_bytes(data)
    checked = check(path)
    assert checked.meta.cluster_id == "old-cluster"
    assert checked.file_bytes == len(data)
    assert checked.checksum == data[-32:].hex()


@pytest.mark.parametrize("cut", [0, 3, 9, 40, 0.5, -33, -32, -1])
def test_a_truncated_backup_is_refused_with_a_reason(tmp_path: Path, cut: float) -> None:
    data = _backup(_machine())
    at = int(len(data) * cut) if isinstance(cut, float) else cut
    path = tmp_path / "cut.pxbk"
    path.write_bytes(data[:at])
    with pytest.raises(DamagedBackup, match=r"truncated|cut|ends before|damaged"):
        check(path)
    with pytest.raises(DamagedBackup):
        restore_local(path, tmp_path / "new", 3, 7000, fsync=False)
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def test_every_flipped_byte_is_refused(tmp_path: Path) -> None:
    """A bit flipped anywhere, header, state or digest: refused, never restored."""
    data = _backup(_machine(8))
    path = tmp_path / "flip.pxbk"
    for at in range(0, len(data), max(1, len(data) // 97)):
        damaged = bytearray(data)
        damaged[at] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(DamagedBackup):
            check(path)


def test_extra_bytes_after_the_checksum_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.pxbk"
    path.write_bytes(_backup(_machine()) + b"\n")
    with pytest.raises(DamagedBackup, match="follows the checksum"):
        check(path)


def test_a_header_that_lies_about_the_state_is_refused(tmp_path: Path) -> None:
    """A header edited (and its digest made again) to name another revision: the state is
    restored and compared with it."""
    machine = _machine()
    data = _backup(machine)
    magic, version, length = struct.unpack(">4sHI", data[:10])
    meta = json.loads(data[10 : 10 + length])
    meta["revision"] += 5
    text = json.dumps(meta).encode()
    body = struct.pack(">4sHI", magic, version, len(text)) + text + data[10 + length : -32]
    path = tmp_path / "lie.pxbk"
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(DamagedBackup, match="header says"):
        check(path)


def test_other_files_are_refused_for_what_they_are(tmp_path: Path) -> None:
    snap = tmp_path / "node.snap"
    snap.write_bytes(_machine().snapshot())
    with pytest.raises(DamagedBackup, match="snapshot file, not a backup"):
        check(snap)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DamagedBackup, match=r"truncated|not a paxosd backup"):
        check(text)
    with pytest.raises(DamagedBackup, match="no backup file"):
        check(tmp_path / "missing.pxbk")
    with pytest.raises(DamagedBackup, match="directory"):
        check(tmp_path)


def test_restore_into_a_directory_that_holds_anything_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.pxbk"
    path.write_bytes(_backup(_machine()))
    target = tmp_path / "busy"
    target.mkdir()
    (target / "something").write_text("x")
    with pytest.raises(RestoreRefused, match="not empty"):
        restore_local(path, target, 3, 7000, fsync=False)
    assert sorted(p.name for p in target.iterdir()) == ["something"]


def test_restoring_under_the_backups_own_cluster_id_is_refused(tmp_path: Path) -> None:
    """Restored and old nodes must never mix: the config files must name a new cluster."""
    path = tmp_path / "b.pxbk"
    path.write_bytes(_backup(_machine(), cluster_id="prod"))
    configs = local_cluster(3, tmp_path / "n", 7000, "prod")
    with pytest.raises(RestoreRefused, match="new cluster_id"):
        restore_configs(path, configs, fsync=False)
    assert not any((tmp_path / "n" / "node1").glob("*"))
    fresh = local_cluster(3, tmp_path / "m", 7000, "prod-restored")
    restore_configs(path, fresh, fsync=False)
    assert all((c.data_dir / SNAPSHOTS_DIR).is_dir() for c in fresh)
