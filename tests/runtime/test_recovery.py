"""A host's start (runtime/recovery.py): the state machine from the snapshot the store names;
a store written before snapshot files still loads, and moves its snapshot to a file once."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import InlineSnapshot, Snapshot
from paxosd.core.multi.replica import Replica
from paxosd.runtime.recovery import recover
from paxosd.service import Get, StateMachine, Value
from paxosd.storage import CorruptLog, FileLog, MemoryLog, make_identity
from paxosd.storage.snapshots import DamagedSnapshot

OLD_STORE = Path(__file__).parent.parent / "data" / "stores" / "inline-snapshot"


def test_a_store_with_an_inline_snapshot_loads_and_moves_it_to_a_file(tmp_path: Path) -> None:
    shutil.copy(OLD_STORE / "paxos.log", tmp_path / "paxos.log")
    store = FileLog(tmp_path, make_identity("old-cluster", 1))
    try:
        recovered = store.load()
        assert isinstance(recovered.snapshot, InlineSnapshot) and recovered.snapshot.slot == 20
        machine, recovered = recover(store, recovered, StateMachine.restore, StateMachine)
        assert isinstance(recovered.snapshot, Snapshot) and recovered.snapshot.slot == 20
        assert store.snapshots.slots() == [20]
        assert store.load().snapshot == recovered.snapshot, "durable before the replica runs"
        replica = Replica(
            1, Configuration((1, 2, 3)), random.Random(0), EngineConfig(), machine,
            recovered.records(),
        )  # fmt: skip
        status = replica.status()
        assert status.snapshot_slot == status.applied == 20 and status.promised is not None
        assert sorted(recovered.accepted) == list(range(21, 27))
        answer = machine.read(Get(key="k19"))
        assert isinstance(answer, Value) and answer.value == {"n": 19}
    finally:
        store.close()
    reopened = FileLog(tmp_path, make_identity("old-cluster", 1))  # the next start: no move
    try:
        again, recovered = recover(reopened, reopened.load(), StateMachine.restore, StateMachine)
        assert isinstance(recovered.snapshot, Snapshot) and again.snapshot() == machine.snapshot()
    finally:
        reopened.close()


def test_a_missing_or_damaged_snapshot_file_is_refused_like_a_damaged_log() -> None:
    store = MemoryLog(b"test/node-1")
    record = store.snapshots.save(5, StateMachine().snapshot_view().write)
    store.write([record])
    store.sync()
    store.snapshots.damage(5)
    with pytest.raises(CorruptLog) as damaged:
        recover(store, store.load(), StateMachine.restore, StateMachine)
    assert isinstance(damaged.value, DamagedSnapshot) and "slot 5" in str(damaged.value)
    store.snapshots.keep_only(None)
    with pytest.raises(DamagedSnapshot, match="missing"):
        recover(store, store.load(), StateMachine.restore, StateMachine)


def test_files_no_record_names_are_removed_at_start() -> None:
    store = MemoryLog(b"test/node-1")
    kept = store.snapshots.save(5, StateMachine().snapshot_view().write)
    store.snapshots.save(9, StateMachine().snapshot_view().write)  # written, never recorded
    store.write([kept])
    store.sync()
    recover(store, store.load(), StateMachine.restore, StateMachine)
    assert store.snapshots.slots() == [5]


def test_snapshot_work_runs_with_the_collector_paused_and_freezes_what_survives() -> None:
    """The node's snapshot thread: no cycle collection walks a half-restored state machine
    while the event loop waits, and the state it leaves is not walked by later ones."""
    import gc

    from paxosd.runtime.node import collector_paused

    seen: list[bool] = []
    frozen = gc.get_freeze_count()
    try:
        kept = collector_paused(lambda: (seen.append(gc.isenabled()), [object()])[1])
        assert seen == [False] and gc.isenabled()
        assert gc.get_freeze_count() > frozen and kept
        frozen = gc.get_freeze_count()
        with pytest.raises(OSError):
            collector_paused(_failing)
        assert gc.isenabled(), "a failed write leaves the collector running"
        assert gc.get_freeze_count() == frozen, "a failed restore's garbage is not frozen"
    finally:
        gc.unfreeze()


def _failing() -> None:
    half_built: list[object] = []
    half_built.append(half_built)  # a cycle, as a traceback makes with a half-built machine
    raise OSError("disk full")
