"""Snapshot files (storage/snapshots.py), the same contract in a directory and in memory: a
saved file is whole and checked, a damaged or missing one is refused, a snapshot arriving in
chunks is checked before it becomes one, and garbage goes only when asked."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from paxosd.core.multi.records import Snapshot
from paxosd.storage import CorruptLog, FileLog, SqliteLog
from paxosd.storage.snapshots import (
    DamagedSnapshot,
    DirSnapshots,
    MemorySnapshots,
    SnapshotStore,
)


@pytest.fixture(params=["dir", "memory"])
def snapshots(request: pytest.FixtureRequest, tmp_path: Path) -> SnapshotStore:
    if request.param == "dir":
        return DirSnapshots(tmp_path / "snapshots")
    return MemorySnapshots()


def writer(data: bytes, pieces: int = 7) -> Callable[[BinaryIO], None]:
    def write(out: BinaryIO) -> None:
        step = max(1, len(data) // pieces)
        for start in range(0, len(data), step):
            out.write(data[start : start + step])

    return write


DATA = bytes(range(256)) * 5000  # 1.28 MB: more than one write buffer


def test_a_saved_snapshot_reads_back_whole_and_checked(snapshots: SnapshotStore) -> None:
    record = snapshots.save(40, writer(DATA))
    assert record.slot == 40 and record.size_bytes == len(DATA) and len(record.checksum) == 16
    with snapshots.open(record) as reader:
        assert reader.read(10) == DATA[:10]
        assert reader.read() == DATA[10:]
        reader.verify()
    assert snapshots.read(40, 1000, 24) == DATA[1000:1024]
    assert snapshots.slots() == [40] and snapshots.disk_bytes() == len(DATA)
    again = snapshots.save(41, writer(DATA, pieces=1))
    assert again.checksum == record.checksum, "equal bytes, equal checksums"


def test_a_file_that_is_not_what_its_record_says_is_refused(snapshots: SnapshotStore) -> None:
    record = snapshots.save(7, writer(b"state" * 100))
    for wrong in (
        Snapshot(7, record.size_bytes + 1, record.checksum),
        Snapshot(7, record.size_bytes, bytes(16)),
    ):
        with snapshots.open(wrong) as reader, pytest.raises(DamagedSnapshot):
            reader.verify()
    with pytest.raises(DamagedSnapshot, match="missing") as missing:
        snapshots.open(Snapshot(8, 1, bytes(16)))
    assert isinstance(missing.value, CorruptLog), "the node refuses it like a damaged log"
    with pytest.raises(DamagedSnapshot, match="missing"):
        snapshots.read(8, 0, 10)


def test_a_flipped_byte_is_found(tmp_path: Path) -> None:
    files = DirSnapshots(tmp_path)
    record = files.save(3, writer(DATA))
    path = tmp_path / f"snapshot-{3:020d}.snap"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 1
    path.write_bytes(raw)
    with files.open(record) as reader, pytest.raises(DamagedSnapshot, match="checksum"):
        reader.verify()
    memory = MemorySnapshots()
    record = memory.save(3, writer(DATA))
    memory.damage(3)
    with memory.open(record) as reader, pytest.raises(DamagedSnapshot, match="checksum"):
        reader.verify()


def test_a_failed_write_leaves_no_snapshot(snapshots: SnapshotStore) -> None:
    def broken(out: BinaryIO) -> None:
        out.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        snapshots.save(9, broken)
    assert snapshots.slots() == []


def test_a_snapshot_arrives_in_chunks_and_is_checked_before_it_counts(
    snapshots: SnapshotStore,
) -> None:
    source = MemorySnapshots()
    record = source.save(12, writer(DATA))
    for offset in range(0, len(DATA), 100_000):
        snapshots.stage(12, offset, source.read(12, offset, 100_000))
    assert snapshots.slots() == [], "staged, not yet a snapshot"
    snapshots.finish(record)
    assert snapshots.slots() == [12]
    with snapshots.open(record) as reader:
        assert reader.read() == DATA
        reader.verify()
    # A transfer that went wrong (a chunk of another snapshot) is refused, not kept.
    snapshots.stage(20, 0, DATA[:1000])
    snapshots.stage(20, 1000, b"\x00" * (len(DATA) - 1000))
    with pytest.raises(DamagedSnapshot, match="damaged"):
        snapshots.finish(Snapshot(20, record.size_bytes, record.checksum))
    assert snapshots.slots() == [12]
    # Starting over at offset 0 discards what was staged.
    snapshots.stage(30, 0, b"abc")
    snapshots.stage(30, 0, DATA)
    snapshots.finish(Snapshot(30, record.size_bytes, record.checksum))
    assert snapshots.slots() == [12, 30]


def test_garbage_goes_only_when_asked(snapshots: SnapshotStore) -> None:
    for slot in (5, 10, 15):
        snapshots.save(slot, writer(bytes([slot]) * 10))
    snapshots.stage(20, 0, b"partial")
    snapshots.remove_older(15)
    assert snapshots.slots() == [15]
    snapshots.stage(20, 7, b"more")  # the staged one (a higher slot) was kept
    snapshots.keep_only(15)
    assert snapshots.slots() == [15]
    snapshots.keep_only(None)
    assert snapshots.slots() == [] and snapshots.disk_bytes() == 0


def test_a_crash_loses_a_staged_snapshot_never_a_saved_one() -> None:
    memory = MemorySnapshots()
    memory.save(1, writer(b"kept"))
    memory.stage(2, 0, b"arriving")
    memory.crash()
    assert memory.slots() == [1]
    with pytest.raises(AssertionError):
        memory.stage(2, 8, b"rest")  # nothing staged any more: the transfer starts over


def test_leftovers_of_an_interrupted_save_are_removed_at_start(tmp_path: Path) -> None:
    files = DirSnapshots(tmp_path)
    files.save(4, writer(b"four"))
    (tmp_path / f"snapshot-{9:020d}.tmp").write_bytes(b"half written")
    (tmp_path / f"snapshot-{8:020d}.staged").write_bytes(b"half received")
    (tmp_path / "notes.txt").write_text("not ours")
    files.keep_only(4)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", f"snapshot-{4:020d}.snap"]


@pytest.mark.parametrize("backend", [FileLog, SqliteLog])
def test_a_stores_snapshot_files_live_in_its_data_directory(
    backend: type[FileLog] | type[SqliteLog], tmp_path: Path
) -> None:
    store = backend(tmp_path, b"test/node-1")
    try:
        record = store.snapshots.save(3, writer(b"state"))
        store.write([record])
        store.sync()
    finally:
        store.close()
    assert (tmp_path / "snapshots" / f"snapshot-{3:020d}.snap").read_bytes() == b"state"
    reopened = backend(tmp_path, b"test/node-1")
    try:
        assert reopened.load().snapshot == record
        with reopened.snapshots.open(record) as reader:
            reader.verify()
    finally:
        reopened.close()
