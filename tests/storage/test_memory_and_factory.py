"""MemoryLog's crash semantics, and the `open_store` factory."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from paxosd.core.multi.records import Accepted, Promised
from paxosd.core.types import Ballot
from paxosd.storage import (
    DEFAULT_BACKEND,
    BackendMismatch,
    CorruptLog,
    FileLog,
    ForeignDataDir,
    MemoryLog,
    MissingStore,
    SqliteLog,
    make_identity,
    open_store,
)

from .harness import IDENTITY, OTHER_IDENTITY

B = Ballot(1, 0)


def test_crash_drops_unsynced_writes() -> None:
    store = MemoryLog(IDENTITY)
    store.write([Promised(B)])
    store.sync()
    store.write([Accepted(1, B, (b"a",)), Accepted(2, B, (b"b",))])
    assert store.crash() == 2
    assert store.load().accepted == {} and store.load().promised == B
    assert store.fsyncs == 1


def test_tear_leaves_a_partial_frame_that_restart_repairs() -> None:
    store = MemoryLog(IDENTITY)
    store.write([Accepted(1, B, (b"a",))])
    store.sync()
    synced = store.disk_bytes()
    store.write([Accepted(2, B, (b"b",)), Accepted(3, B, (b"c" * 40,))])
    assert store.crash(tear=True) == 1  # slot 2's frame was whole; slot 3's was torn
    recovered = store.load()
    assert sorted(recovered.accepted) == [1, 2]
    assert recovered.repaired_tail_bytes > 0
    assert store.disk_bytes() > synced


def test_random_tears_are_deterministic() -> None:
    def run(seed: int) -> bytes:
        store = MemoryLog(IDENTITY)
        store.write([Accepted(slot, B, (b"x" * slot,)) for slot in range(1, 9)])
        store.crash(tear=True, rng=random.Random(seed))
        return store.image()

    assert run(3) == run(3)


def test_corrupt_is_seen_at_restart() -> None:
    store = MemoryLog(IDENTITY)
    store.write([Accepted(slot, B, (b"v",)) for slot in range(1, 4)])
    store.sync()
    store.corrupt(len(store.image()) - 30)
    with pytest.raises(CorruptLog):
        store.restart()


def test_image_moves_between_stores_and_keeps_its_identity() -> None:
    store = MemoryLog(IDENTITY)
    store.write([Promised(B)])
    store.sync()
    assert MemoryLog(IDENTITY, image=store.image()).load().promised == B
    with pytest.raises(ForeignDataDir):
        MemoryLog(OTHER_IDENTITY, image=store.image())


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    identity = make_identity("c1", 3)
    assert identity == b"c1/node-3"
    default = open_store(tmp_path / "d", identity=identity)
    assert isinstance(default, FileLog if DEFAULT_BACKEND == "file" else SqliteLog)
    default.close()
    file_store = open_store(tmp_path / "f", "file", identity=identity)
    assert isinstance(file_store, FileLog)
    file_store.close()
    sqlite_store = open_store(tmp_path / "s", "sqlite", identity=identity)
    assert isinstance(sqlite_store, SqliteLog)
    sqlite_store.close()
    with pytest.raises(BackendMismatch):
        open_store(tmp_path / "f", "sqlite", identity=identity)
    with pytest.raises(ValueError, match="unknown storage backend"):
        open_store(tmp_path / "x", "rocks", identity=identity)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "missing", identity=identity, create=False)


@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_create_false_never_makes_a_store_where_one_is_missing(
    tmp_path: Path, backend: str
) -> None:
    """A node that was a member must not quietly start over: with create=False a missing store
    (its directory present, its log deleted) is MissingStore, and nothing is created."""
    identity = b"c/node-1"
    store = open_store(tmp_path, backend, identity=identity)  # type: ignore[arg-type]
    store.write([Promised(Ballot(3, 1))])
    store.close()
    for name in ("paxos.log", "paxos.sqlite", "paxos.sqlite-wal", "paxos.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(MissingStore):
        open_store(tmp_path, backend, identity=identity, create=False)  # type: ignore[arg-type]
    assert not (tmp_path / "paxos.log").exists() and not (tmp_path / "paxos.sqlite").exists()
