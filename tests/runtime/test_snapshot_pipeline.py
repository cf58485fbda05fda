"""The snapshot pipeline through the one driver (runtime/driver.py): the order of its steps is
what makes a snapshot safe across a crash at any instant.

- No Snapshot record before its file is durable.
- No log truncation (on disk) and no removal of the older file before the record is durable.
- A restart from a node's own snapshot lands at the slot it was taken at, with its state.
- A peer's snapshot is staged, checked and restored off the turn loop, then recorded.
- Failures (a full disk, a damaged transfer) are noted and leave everything as it was."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.messages import Heartbeat, SnapshotInstall
from paxosd.core.multi.records import Snapshot
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Ballot
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.recovery import recover
from paxosd.service import Get, Put, Request, StateMachine, Value, encode
from paxosd.storage import MemoryLog
from paxosd.storage.snapshots import MemorySnapshots

from .test_driver import Recorder

every = 4


def single(io: Recorder | None = None, **config: Any) -> tuple[Driver, Recorder]:
    """A one-node cluster: it leads and chooses on its own, so a test drives every slot."""
    io = io or Recorder()
    machine, recovered = recover(io.disk, io.disk.load(), StateMachine.restore, StateMachine)
    engine = EngineConfig(**{"snapshot_every_slots": every, **config})
    replica = Replica(
        1, Configuration((1,)), random.Random(1), engine, machine, recovered.records()
    )
    options = DriverOptions(request_timeout_ms=1000, restore=StateMachine.restore)
    driver = Driver(replica, io, io, io, io, options)  # type: ignore[arg-type]
    while not driver.replica.status().is_leader:
        driver.tick()
        driver.end_turn()
        io.settle()
    return driver, io


def write(driver: Driver, io: Recorder, seq: int) -> None:
    request = Request(client_id="c", seq=seq, op=Put(key=f"k{seq}", value=seq))
    driver.submit_write(("c", seq), encode(request), f"w{seq}", retry_safe=True)
    driver.end_turn()
    io.settle()


def writes_until_a_snapshot_is_asked(driver: Driver, io: Recorder, first: int = 1) -> int:
    seq = first
    while not io.pending_work:
        write(driver, io, seq)
        seq += 1
    return seq


def test_no_snapshot_record_before_its_file_is_durable() -> None:
    driver, io = single()
    writes_until_a_snapshot_is_asked(driver, io)
    slot = driver.replica.snapshots.taking
    assert slot is not None
    assert io.disk.load().snapshot is None and io.disk.snapshots.slots() == []
    driver.end_turn()  # a turn while the file is written: still nothing names it
    io.settle()
    assert io.disk.load().snapshot is None
    io.finish_work()  # the file is durable now (MemorySnapshots.save returns when it is)
    assert io.disk.snapshots.slots() == [slot]
    driver.end_turn()
    recorded = io.disk.load().snapshot
    assert isinstance(recorded, Snapshot) and recorded.slot == slot
    assert [kind for kind, _ in io.log].index("background done") < len(io.log) - 1
    assert "snapshot_taken" in [n.event for n in io.notes]


def test_no_truncation_and_no_older_file_removed_before_the_record_is_durable() -> None:
    driver, io = single()
    seq = writes_until_a_snapshot_is_asked(driver, io)
    io.finish_work()
    driver.end_turn()
    io.settle()
    first = io.disk.load().snapshot
    assert isinstance(first, Snapshot)
    seq = writes_until_a_snapshot_is_asked(driver, io, seq)
    io.finish_work()
    second = driver.replica.snapshots  # the second file is durable; its record is not yet
    assert second.taking is None
    driver.end_turn()  # writes the record; its sync has not returned
    assert io.pending_sync is not None
    assert io.disk.snapshots.slots()[0] == first.slot, "the older file stays until then"
    crashed = MemoryLog(b"test/node-1", image=io.disk.image())  # a crash before the sync
    after_crash = crashed.load()
    assert after_crash.snapshot == first, "unsynced: the record is not there ..."
    assert all(slot in after_crash.accepted for slot in range(first.slot + 1, every + 1)), (
        "... and neither is the truncation of the entries it covers"
    )
    io.finish_sync()
    newest = io.disk.load().snapshot
    assert isinstance(newest, Snapshot) and newest.slot > first.slot
    assert io.disk.snapshots.slots() == [newest.slot], "the older file goes once it is"
    assert not [slot for slot in io.disk.load().accepted if slot <= newest.slot]


def test_a_restart_from_its_own_snapshot_lands_at_the_same_slot_with_the_same_state() -> None:
    driver, io = single()
    seq = writes_until_a_snapshot_is_asked(driver, io)
    io.finish_work()
    driver.end_turn()
    io.settle()
    taken = io.disk.load().snapshot
    assert isinstance(taken, Snapshot)
    write(driver, io, seq)  # one more, in the log above the snapshot
    before = driver.replica.status()
    io.disk.crash()  # the process dies; what was synced survives
    restarted, io2 = single(_reopened(io))
    status = restarted.replica.status()
    assert status.snapshot_slot == taken.slot == restarted.replica.learner.snapshot_slot
    assert status.applied >= before.applied
    for n in range(1, seq + 1):
        restarted.submit_read(Get(key=f"k{n}"), f"r{n}")
    for _ in range(5):
        restarted.tick()
        restarted.end_turn()
        io2.settle()
    answers = dict(io2.answers)
    assert all(isinstance(answers[f"r{n}"], Value) for n in range(1, seq + 1))
    assert [answers[f"r{n}"].value for n in range(1, seq + 1)] == list(range(1, seq + 1))


def _reopened(io: Recorder) -> Recorder:
    again = Recorder()
    again.disk = io.disk
    return again


def test_a_failed_snapshot_write_is_noted_and_tried_again_later() -> None:
    driver, io = single()
    seq = writes_until_a_snapshot_is_asked(driver, io)
    slot = driver.replica.snapshots.taking
    _, done = io.pending_work.pop()
    done(OSError("No space left on device"))
    driver.end_turn()
    io.settle()
    (failed,) = [n for n in io.notes if n.event == "snapshot_failed"]
    assert dict(failed.fields)["slot"] == slot and "No space" in dict(failed.fields)["reason"]
    assert io.disk.load().snapshot is None and io.disk.snapshots.slots() == []
    for n in range(seq, seq + every - 1):
        write(driver, io, n)
        assert not io.pending_work, "not again at once"
    writes_until_a_snapshot_is_asked(driver, io, seq + every)
    io.finish_work()
    driver.end_turn()
    assert io.disk.load().snapshot is not None


def _peer_snapshot(keys: int) -> tuple[Snapshot, MemorySnapshots]:
    """A peer's snapshot file: a state machine with `keys` keys, as of slot 50."""
    machine = StateMachine()
    for n in range(keys):
        request = Request(client_id="c", seq=n + 1, op=Put(key=f"k{n}", value=n))
        machine.apply((n + 1) << 16, encode(request))
    files = MemorySnapshots()
    return files.save(50, machine.snapshot_view().write), files


