"""Catching up: how a replica that lacks chosen values gets them from a peer.

Theory of operation. A follower learns the commit point from the leader's Accepts, Heartbeats
and Commits. Where it accepted a slot in the leader's own ballot, its value is the chosen one (a
leader proposes one value per slot and ballot); any other slot below the commit point it asks
for with CatchUp, once per `catchup_timeout_ticks` (a lost request is asked again at the
leader's next heartbeat; a leader that lags behind its peers' snapshots asks again on its own
timer, `retry`). The peer answers with Entries (chosen values, bounded by `catchup_slots_max`
and `catchup_bytes_max`; the values of its last snapshot interval are retained for this,
learner.py), or, when it has truncated those slots into a snapshot, with the snapshot, one
SnapshotInstall chunk of `snapshot_chunk_bytes` per CatchUp: each CatchUp names the snapshot and
how many of its bytes have arrived, so a lost chunk is asked for again, and a sender whose
snapshot moved on starts the new one from byte 0. Neither side holds a snapshot in memory: the
sender's host reads each chunk from its snapshot file, the receiver's host appends it to a
staged file (ready.py, `SnapshotWork`). A snapshot that arrived whole is checked and installed
(snapshots.py: the host restores the state machine off the turn loop), and catching up goes on
from the slot after it.

Values learned here go to the learner, never to the acceptor log: an acceptor only ever
reports what it accepted itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paxosd.core.multi import snapshots
from paxosd.core.multi.messages import CatchUp, Entries, SnapshotInstall, Stale
from paxosd.core.multi.ready import SnapshotChunk
from paxosd.core.multi.records import Snapshot
from paxosd.core.types import Ballot, NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica


@dataclass(slots=True)
class IncomingSnapshot:
    """A snapshot arriving in chunks (its bytes go to the host's staged file)."""

    slot: int
    total_bytes: int
    checksum: bytes
    received_bytes: int = 0


@dataclass(slots=True)
class Catchup:
    """One replica's catching up: when it may ask again, how far it is heading, and the
    snapshot arriving, if any."""

    ticks_left: int = 0
    target: int | None = None  # the commit point a catch-up is heading for
    source: NodeId | None = None  # the peer asked last
    incoming: IncomingSnapshot | None = None

    def tick(self) -> None:
        if self.ticks_left > 0:
            self.ticks_left -= 1

    def ask(self, replica: Replica, source: NodeId | None, target: int) -> None:
        """Ask `source` for the chosen values we lack (once per catch-up timeout; not while a
        snapshot is being installed: that is what we asked for). A catch-up under way
        heads for the highest target it was given, asked or not."""
        if self.target is not None and target > self.target:
            self.target = target
        if (
            source is None
            or source == replica.node_id
            or self.ticks_left > 0
            or replica.snapshots.installing is not None
        ):
            return
        learner = replica.learner
        if self.target is None:
            replica.out.note("catchup_started", from_slot=learner.chosen_upto + 1, to=target)
        self.target = max(target, self.target or 0)
        self.source = source
        self.ticks_left = replica.config.catchup_timeout_ticks
        incoming = self.incoming
        replica.out.send(
            source,
            CatchUp(
                from_slot=learner.chosen_upto + 1,
                snapshot_slot=incoming.slot if incoming else 0,
                snapshot_offset=incoming.received_bytes if incoming else 0,
            ),
        )

    def retry(self, replica: Replica) -> None:
        """A leader that lacks chosen slots (truncated into its peers' snapshots) asks again,
        the next peer each time, until it has them: nothing it proposes is applied before.
        (A follower asks again at its leader's next heartbeat.)"""
        peers = replica.peers
        if self.target is None or self.ticks_left > 0 or not peers:
            return
        last = peers.index(self.source) if self.source in peers else -1
        self.ask(replica, peers[(last + 1) % len(peers)], self.target)

    def reached(self, replica: Replica) -> None:
        """The chosen point moved: note when it reached the catch-up's target."""
        target = self.target
        if target is not None and replica.learner.chosen_upto >= target:
            self.target = None
            replica.out.note("catchup_finished", chosen_upto=replica.learner.chosen_upto)


def learn_commit(replica: Replica, ballot: Ballot, commit: int) -> None:
    """Slots up to `commit` are chosen; where we accepted in the same ballot, our value is the
    chosen one. Anything else we lack, we ask the leader for."""
    learner = replica.learner
    if commit <= learner.chosen_upto:
        return
    entries = replica.acceptor.entries
    slot = learner.chosen_upto + 1
    while slot <= commit:
        if not learner.knows(slot):
            entry = entries.get(slot)
            if entry is None or entry[0] != ballot:
                break
            learner.learn(slot, entry[1])
        slot += 1
    replica.advance()
    if learner.chosen_upto < commit:
        replica.catchup.ask(replica, replica.leader_hint, commit)


def on_catchup(replica: Replica, src: NodeId, msg: CatchUp) -> None:
    if replica.configuration.epoch > 0:
        # The asker may lag behind a membership change, and jump over its stop with a
        # snapshot: it then learns the epoch it lands in from this (epochs.py).
        replica.out.send(src, Stale(configuration=replica.configuration))
    lead = replica.leading
    ballot = lead.ballot if lead is not None else replica.acceptor.promised
    if ballot is None:
        return
    learner = replica.learner
    config = replica.config
    snapshot = learner.snapshot
    if (
        snapshot is not None
        and msg.from_slot <= snapshot.slot
        and (msg.snapshot_slot == snapshot.slot or not learner.keeps(msg.from_slot))
    ):
        offset = msg.snapshot_offset if msg.snapshot_slot == snapshot.slot else 0
        if offset >= snapshot.size_bytes:
            offset = 0
        chunk = SnapshotChunk(
            dst=src,
            ballot=ballot,
            slot=snapshot.slot,
            offset=offset,
            length=min(config.snapshot_chunk_bytes, snapshot.size_bytes - offset),
            total_bytes=snapshot.size_bytes,
            checksum=snapshot.checksum,
        )
        replica.out.snapshot_work(chunk_out=chunk)
        return
    entries = learner.values(msg.from_slot, config.catchup_slots_max, config.catchup_bytes_max)
    if entries:
        reply = Entries(ballot=ballot, entries=tuple(entries), commit=learner.chosen_upto)
        replica.out.send(src, reply)


def on_entries(replica: Replica, src: NodeId, msg: Entries) -> None:
    replica.catchup.ticks_left = 0
    learner = replica.learner
    for slot, batch in msg.entries:
        learner.learn(slot, batch)
    replica.advance()
    if learner.chosen_upto < msg.commit:
        replica.catchup.ask(replica, src, msg.commit)


def on_snapshot(replica: Replica, src: NodeId, msg: SnapshotInstall) -> None:
    catchup = replica.catchup
    if catchup.source is not None and src != catchup.source:
        # A chunk from a peer asked before the one asked last (a late answer, or a leader's
        # retry moved on): taking it would start that peer's snapshot over the one arriving,
        # and two peers whose snapshots differ, answering in turn, would restart each other
        # forever (a snapshot of many chunks never completes). The peer asked last answers.
        return
    catchup.ticks_left = 0
    if msg.slot <= replica.learner.chosen_upto or replica.snapshots.installing is not None:
        return
    incoming = catchup.incoming
    if msg.offset == 0:
        if msg.total_bytes > replica.config.snapshot_bytes_max:
            replica.out.note("snapshot_refused", src=src, slot=msg.slot, reason="too large")
            return
        incoming = catchup.incoming = IncomingSnapshot(msg.slot, msg.total_bytes, msg.checksum)
    if incoming is None or (incoming.slot, incoming.total_bytes, incoming.checksum) != (
        msg.slot,
        msg.total_bytes,
        msg.checksum,
    ):
        # Another snapshot than the one arriving (the peer asked last moved on to a newer
        # one): start over with its snapshot, from byte 0.
        catchup.incoming = None
        catchup.ask(replica, src, msg.slot)
        return
    if msg.offset != incoming.received_bytes or not msg.data:
        return  # a duplicate or a chunk the sender could not read: the timer asks again
    replica.out.snapshot_work(chunk_in=msg)
    incoming.received_bytes += len(msg.data)
    if incoming.received_bytes < incoming.total_bytes:
        catchup.ask(replica, src, msg.slot)  # the next chunk
        return
    catchup.incoming = None
    snapshot = Snapshot(incoming.slot, incoming.total_bytes, incoming.checksum)
    snapshots.install(replica, snapshot, src)
