"""Snapshots: the state after some slot, so the log before it can go. The core decides; the
host does every byte of I/O, off the turn loop (ready.py, `SnapshotWork`).

Theory of operation. Every `snapshot_every_slots` applied slots the replica asks for a
snapshot: it takes a view of the state machine (`Machine.snapshot_view`, cheap, on the loop)
and hands it over in `Ready` with the slot. The host writes the view to a snapshot file in a
worker thread while the replica goes on applying, makes the file durable (storage/
snapshots.py), and reports it (`snapshot_saved`). Only then does the replica persist a
`Snapshot(slot, size_bytes, checksum)` record naming the file, and forget the log up to the
slot (its acceptor entries and chosen values: a peer that needs them gets the snapshot). The
host removes older snapshot files only once that record is durable. So:

- no Snapshot record before its file is durable (a crash in between leaves an unnamed file,
  removed at the next start, and the log as it was);
- no log truncation on disk before the record is durable (the store drops the entries a
  record covers when it folds the record in; in memory the entries go at once, but nothing
  that reveals it leaves before the turn's sync);
- a node restarting from its own snapshot loads the file the record names (its size and
  checksum checked; a missing or damaged file is refused like a damaged log) and lands at
  the record's slot.

A snapshot a peer sends (catchup.py) arrives in chunks into a staged file; once whole the host
checks it against the sender's size and checksum, restores a state machine from it in a
worker thread, and reports it (`snapshot_restored`); the replica swaps the machine in and
persists the record, as for its own. One snapshot is written or installed at a time, and a
failed one (a full disk, a damaged transfer) is noted and tried again later, never fatal:
the log simply stays longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paxosd.core.multi.learner import Machine
from paxosd.core.multi.records import Snapshot
from paxosd.core.types import NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica


@dataclass(slots=True)
class Snapshots:
    """One replica's snapshot work in progress."""

    taking: int | None = None  # the slot of its own snapshot the host is writing
    installing: Snapshot | None = None  # a peer's snapshot the host is restoring ...
    source: NodeId | None = None  # ... which came from this peer
    next_at: int = 0  # after a failed write, the applied slot to try again at


def maybe_take(replica: Replica) -> None:
    """Ask for a snapshot once `snapshot_every_slots` were applied since the last one."""
    state, learner = replica.snapshots, replica.learner
    if (
        state.taking is not None
        or learner.applied - learner.snapshot_slot < replica.config.snapshot_every_slots
        or learner.applied < state.next_at
    ):
        return
    state.taking = learner.applied
    replica.out.snapshot_work(take=(learner.applied, learner.machine.snapshot_view()))


def saved(replica: Replica, snapshot: Snapshot) -> None:
    """The host made the snapshot file durable: name it in the log, and forget what it covers."""
    state = replica.snapshots
    assert state.taking == snapshot.slot, "a snapshot this replica asked for"
    state.taking = None
    if snapshot.slot <= replica.learner.snapshot_slot:
        return  # a peer's newer snapshot was installed meanwhile: this file is garbage
    replica.learner.recorded(snapshot)
    _record(replica, snapshot)
    replica.out.note("snapshot_taken", slot=snapshot.slot, bytes=snapshot.size_bytes)


def install(replica: Replica, snapshot: Snapshot, source: NodeId) -> None:
    """A peer's snapshot arrived whole: have the host check and restore it."""
    state = replica.snapshots
    assert state.installing is None
    state.installing, state.source = snapshot, source
    replica.out.snapshot_work(install=snapshot)


def restored(replica: Replica, snapshot: Snapshot, machine: Machine) -> None:
    """The host restored a state machine from a peer's snapshot: swap it in, name the file in
    the log, and catch up on whatever chosen slots lie beyond it."""
    state = replica.snapshots
    assert state.installing == snapshot, "the snapshot this replica asked to install"
    source, state.installing, state.source = state.source, None, None
    learner = replica.learner
    if snapshot.slot <= learner.chosen_upto:  # learned meanwhile from the log: not needed
        replica.out.note("snapshot_refused", slot=snapshot.slot, reason="no longer newer")
        return
    learner.install(snapshot, machine)
    _record(replica, snapshot)
    replica.out.note(
        "snapshot_installed", src=source, slot=snapshot.slot, bytes=snapshot.size_bytes
    )
    replica.advance()
    target = replica.catchup.target  # None once reached: the snapshot was all it lacked
    if target is not None:
        replica.catchup.ask(replica, replica.leader_hint or source, target)


def failed(replica: Replica, slot: int, reason: str) -> None:
    """Writing this node's snapshot, or installing a peer's, failed: note it, try later."""
    state = replica.snapshots
    if state.installing is not None and state.installing.slot == slot:
        state.installing = state.source = None
        replica.out.note("snapshot_refused", slot=slot, reason=reason)
        return
    assert state.taking == slot, "a snapshot this replica asked for"
    state.taking = None
    state.next_at = replica.learner.applied + replica.config.snapshot_every_slots
    replica.out.note("snapshot_failed", slot=slot, reason=reason)


def _record(replica: Replica, snapshot: Snapshot) -> None:
    replica.acceptor.truncate(snapshot.slot)
    replica.out.persist([snapshot])
    replica.out.snapshot_work(recorded=snapshot)