def _chunks(snapshot: Snapshot, files: MemorySnapshots, size: int) -> list[SnapshotInstall]:
    return [
        SnapshotInstall(
            ballot=Ballot(1, 1),
            slot=snapshot.slot,
            offset=offset,
            total_bytes=snapshot.size_bytes,
            checksum=snapshot.checksum,
            data=files.read(snapshot.slot, offset, size),
        )
        for offset in range(0, snapshot.size_bytes, size)
    ]


def test_a_peers_snapshot_is_staged_restored_off_the_loop_then_recorded() -> None:
    from .test_driver import make

    snapshot, source = _peer_snapshot(keys=40)
    driver, io = make(node=2)
    driver.deliver(1, Heartbeat(ballot=Ballot(1, 1), commit=50, read_round=1))
    driver.end_turn()
    io.settle()
    for chunk in _chunks(snapshot, source, 300):
        driver.deliver(1, chunk)
        driver.end_turn()
        io.settle()
    assert io.disk.snapshots.slots() == [], "staged, not yet a snapshot"
    assert len(io.pending_work) == 1 and driver.replica.status().applied == 0
    assert io.disk.load().snapshot is None
    io.finish_work()  # checked and restored in the background; then handed to the replica
    driver.end_turn()
    io.settle()
    status = driver.replica.status()
    assert status.applied == status.snapshot_slot == 50
    assert io.disk.load().snapshot == snapshot and io.disk.snapshots.slots() == [50]
    assert "snapshot_installed" in [n.event for n in io.notes]
    read = driver.replica.learner.machine.read(Get(key="k39"))
    assert isinstance(read, Value) and read.value == 39


def test_a_snapshot_damaged_on_the_way_is_refused_and_nothing_changes() -> None:
    from .test_driver import make

    snapshot, source = _peer_snapshot(keys=10)
    driver, io = make(node=2)
    driver.deliver(1, Heartbeat(ballot=Ballot(1, 1), commit=50, read_round=1))
    chunks = _chunks(snapshot, source, 10_000)
    (chunk,) = chunks
    damaged = bytearray(chunk.data)
    damaged[len(damaged) // 2] ^= 1
    driver.deliver(1, dataclasses.replace(chunk, data=bytes(damaged)))
    driver.end_turn()
    io.settle()
    io.finish_work()
    driver.end_turn()
    io.settle()
    assert "snapshot_refused" in [n.event for n in io.notes]
    assert driver.replica.status().applied == 0 and io.disk.load().snapshot is None
    assert io.disk.snapshots.slots() == []


def test_in_a_one_node_cluster_no_answer_leaves_before_the_turns_sync() -> None:
    """With one node, the leader's own Accept chooses the slot in the very turn that writes
    it: the write is applied and answered by that turn. Its answer (and a read's) must still
    wait for the turn's sync, or a crash could forget an acknowledged write."""
    driver, io = single(snapshot_every_slots=1000)
    request = Request(client_id="c", seq=1, op=Put(key="x", value=1))
    driver.submit_write(("c", 1), encode(request), "w1", retry_safe=True)
    driver.end_turn()
    assert io.pending_sync is not None, "the answering turn has records"
    assert io.answers == [], "no answer before the sync returns"
    io.finish_sync()
    assert [token for token, _ in io.answers] == ["w1"]
    driver.submit_read(Get(key="x"), "r1")
    driver.submit_write(
        ("c", 2),
        encode(Request(client_id="c", seq=2, op=Put(key="y", value=2))),
        "w2",
        retry_safe=True,
    )
    driver.end_turn()
    if io.pending_sync is not None:
        assert [token for token, _ in io.answers] == ["w1"]
        io.finish_sync()
    assert {token for token, _ in io.answers} >= {"w1", "w2"}
