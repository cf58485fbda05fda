"""Catching up: how a replica that lacks chosen values gets them from a peer.

Theory of operation. A follower learns the commit point from the leader's Accepts, Heartbeats
and Commits. Where it accepted a slot in the leader's own ballot, its value is the chosen one
(a leader proposes one value per slot and ballot); any other slot below the commit point it
asks for with CatchUp, once per `catchup_timeout_ticks` (a lost request is simply asked
again). The peer answers with Entries (chosen values, bounded by `catchup_slots_max` and
`catchup_bytes_max`), or, when it has truncated those slots into a snapshot, with the
snapshot, one SnapshotInstall chunk of `snapshot_chunk_bytes` per CatchUp: each CatchUp names
the snapshot and how many of its bytes have arrived, so a lost chunk is asked for again, and a
sender whose snapshot moved on starts the new one from byte 0. A snapshot that arrived whole
is installed (replacing the state machine) and catching up goes on from the slot after it.

Values learned here go to the learner, never to the acceptor log: an acceptor only ever
reports what it accepted itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paxosd.core.multi.messages import CatchUp, Entries, SnapshotInstall
from paxosd.core.multi.records import Snapshot
from paxosd.core.types import Ballot, NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica


@dataclass(slots=True)
class IncomingSnapshot:
    """A snapshot arriving in chunks."""

    slot: int
    total_bytes: int
    data: bytearray


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
        """Ask `source` for the chosen values we lack (once per catch-up timeout)."""
        if source is None or source == replica.node_id or self.ticks_left > 0:
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
                snapshot_offset=len(incoming.data) if incoming else 0,
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
    lead = replica.leading
    ballot = lead.ballot if lead is not None else replica.acceptor.promised
    if ballot is None:
        return
    learner = replica.learner
    config = replica.config
    data = learner.snapshot_data
    if msg.from_slot <= learner.snapshot_slot and data is not None:
        offset = msg.snapshot_offset if msg.snapshot_slot == learner.snapshot_slot else 0
        if offset > len(data):
            offset = 0
        chunk = data[offset : offset + config.snapshot_chunk_bytes]
        install = SnapshotInstall(
            ballot=ballot,
            slot=learner.snapshot_slot,
            offset=offset,
            total_bytes=len(data),
            data=chunk,
        )
        replica.out.send(src, install)
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
    catchup.ticks_left = 0
    learner = replica.learner
    if msg.slot <= learner.chosen_upto:
        return
    incoming = catchup.incoming
    if msg.offset == 0:
        if msg.total_bytes > replica.config.snapshot_bytes_max:
            replica.out.note("snapshot_refused", src=src, slot=msg.slot, reason="too large")
            return
        incoming = IncomingSnapshot(msg.slot, msg.total_bytes, bytearray())
    if (
        incoming is not None
        and incoming.slot == msg.slot
        and incoming.total_bytes == msg.total_bytes
        and msg.offset == len(incoming.data)
    ):
        incoming.data += msg.data
    catchup.incoming = incoming
    if incoming is None or len(incoming.data) < incoming.total_bytes:
        catchup.ask(replica, src, msg.slot)  # the next chunk (or the first one, again)
        return
    catchup.incoming = None
    refused = learner.install(incoming.slot, bytes(incoming.data))
    if refused is not None:
        replica.out.note("snapshot_refused", src=src, slot=incoming.slot, reason=refused)
        return
    replica.acceptor.truncate(incoming.slot)
    replica.out.persist([Snapshot(incoming.slot, learner.snapshot_data or b"")])
    replica.out.note("snapshot_installed", src=src, slot=incoming.slot, bytes=incoming.total_bytes)
    replica.advance()
    catchup.ask(replica, src, incoming.slot + 1)
