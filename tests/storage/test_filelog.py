"""FileLog specifics: fsync discipline, compaction, torn-tail repair on disk, failure, locking."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import paxosd.storage.filelog as filelog_module
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import Accepted, Configured, InlineSnapshot, Promised
from paxosd.core.types import Ballot
from paxosd.storage import (
    CompactionPolicy,
    CorruptLog,
    DataDirLocked,
    FileLog,
    InvalidRecord,
    MemoryLog,
    StoreExists,
    StoreFailed,
    encode_frame,
)
from paxosd.storage.codec import encode_header

from .harness import IDENTITY, state

B = Ballot(1, 1)


def test_one_fdatasync_per_group_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = filelog_module.datasync
    monkeypatch.setattr(filelog_module, "datasync", lambda fd: (calls.append(fd), real(fd)))
    store = FileLog(tmp_path, IDENTITY)
    for slot in range(1, 101):
        store.write([Accepted(slot, B, (b"cmd",))])
    assert calls == []  # write() does no I/O
    store.sync()
    assert len(calls) == 1 and store.fsyncs == 1
    store.sync()  # nothing new: no fsync
    assert len(calls) == 1
    store.close()


def test_directory_is_fsynced_on_create_and_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    real = filelog_module.fsync_dir
    monkeypatch.setattr(filelog_module, "fsync_dir", lambda p: (synced.append(p), real(p)))
    data = tmp_path / "a" / "b"
    store = FileLog(data, IDENTITY)
    assert synced == [data]  # the new log's name (creating `data` itself is fsutil's job)
    store.write([Accepted(1, B, (b"x",))])
    store.compact()
    assert synced == [data, data]
    assert store.compactions == 1
    store.close()


def test_created_directories_are_fsynced_in_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import paxosd.storage.fsutil as fsutil

    synced: list[Path] = []
    real = fsutil.fsync_dir
    monkeypatch.setattr(fsutil, "fsync_dir", lambda p: (synced.append(p), real(p)))
    FileLog(tmp_path / "a" / "b", IDENTITY).close()
    assert synced[:2] == [tmp_path / "a", tmp_path]


def test_torn_tail_is_truncated_on_disk(tmp_path: Path) -> None:
    store = FileLog(tmp_path, IDENTITY)
    store.write([Promised(B), Accepted(1, B, (b"kept",))])
    store.close()
    log = tmp_path / "paxos.log"
    good = log.stat().st_size
    with open(log, "ab") as file:
        file.write(encode_frame(Accepted(2, B, (b"lost" * 50,)))[:-7])
    reopened = FileLog(tmp_path, IDENTITY)
    assert log.stat().st_size == good
    recovered = reopened.load()
    assert recovered.repaired_tail_bytes > 0 and sorted(recovered.accepted) == [1]
    reopened.write([Accepted(2, B, (b"again",))])  # appends go after the repaired end
    reopened.close()
    assert sorted(FileLog(tmp_path, IDENTITY).load().accepted) == [1, 2]


def test_compaction_keeps_state_and_shrinks_the_file(tmp_path: Path) -> None:
    policy = CompactionPolicy(garbage_ratio=1.0, garbage_bytes_min=10_000)
    store = FileLog(tmp_path, IDENTITY, policy=policy, fsync=False)  # 400 syncs: space, not speed
    for slot in range(1, 401):
        store.write([Accepted(slot, B, (b"v" * 100,)), Promised(B)])
        if slot % 100 == 0:
            store.write([InlineSnapshot(slot - 50, b"snap")])
        store.sync()
    assert store.compactions > 0
    expected = state(store.load())
    assert store.disk_bytes() == (tmp_path / "paxos.log").stat().st_size
    store.close()
    reopened = FileLog(tmp_path, IDENTITY, policy=policy)
    assert state(reopened.load()) == expected
    assert sorted(reopened.load().accepted) == list(range(351, 401))
    reopened.close()


def test_interrupted_compaction_leaves_the_old_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileLog(tmp_path, IDENTITY)
    store.write([Promised(B), Accepted(1, B, (b"a",))])
    store.sync()

    def crash_before_rename(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "simulated crash before rename")

    monkeypatch.setattr(filelog_module.os, "replace", crash_before_rename)
    with pytest.raises(StoreFailed):
        store.compact()
    monkeypatch.undo()
    store.abandon()
    # A crash between writing the temp file and renaming it: the temp file is left behind.
    (tmp_path / "paxos.log.tmp").write_bytes(b"half a compaction")
    reopened = FileLog(tmp_path, IDENTITY)
    assert not (tmp_path / "paxos.log.tmp").exists()
    assert reopened.load().accepted == {1: (B, (b"a",))}
    reopened.close()


def test_failed_fsync_poisons_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileLog(tmp_path, IDENTITY)
    store.write([Accepted(1, B, (b"a",))])
    store.sync()

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(filelog_module, "datasync", failing)
    store.write([Accepted(2, B, (b"b",))])
    with pytest.raises(StoreFailed, match="Input/output error"):
        store.sync()
    monkeypatch.undo()
    # No retry may claim success: the dirty pages may be gone even if a second fsync passes.
    with pytest.raises(StoreFailed):
        store.sync()
    with pytest.raises(StoreFailed):
        store.write([Accepted(3, B, (b"c",))])
    store.close()  # releases the lock without trying to flush
    reopened = FileLog(tmp_path, IDENTITY)  # recovery from the file is the way back
    assert 1 in reopened.load().accepted
    reopened.close()


def test_data_dir_is_locked(tmp_path: Path) -> None:
    store = FileLog(tmp_path, IDENTITY)
    with pytest.raises(DataDirLocked):
        FileLog(tmp_path, IDENTITY)
    store.close()
    FileLog(tmp_path, IDENTITY).close()


def test_bad_header_and_unknown_version(tmp_path: Path) -> None:
    FileLog(tmp_path, IDENTITY).close()
    log = tmp_path / "paxos.log"
    log.write_bytes(b"")
    with pytest.raises(CorruptLog, match="too short"):
        FileLog(tmp_path, IDENTITY)
    log.write_bytes(b"NOTPAXOS" + bytes(40))
    with pytest.raises(CorruptLog, match="not a paxosd log"):
        FileLog(tmp_path, IDENTITY)
    header = bytearray(encode_header(IDENTITY))
    header[8] = 99  # version, without fixing the CRC: the version is checked first
    log.write_bytes(bytes(header))
    with pytest.raises(CorruptLog, match="unknown format version 99"):
        FileLog(tmp_path, IDENTITY)


def test_create_false_refuses_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FileLog(tmp_path / "missing", IDENTITY, create=False)


def test_memory_image_is_the_file_format(tmp_path: Path) -> None:
    memory = MemoryLog(IDENTITY)
    memory.write([Promised(B), Accepted(4, B, (b"x",)), InlineSnapshot(2, b"s")])
    memory.sync()
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "paxos.log").write_bytes(memory.image())
    with FileLog(tmp_path, IDENTITY) as store:
        assert state(store.load()) == state(memory.load())


def test_log_file_permissions_are_not_world_writable(tmp_path: Path) -> None:
    FileLog(tmp_path, IDENTITY).close()
    assert not os.stat(tmp_path / "paxos.log").st_mode & 0o002


def test_a_new_log_is_never_made_over_an_old_one(tmp_path: Path) -> None:
    with FileLog(tmp_path, IDENTITY) as old:
        old.write([Promised(Ballot(4, 1))])
    with pytest.raises(StoreExists):
        FileLog(tmp_path, IDENTITY, initial=[Configured(Configuration.of([1]))])
    with FileLog(tmp_path, IDENTITY) as kept:
        assert kept.load().promised == Ballot(4, 1)


def test_a_new_log_with_a_bad_record_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecord):
        FileLog(tmp_path / "d", IDENTITY, initial=[Accepted(-1, Ballot(1, 1), ())])
    assert not (tmp_path / "d" / "paxos.log").exists()
    assert not (tmp_path / "d" / "paxos.log.tmp").exists()
