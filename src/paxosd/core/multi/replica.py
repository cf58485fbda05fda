"""A Multi-Paxos replica: the acceptor, the leader (distinguished proposer) and the learner of
one node, composed as in "Paxos Made Moderately Complex".

Theory of operation.

Slots. The log is a sequence of slots; each slot holds a batch of opaque commands (bytes) and
is decided by its own instance of Paxos. The learner (learner.py) applies slots strictly in
order to a deterministic state machine; `chosen_upto` is the highest slot below which every
slot is known chosen.

Leadership. A node that hears no leader for a randomized election timeout asks its peers
first whether they would follow it (PreVote), and only then becomes a candidate: it picks a
ballot higher than any it has seen and runs phase 1 ONCE for every slot from `chosen_upto + 1`
on (Prepare / Promise). From a quorum of promises it takes, per slot, the value of the highest
accepted ballot and proposes it again in its own ballot; slots nobody reported are filled with
no-ops, so no gap stays open. If there was nothing to finish, it proposes one no-op: a leader
must get something chosen in its own ballot before it serves reads. From then on each batch
needs one round trip (Accept / Accepted). A leader that meets a higher ballot (a Nack) steps
down and follows; one that stops hearing from a quorum steps down too, so clients look for the
real leader. Role state lives in objects that exist only while the role lasts (leader.py).

Throughput. Client commands queue at the leader (followers forward theirs). Each `ready()` -
the driver calls it once per turn of its event loop - drains the queue into batches capped by
count and bytes, and each batch takes the next slot. Up to `pipeline_slots_max` slots may be in
flight at once. The driver persists a turn's records with one fsync (group commit).

Learning. The leader counts Accepted per slot; a quorum means chosen. Accept and Heartbeat carry
the leader's commit point; a follower that accepted a slot in the leader's ballot knows its value
is the chosen one (a leader proposes one value per slot and ballot), and asks (CatchUp) for any
slot it lacks. Slots below the sender's snapshot come as a SnapshotInstall, in chunks.

Reads without the log (read-index, read_index.py): a read is answered at the leader's chosen
point once a quorum has confirmed, after the read arrived, that the leader still leads.

Durability. Only acceptor state (promise, accepted entries) and snapshots are persisted;
everything else is rebuilt on restart by phase 1 and catch-up. Every record MUST be durable
BEFORE the message that reveals it is sent (ready.py states the driver contract). One kind of
message may leave early: the leader's own Accepts, so that the followers' fsyncs overlap the
leader's (Raft thesis 10.2.1). An Accept is the proposer's request, not a vote, and its commit
point is cut to `durable_commit`, what an earlier `synced()` confirmed. The leader's own vote
for the slot is counted at once but cannot make anything chosen before the turn's sync: a
quorum needs a follower's Accepted, which is handled in a later turn. A leader that crashes
before its sync loses its vote, not the Paxos invariant: its promise was made durable before
its Prepare left, so after a restart it can only lead again in a higher ballot.

Ballots. Every ballot a peer sends must be in the protocol's range (core/types.py) and at most
`ballot_round_step_max` rounds above anything this node has seen; anything else is refused
with a note, never promised, so one forged or corrupted frame cannot use up the ballot space.

Amnesia. A node that lost its durable state must not vote: it may have promised a ballot or
accepted a value that a quorum counted, and an empty acceptor would contradict itself. It
rebuilds instead (`Rebuilding` records, see `paxosd node --reinitialize`): it takes no part in
phase 1 or 2, asks EVERY peer for its acceptor state (StateQuery / StateReport) and adopts the
highest promise and, per slot, the highest-ballot acceptance any of them reports; then it
catches up to the highest snapshot any of them has, and only then votes. This is safe because
(1) any ballot it ever promised was first promised, durably, by its own candidate, so the
highest promise among all peers is at least as high; (2) any value chosen with its vote was
also durably accepted by another member of that quorum, at a ballot at least as high, with the
same value (the Paxos invariant), or is covered by that member's snapshot. It needs every peer,
not a quorum: the one peer that holds the proof may be the one missing. A rebuilding peer's
report does not count. Prefer a stalled rebuild to a wrong answer.

Limits. The leader's queue and the forward queue are bounded in commands and bytes
(`Proposal.QUEUE_FULL` past them); Forward, Entries and SnapshotInstall messages are bounded
in bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from paxosd.core.multi.acceptor import AcceptorLog
from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.leader import Campaign, Inflight, Leadership, PreVote
from paxosd.core.multi.learner import Learner, Machine, batch_commands_cap
from paxosd.core.multi.messages import (
    Accept,
    Accepted,
    Ack,
    CatchUp,
    Commit,
    Entries,
    Forward,
    Heartbeat,
    Nack,
    Prepare,
    PreVoteReply,
    Promise,
    ReadIndex,
    ReadIndexReply,
    SnapshotInstall,
    StateQuery,
    StateReport,
)
from paxosd.core.multi.messages import PreVote as PreVoteMessage
from paxosd.core.multi.read_index import ReadIndex as ReadIndexState
from paxosd.core.multi.read_index import RemoteRead
from paxosd.core.multi.ready import (
    Applied,
    Note,
    Proposal,
    ReadDone,
    ReadRefused,
    Ready,
    Role,
    Status,
    note,
)
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Batch, Promised, Rebuilding, Record, Snapshot
from paxosd.core.quorum import Majority
from paxosd.core.types import Ballot, Envelope, NodeId, ballot_round_step_max

NOOP: Batch = ()


@dataclass(slots=True)
class _Output:
    """What the inputs since the last `ready()` produced."""

    records: list[Record] = field(default_factory=list)
    send_now: list[Envelope] = field(default_factory=list)
    send_after_sync: list[Envelope] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    reads: list[ReadDone | ReadRefused] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.records
            or self.send_now
            or self.send_after_sync
            or self.applied
            or self.reads
            or self.notes
        )

    def freeze(self, commit: int) -> Ready:
        return Ready(
            records=tuple(self.records),
            send_now=tuple(self.send_now),
            send_after_sync=tuple(self.send_after_sync),
            applied=tuple(self.applied),
            reads=tuple(self.reads),
            notes=tuple(self.notes),
            commit=commit,
        )


@dataclass(slots=True)
class _Rebuild:
    """A node rebuilding a lost store: the peers' reports, then the snapshot slot to reach."""

    reports: dict[NodeId, StateReport] = field(default_factory=dict)
    query_ticks_left: int = 0
    target: int | None = None  # set once every peer reported
    source: NodeId | None = None  # the peer with the highest snapshot


@dataclass(slots=True)
class _IncomingSnapshot:
    slot: int
    total_bytes: int
    data: bytearray


class Replica:
    """One node of the Multi-Paxos engine (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: EngineConfig,
        machine: Machine,
        restore: Callable[[bytes], Machine],
        durable: Sequence[Record] = (),
    ) -> None:
        assert node_id in members
        assert config.batch_commands_max < batch_commands_cap
        self.node_id = node_id
        self.members = tuple(members)
        self.peers = tuple(m for m in self.members if m != node_id)
        self.quorum = Majority(self.members)
        self.rng = rng
        self.config = config
        self.acceptor = AcceptorLog()
        self.learner = Learner(machine, restore)
        self.leading: Leadership | None = None
        self.campaign: Campaign | None = None
        self.prevote: PreVote | None = None
        self.leader_hint: NodeId | None = None
        self.highest_seen: Ballot | None = None
        self.election_ticks_left = self._election_timeout()
        self.quiet_ticks = 0  # ticks since this node last heard a leader
        self.catchup_ticks_left = 0
        self.catchup_target: int | None = None  # the commit point a catch-up is heading for
        self.catchup_source: NodeId | None = None  # the peer asked last
        self.forward_queue: list[bytes] = []
        self.forward_bytes = 0
        self.remote_reads: dict[int, NodeId] = {}  # read id -> the leader asked
        self.waiting_reads: list[tuple[int, int]] = []  # (read id, index): confirmed, to apply
        self.queries: dict[int, Any] = {}
        self.rebuild: _Rebuild | None = None
        self.incoming_snapshot: _IncomingSnapshot | None = None
        self.durable_commit = 0
        self.elections = 0
        self.refused_ballots = 0
        self._out = _Output()
        for record in durable:
            self._replay(record)
        self.durable_commit = self.learner.chosen_upto

    # -- restart ----------------------------------------------------------------------------

    def _replay(self, record: Record) -> None:
        """Rebuild durable state from one record (in the order they were written)."""
        match record:
            case Promised(ballot=ballot):
                self.acceptor.promise(ballot)
            case AcceptedRecord(slot=slot, ballot=ballot, batch=batch):
                if slot > self.acceptor.snapshot_slot:
                    self.acceptor.promise(ballot)
                    self.acceptor.entries[slot] = (ballot, batch)
            case Snapshot(slot=slot, data=data):
                if self.learner.install(slot, data) is None:
                    self.acceptor.truncate(slot)
            case Rebuilding(active=active):
                self.rebuild = _Rebuild() if active else None

    # -- inputs -------------------------------------------------------------------------------

    def propose(self, command: bytes) -> Proposal:
        """Offer a client command. The leader queues it for the next batch; a follower queues
        it for the leader it knows; with no leader known, or a full queue, it is dropped and
        the caller is told so (and may retry)."""
        lead = self.leading
        if lead is not None:
            if not self._room(len(lead.queue), lead.queue_bytes, len(command)):
                return Proposal.QUEUE_FULL
            lead.queue.append(command)
            lead.queue_bytes += len(command)
            return Proposal.QUEUED
        if self.leader_hint is None or self.leader_hint == self.node_id:
            return Proposal.NO_LEADER
        if not self._room(len(self.forward_queue), self.forward_bytes, len(command)):
            return Proposal.QUEUE_FULL
        self.forward_queue.append(command)
        self.forward_bytes += len(command)
        return Proposal.FORWARDED

    def read(self, read_id: int, query: Any) -> None:
        """Ask for a linearizable read of `query`. It is answered (`ReadDone` in a later
        `Ready`) once leadership is confirmed after this call and the state machine has applied
        the read index; on a follower the leader confirms (ReadIndex) and the follower waits
        until it has applied that far itself. With no leader known it is refused at once."""
        self.queries[read_id] = query
        lead = self.leading
        if lead is None:
            leader = self.leader_hint
            if leader is None or leader == self.node_id:
                self._refuse_read(read_id)
                return
            self.remote_reads[read_id] = leader
            self._send(leader, ReadIndex(read_id=read_id))
            return
        if self.config.variant == "unconfirmed-reads":
            # The planted bug: no confirmation, so a deposed leader serves stale state.
            self.waiting_reads.append((read_id, self.learner.chosen_upto))
            self._answer_reads()
            return
        lead.read_index.request(read_id, self.learner.chosen_upto)

    def tick(self) -> None:
        """One unit of logical time has passed."""
        if self.rebuild is not None:
            self._rebuild_tick(self.rebuild)
        if self.catchup_ticks_left > 0:
            self.catchup_ticks_left -= 1
        lead = self.leading
        if lead is not None:
            self._leader_tick(lead)
            return
        self.quiet_ticks += 1
        if self.rebuild is not None:
            return  # a rebuilding node never campaigns: it could not vote for itself
        self.election_ticks_left -= 1
        if self.election_ticks_left <= 0:
            self._start_prevote()

    def step(self, envelope: Envelope) -> None:
        """Handle one message from a peer."""
        msg = envelope.msg
        if not self._admissible(envelope.src, msg):
            return
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            raise AssertionError(f"unexpected message {msg!r}")
        handler(self, envelope.src, msg)

    # -- output -------------------------------------------------------------------------------

    def ready(self, stamp: bytes | None = None) -> Ready:
        """End of a turn: batch queued commands, then hand over everything produced since the
        last call (see ready.py for what the driver must do with it, in which order).

        `stamp`, if given, is a command the leader puts at the head of every batch: the driver
        passes the leader's log time, so that every command is applied at a log time no earlier
        than the moment it reached the leader."""
        lead = self.leading
        if lead is not None:
            self._propose_batches(lead, stamp)
            if lead.read_index.needs_round():
                self._heartbeat_round(lead)
            if self.learner.chosen_upto > lead.commit_sent and not lead.inflight:
                # The chosen point moved and no Accept is in flight to carry it: tell the
                # followers now, so they apply (and answer their clients) without waiting for
                # the next heartbeat.
                lead.commit_sent = self.learner.chosen_upto
                message = Commit(ballot=lead.ballot, commit=lead.commit_sent)
                for peer in self.peers:
                    self._send(peer, message)
        elif self.forward_queue and self.leader_hint not in (None, self.node_id):
            self._forward(self.leader_hint)
        out, self._out = self._out, _Output()
        return out.freeze(commit=self.learner.chosen_upto)

    def synced(self, ready: Ready) -> None:
        """The driver made `ready`'s records durable (etcd's Advance): early Accepts may from
        now on tell followers the chosen point it carried."""
        self.durable_commit = max(self.durable_commit, ready.commit)

    def has_ready(self) -> bool:
        """Whether `ready()` would hand over anything (or batch anything) now."""
        if self._out:
            return True
        lead = self.leading
        if lead is not None:
            return bool(
                (lead.queue and len(lead.inflight) < self.config.pipeline_slots_max)
                or lead.read_index.needs_round()
                or (self.learner.chosen_upto > lead.commit_sent and not lead.inflight)
            )
        return bool(self.forward_queue) and self.leader_hint not in (None, self.node_id)

    @property
    def leader(self) -> NodeId | None:
        """The leader as `status()` reports it (this node while it leads, None while it
        campaigns), without building the whole status: drivers ask on every proposal."""
        if self.leading is not None:
            return self.node_id
        return None if self.campaign is not None else self.leader_hint

    @property
    def role(self) -> Role:
        if self.leading is not None:
            return Role.LEADER
        return Role.CANDIDATE if self.campaign is not None else Role.FOLLOWER

    @property
    def batch_ballot(self) -> Ballot | None:
        """The ballot under which the next `ready()` forms a batch; None if it forms none (not
        leading, nothing queued, or the pipeline full). The driver stamps log time only then."""
        lead = self.leading
        if lead is None or not lead.queue or len(lead.inflight) >= self.config.pipeline_slots_max:
            return None
        return lead.ballot

    @property
    def log_time_ms(self) -> int:
        """The log time of everything applied here (the state machine's clock)."""
        return self.learner.machine.now_ms

    def status(self) -> Status:
        lead, campaign = self.leading, self.campaign
        role, leader = self.role, self.leader
        if lead is not None:
            ballot: Ballot | None = lead.ballot
        else:
            ballot = campaign.ballot if campaign is not None else None
        machine = self.learner.machine
        return Status(
            node_id=self.node_id,
            role=role,
            leader=leader,
            ballot=ballot,
            promised=self.acceptor.promised,
            highest_seen=self.highest_seen,
            chosen_upto=self.learner.chosen_upto,
            applied=self.learner.applied,
            next_slot=lead.next_slot if lead is not None else self.learner.chosen_upto + 1,
            inflight_slots=len(lead.inflight) if lead is not None else 0,
            queued_commands=len(lead.queue) if lead is not None else 0,
            forward_commands=len(self.forward_queue),
            snapshot_slot=self.acceptor.snapshot_slot,
            elections=self.elections,
            rebuilding=self.rebuild is not None,
            log_time_ms=self.log_time_ms,
            wants_log_time=machine.leases_may_be_live,
        )

    def invariants(self, full: bool = False) -> None:
        """Assert internal consistency; drivers call it after every turn. `full` also walks
        every log entry (its cost grows with the log, so drivers do it now and then)."""
        self.acceptor.invariants(full)
        self.learner.invariants(full)
        assert self.learner.applied >= self.acceptor.snapshot_slot or not self.acceptor.entries
        lead = self.leading
        if lead is not None:
            assert self.campaign is None and self.rebuild is None
            assert lead.ballot.node == self.node_id
            assert self.acceptor.promised is not None and lead.ballot <= self.acceptor.promised
            assert len(lead.inflight) <= self.config.pipeline_slots_max + max(
                0, lead.recovered_upto - self.learner.chosen_upto
            )
            assert len(lead.queue) <= self.config.queue_commands_max
        assert len(self.forward_queue) <= self.config.queue_commands_max

    # -- ballots --------------------------------------------------------------------------

    def _admissible(self, src: NodeId, msg: Any) -> bool:
        """Refuse a message carrying a ballot outside the protocol's range, or one that jumps
        further above everything this node has seen than any peer's ballot can."""
        ballots = _ballots_of(msg)
        if not ballots:
            return True
        known = max((b.round for b in (self.acceptor.promised, self.highest_seen) if b), default=0)
        for ballot in ballots:
            if ballot.in_range and ballot.round <= known + ballot_round_step_max:
                continue
            self.refused_ballots += 1
            if self.refused_ballots & (self.refused_ballots - 1) == 0:  # 1st, 2nd, 4th, ...
                self._note(
                    "ballot_refused",
                    src=src,
                    ballot=ballot,
                    known_round=known,
                    refused=self.refused_ballots,
                )
            return False
        return True

    def _next_ballot(self) -> Ballot | None:
        known = [b.round for b in (self.acceptor.promised, self.highest_seen) if b is not None]
        ballot = Ballot(max(known, default=0) + 1, self.node_id)
        if not ballot.has_successor:
            self._note("ballot_space_exhausted", ballot=ballot)
            return None
        return ballot

    def _see(self, ballot: Ballot) -> None:
        if self.highest_seen is None or ballot > self.highest_seen:
            self.highest_seen = ballot

    # -- election (phase 1) -----------------------------------------------------------------

    def _election_timeout(self) -> int:
        return self.rng.randint(self.config.election_ticks_min, self.config.election_ticks_max)

    def _start_prevote(self) -> None:
        """Ask first whether a quorum would follow us; only then raise our own promise."""
        self.election_ticks_left = self._election_timeout()
        ballot = self._next_ballot()
        if ballot is None:
            return
        self.prevote = PreVote(ballot, {self.node_id})
        if self.quorum.is_phase1_quorum(self.prevote.granted):
            self._start_election()
            return
        for peer in self.peers:
            self._send(peer, PreVoteMessage(ballot=ballot))

    def _sticky(self, src: NodeId) -> bool:
        """Do we still hear a live leader other than `src`? Then we refuse to help `src`
        replace it. It costs nothing in safety and keeps a node that was cut off from
        disrupting the cluster when it comes back."""
        if self.leading is not None:
            return True
        return (
            self.leader_hint not in (None, src)
            and self.quiet_ticks < self.config.election_ticks_min
        )

    def _on_prevote(self, src: NodeId, msg: PreVoteMessage) -> None:
        granted = (
            self.rebuild is None and not self._sticky(src) and self.acceptor.can_promise(msg.ballot)
        )
        self._send(src, PreVoteReply(ballot=msg.ballot, granted=granted))

    def _on_prevote_reply(self, src: NodeId, msg: PreVoteReply) -> None:
        prevote = self.prevote
        if prevote is None or not msg.granted or msg.ballot != prevote.ballot or self.leading:
            return
        prevote.granted.add(src)
        if self.quorum.is_phase1_quorum(prevote.granted):
            self._start_election()

    def _start_election(self) -> None:
        self.prevote = None
        ballot = self._next_ballot()
        if ballot is None:
            return
        self.leader_hint = None
        self.election_ticks_left = self._election_timeout()
        self.elections += 1
        self._note("election_started", ballot=ballot)
        self._persist(self.acceptor.promise(ballot))
        from_slot = self.learner.chosen_upto + 1
        own = Promise(
            ballot=ballot,
            accepted=self.acceptor.report(from_slot),
            snapshot_slot=self.acceptor.snapshot_slot,
            commit=self.learner.chosen_upto,
        )
        self.campaign = Campaign(ballot, {self.node_id: own})
        for peer in self.peers:
            self._send(peer, Prepare(ballot=ballot, from_slot=from_slot))
        self._maybe_win(self.campaign)

    def _on_prepare(self, src: NodeId, msg: Prepare) -> None:
        if self.rebuild is not None:
            return  # it cannot know what it promised before: no answer at all
        if self._sticky(src) or not self.acceptor.can_promise(msg.ballot):
            promised = self.acceptor.promised or msg.ballot
            self._send(src, Nack(ballot=msg.ballot, promised=promised))
            return
        self._see(msg.ballot)
        self._persist(self.acceptor.promise(msg.ballot))
        if self.leading is not None or self.campaign is not None:
            self._step_down(msg.ballot)
        self.election_ticks_left = self._election_timeout()
        promise = Promise(
            ballot=msg.ballot,
            accepted=self.acceptor.report(msg.from_slot),
            snapshot_slot=self.acceptor.snapshot_slot,
            commit=self.learner.chosen_upto,
        )
        self._send(src, promise)

    def _on_promise(self, src: NodeId, msg: Promise) -> None:
        campaign = self.campaign
        if campaign is None or msg.ballot != campaign.ballot:
            return
        campaign.promises[src] = msg
        self._maybe_win(campaign)

    def _maybe_win(self, campaign: Campaign) -> None:
        if not self.quorum.is_phase1_quorum(campaign.promises.keys()):
            return
        ballot = campaign.ballot
        # Per slot, the value of the highest ballot any promise reports.
        merged: dict[int, tuple[Ballot, Batch]] = {}
        chosen_upto = self.learner.chosen_upto
        snapshot_slot = chosen_upto
        for promise in campaign.promises.values():
            snapshot_slot = max(snapshot_slot, promise.snapshot_slot)
            for slot, accepted_ballot, batch in promise.accepted:
                if slot not in merged or accepted_ballot > merged[slot][0]:
                    merged[slot] = (accepted_ballot, batch)
        if snapshot_slot > chosen_upto:
            # Someone truncated slots we never learned: they are chosen; fetch them.
            holder = max(campaign.promises.items(), key=lambda item: item[1].snapshot_slot)[0]
            self.catchup_ticks_left = 0
            self._catch_up(holder, snapshot_slot)  # retried by `_leader_tick` until done
        top = max(merged, default=chosen_upto)
        start = max(chosen_upto, snapshot_slot) + 1
        lead = Leadership(
            ballot=ballot,
            next_slot=start,
            read_index=ReadIndexState(self.quorum, self.peers),
            heard=dict.fromkeys(self.peers, 0),
        )
        self.campaign = None
        self.leading = lead
        self.leader_hint = self.node_id
        self._note("leader_elected", ballot=ballot, from_slot=start)
        self._refuse_remote_reads()  # asked of a leader that is not this node: ask again
        for command in self.forward_queue:  # commands meant for the old leader are ours now
            lead.queue.append(command)
            lead.queue_bytes += len(command)
        self.forward_queue, self.forward_bytes = [], 0
        for slot in range(start, top + 1):
            batch = merged[slot][1] if slot in merged else NOOP
            self._propose_slot(lead, slot, batch)
        if top < start:
            # Nothing to finish: get a no-op chosen in our own ballot before serving reads.
            self._propose_slot(lead, start, NOOP)
        lead.recovered_upto = lead.next_slot - 1

    def _on_nack(self, src: NodeId, msg: Nack) -> None:
        self._see(msg.promised)
        ours = self._own_ballot()
        if ours is not None and msg.promised > ours:
            self._step_down(msg.promised)

    def _own_ballot(self) -> Ballot | None:
        """The ballot this node leads or campaigns with, if any."""
        if self.leading is not None:
            return self.leading.ballot
        return None if self.campaign is None else self.campaign.ballot

    def _step_down(self, higher: Ballot) -> None:
        was = self.status().role
        lead = self.leading
        self.leading = None
        self.campaign = None
        self.prevote = None
        self.leader_hint = higher.node if higher.node != self.node_id else None
        if lead is not None:
            for read in lead.read_index.drop():
                if isinstance(read, RemoteRead):
                    self._send(read.node, ReadIndexReply(read_id=read.read_id, index=-1))
                else:
                    self._refuse_read(read)
            # Queued commands were never proposed: forward them to whoever leads now.
            self.forward_queue.extend(lead.queue)
            self.forward_bytes += lead.queue_bytes
        for read_id, _ in self.waiting_reads:
            self._refuse_read(read_id)
        self.waiting_reads = []
        self.election_ticks_left = self._election_timeout()
        self._note("stepped_down", was=was.value, ballot=higher)

    def _follow(self, ballot: Ballot) -> None:
        """A message from a leader in `ballot` (at least our promise): follow it."""
        self._see(ballot)
        ours = self._own_ballot()
        if ours is not None and ballot != ours:
            self._step_down(ballot)
        if self.leading is None:
            if self.leader_hint != ballot.node:
                # Reads the old leader was asked to confirm will not be answered: retry.
                self._refuse_remote_reads()
            self.leader_hint = ballot.node
            self.quiet_ticks = 0
            self.election_ticks_left = self._election_timeout()

    # -- phase 2 ----------------------------------------------------------------------------

    def _room(self, commands: int, size: int, extra: int) -> bool:
        config = self.config
        return commands < config.queue_commands_max and size + extra <= config.queue_bytes_max

    def _propose_batches(self, lead: Leadership, stamp: bytes | None) -> None:
        config = self.config
        while lead.queue and len(lead.inflight) < config.pipeline_slots_max:
            commands: list[bytes] = [] if stamp is None else [stamp]
            size = 0
            while lead.queue and len(commands) < config.batch_commands_max:
                command = lead.queue[0]
                if size and size + len(command) > config.batch_bytes_max:
                    break
                lead.queue.popleft()
                commands.append(command)
                size += len(command)
            lead.queue_bytes -= size
            self._propose_slot(lead, lead.next_slot, tuple(commands))

    def _propose_slot(self, lead: Leadership, slot: int, batch: Batch) -> None:
        lead.next_slot = max(lead.next_slot, slot + 1)
        self._persist(self.acceptor.accept(lead.ballot, slot, batch))
        lead.inflight[slot] = Inflight(batch, {self.node_id})
        self._send_accept(lead, slot, batch, self.peers)
        self._check_chosen(lead, slot)

    def _send_accept(
        self, lead: Leadership, slot: int, batch: Batch, peers: Sequence[NodeId]
    ) -> None:
        """The leader's Accept: early (before this turn's sync) when configured, with a commit
        point no later than what synced turns made durable."""
        early = self.config.early_accepts
        commit = self.learner.chosen_upto
        if early:
            commit = min(commit, self.durable_commit)
        message = Accept(ballot=lead.ballot, slot=slot, batch=batch, commit=commit)
        lead.commit_sent = max(lead.commit_sent, commit)
        out = self._out.send_now if early else self._out.send_after_sync
        out.extend(Envelope(self.node_id, peer, message) for peer in peers)

    def _on_accept(self, src: NodeId, msg: Accept) -> None:
        if self.rebuild is not None:
            self._heard_leader(msg.ballot, msg.commit)
            return
        if not self.acceptor.can_accept(msg.ballot):
            self._refuse(src, msg.ballot)
            return
        self._follow(msg.ballot)
        self._persist(self.acceptor.accept(msg.ballot, msg.slot, msg.batch))
        self._send(src, Accepted(ballot=msg.ballot, slot=msg.slot))
        self._learn_commit(msg.ballot, msg.commit)

    def _refuse(self, src: NodeId, ballot: Ballot) -> None:
        """An Accept or Heartbeat below our promise: tell the sender what we promised."""
        promised = self.acceptor.promised
        if promised is not None:  # else refused for its range alone: nothing to report
            self._send(src, Nack(ballot=ballot, promised=promised))

    def _on_accepted(self, src: NodeId, msg: Accepted) -> None:
        lead = self.leading
        if lead is None or msg.ballot != lead.ballot:
            return
        lead.heard[src] = 0
        proposal = lead.inflight.get(msg.slot)
        if proposal is None:
            return
        proposal.acks.add(src)
        self._check_chosen(lead, msg.slot)

    def _check_chosen(self, lead: Leadership, slot: int) -> None:
        proposal = lead.inflight.get(slot)
        if proposal is None or not self.quorum.is_phase2_quorum(proposal.acks):
            return
        del lead.inflight[slot]
        self.learner.learn(slot, proposal.batch)
        self._advance()

    def _on_forward(self, src: NodeId, msg: Forward) -> None:
        lead = self.leading
        if lead is None:
            return  # the clients behind it will time out and retry
        for command in msg.commands:
            if not self._room(len(lead.queue), lead.queue_bytes, len(command)):
                self._note("forward_dropped", src=src, commands=len(msg.commands))
                return
            lead.queue.append(command)
            lead.queue_bytes += len(command)

    def _forward(self, leader: NodeId) -> None:
        commands: list[bytes] = []
        size = 0
        for command in self.forward_queue:
            if commands and size + len(command) > self.config.forward_bytes_max:
                self._send(leader, Forward(commands=tuple(commands)))
                commands, size = [], 0
            commands.append(command)
            size += len(command)
        if commands:
            self._send(leader, Forward(commands=tuple(commands)))
        self.forward_queue, self.forward_bytes = [], 0

    # -- learning and applying ----------------------------------------------------------------

    def _advance(self) -> None:
        """Apply whatever became contiguous, answer the reads that waited for it, snapshot."""
        applied = self.learner.advance()
        if applied:
            self._out.applied.extend(applied)
        if self.waiting_reads:
            self._answer_reads()
        target = self.catchup_target
        if target is not None and self.learner.chosen_upto >= target:
            self.catchup_target = None
            self._note("catchup_finished", chosen_upto=self.learner.chosen_upto)
        if self.learner.applied - self.acceptor.snapshot_slot >= self.config.snapshot_every_slots:
            self._take_snapshot()

    def _take_snapshot(self) -> None:
        taken = self.learner.take_snapshot(self.config.snapshot_bytes_max)
        if taken is None:
            self._note("snapshot_too_large", slot=self.learner.applied)
            return
        slot, data = taken
        self._persist([Snapshot(slot, data)])
        self.acceptor.truncate(slot)
        self._note("snapshot_taken", slot=slot, bytes=len(data))

    def _learn_commit(self, ballot: Ballot, commit: int) -> None:
        """Slots up to `commit` are chosen; where we accepted in the same ballot, our value is
        the chosen one. Anything else we lack, we ask the leader for."""
        learner = self.learner
        if commit <= learner.chosen_upto:
            return
        slot = learner.chosen_upto + 1
        while slot <= commit:
            if not learner.knows(slot):
                entry = self.acceptor.entries.get(slot)
                if entry is None or entry[0] != ballot:
                    break
                learner.learn(slot, entry[1])
            slot += 1
        self._advance()
        if learner.chosen_upto < commit:
            self._catch_up(self.leader_hint, commit)

    def _catch_up(self, source: NodeId | None, target: int) -> None:
        """Ask `source` for the chosen values we lack (once per catch-up timeout)."""
        if source is None or source == self.node_id or self.catchup_ticks_left > 0:
            return
        if self.catchup_target is None:
            self._note("catchup_started", from_slot=self.learner.chosen_upto + 1, to=target)
        self.catchup_target = max(target, self.catchup_target or 0)
        self.catchup_source = source
        self.catchup_ticks_left = self.config.catchup_timeout_ticks
        incoming = self.incoming_snapshot
        self._send(
            source,
            CatchUp(
                from_slot=self.learner.chosen_upto + 1,
                snapshot_slot=incoming.slot if incoming else 0,
                snapshot_offset=len(incoming.data) if incoming else 0,
            ),
        )

    def _on_catchup(self, src: NodeId, msg: CatchUp) -> None:
        if self.rebuild is not None:
            return
        ballot = self.leading.ballot if self.leading else self.acceptor.promised
        if ballot is None:
            return
        learner = self.learner
        data = learner.snapshot_data
        if msg.from_slot <= learner.snapshot_slot and data is not None:
            offset = msg.snapshot_offset if msg.snapshot_slot == learner.snapshot_slot else 0
            if offset > len(data):
                offset = 0
            chunk = data[offset : offset + self.config.snapshot_chunk_bytes]
            install = SnapshotInstall(
                ballot=ballot,
                slot=learner.snapshot_slot,
                offset=offset,
                total_bytes=len(data),
                data=chunk,
            )
            self._send(src, install)
            return
        config = self.config
        entries = learner.values(msg.from_slot, config.catchup_slots_max, config.catchup_bytes_max)
        if entries:
            self._send(
                src, Entries(ballot=ballot, entries=tuple(entries), commit=learner.chosen_upto)
            )

    def _on_entries(self, src: NodeId, msg: Entries) -> None:
        # Values a peer knows are chosen. They go to the learner, not the acceptor log: an
        # acceptor only ever reports what it accepted itself.
        self.catchup_ticks_left = 0
        for slot, batch in msg.entries:
            self.learner.learn(slot, batch)
        self._advance()
        if self.learner.chosen_upto < msg.commit:
            self._catch_up(src, msg.commit)

    def _on_snapshot(self, src: NodeId, msg: SnapshotInstall) -> None:
        self.catchup_ticks_left = 0
        if msg.slot <= self.learner.chosen_upto:
            return
        incoming = self.incoming_snapshot
        if msg.offset == 0:
            if msg.total_bytes > self.config.snapshot_bytes_max:
                self._note("snapshot_refused", src=src, slot=msg.slot, reason="too large")
                return
            incoming = _IncomingSnapshot(msg.slot, msg.total_bytes, bytearray())
        if (
            incoming is not None
            and incoming.slot == msg.slot
            and incoming.total_bytes == msg.total_bytes
            and msg.offset == len(incoming.data)
        ):
            incoming.data += msg.data
        self.incoming_snapshot = incoming
        if incoming is None or len(incoming.data) < incoming.total_bytes:
            self._catch_up(src, msg.slot)  # the next chunk (or the first one, again)
            return
        self.incoming_snapshot = None
        refused = self.learner.install(incoming.slot, bytes(incoming.data))
        if refused is not None:
            self._note("snapshot_refused", src=src, slot=incoming.slot, reason=refused)
            return
        self.acceptor.truncate(incoming.slot)
        self._persist([Snapshot(incoming.slot, self.learner.snapshot_data or b"")])
        self._note("snapshot_installed", src=src, slot=incoming.slot, bytes=incoming.total_bytes)
        self._advance()
        self._catch_up(src, incoming.slot + 1)

    # -- heartbeats, leadership checks and reads ------------------------------------------

    def _leader_tick(self, lead: Leadership) -> None:
        self.quiet_ticks = 0
        limit = self.config.election_ticks_max
        for peer in self.peers:
            lead.heard[peer] = lead.heard.get(peer, 0) + 1
        alive = [self.node_id, *(p for p in self.peers if lead.heard[p] <= limit)]
        if not self.quorum.is_majority(alive):
            # Cut off from a quorum: nothing we propose can be chosen and no read can be
            # confirmed. Step down so clients go looking for a leader that can serve them.
            self._note("quorum_lost", ballot=lead.ballot, heard=len(alive))
            self._step_down(lead.ballot)
            self.leader_hint = None
            return
        lead.heartbeat_ticks_left -= 1
        if lead.heartbeat_ticks_left <= 0:
            self._heartbeat_round(lead)
        self._retransmit(lead)
        self._retry_catch_up()

    def _retry_catch_up(self) -> None:
        """A leader that lacks chosen slots (truncated into its peers' snapshots) asks again,
        the next peer each time, until it has them: nothing it proposes is applied before.
        (A follower asks again at its leader's next heartbeat.)"""
        if self.catchup_target is None or self.catchup_ticks_left > 0 or not self.peers:
            return
        peers = self.peers
        last = peers.index(self.catchup_source) if self.catchup_source in peers else -1
        self._catch_up(peers[(last + 1) % len(peers)], self.catchup_target)

    def _retransmit(self, lead: Leadership) -> None:
        """Messages get lost: an Accept unanswered for a while goes out again to the acceptors
        that have not answered it."""
        for slot, proposal in lead.inflight.items():
            proposal.age_ticks += 1
            if proposal.age_ticks < self.config.retransmit_ticks:
                continue
            proposal.age_ticks = 0
            missing = [peer for peer in self.peers if peer not in proposal.acks]
            self._send_accept(lead, slot, proposal.batch, missing)

    def _heartbeat_round(self, lead: Leadership) -> None:
        lead.heartbeat_ticks_left = self.config.heartbeat_ticks
        read_round = lead.read_index.start_round()
        commit = self.learner.chosen_upto
        message = Heartbeat(ballot=lead.ballot, commit=commit, read_round=read_round)
        lead.commit_sent = max(lead.commit_sent, commit)
        for peer in self.peers:
            self._send(peer, message)
        self._confirm_reads(lead)  # a one-node cluster confirms on its own

    def _on_heartbeat(self, src: NodeId, msg: Heartbeat) -> None:
        if self.rebuild is not None:
            self._heard_leader(msg.ballot, msg.commit)  # no Ack: it cannot vouch for a promise
            return
        if not self.acceptor.can_accept(msg.ballot):
            self._refuse(src, msg.ballot)
            return
        self._follow(msg.ballot)
        ack = Ack(ballot=msg.ballot, read_round=msg.read_round, applied=self.learner.applied)
        self._send(src, ack)
        self._learn_commit(msg.ballot, msg.commit)

    def _on_commit(self, src: NodeId, msg: Commit) -> None:
        if self.rebuild is not None:
            self._heard_leader(msg.ballot, msg.commit)
        elif self.acceptor.can_accept(msg.ballot):
            self._follow(msg.ballot)
            self._learn_commit(msg.ballot, msg.commit)

    def _on_ack(self, src: NodeId, msg: Ack) -> None:
        lead = self.leading
        if lead is None or msg.ballot != lead.ballot:
            return
        lead.heard[src] = 0
        lead.read_index.ack(src, msg.read_round)
        self._confirm_reads(lead)

    def _confirm_reads(self, lead: Leadership) -> None:
        if self.learner.chosen_upto < lead.recovered_upto:
            lead.read_index.settle()  # confirmed or not, reads wait until recovery is done
            return
        for read, index in lead.read_index.take_confirmed():
            index = max(index, lead.recovered_upto)
            if isinstance(read, RemoteRead):
                self._send(read.node, ReadIndexReply(read_id=read.read_id, index=index))
            else:
                self.waiting_reads.append((read, index))
        self._answer_reads()
        if lead.read_index.needs_round():
            self._heartbeat_round(lead)

    def _answer_reads(self) -> None:
        applied = self.learner.applied
        machine = self.learner.machine
        still: list[tuple[int, int]] = []
        for read_id, index in self.waiting_reads:
            if applied >= index:
                query = self.queries.pop(read_id)
                self._out.reads.append(ReadDone(read_id, machine.read(query)))
            else:
                still.append((read_id, index))
        self.waiting_reads = still

    def _refuse_read(self, read_id: int) -> None:
        self.queries.pop(read_id, None)
        self._out.reads.append(ReadRefused(read_id, self.leader_hint))

    def _refuse_remote_reads(self) -> None:
        for read_id in self.remote_reads:
            self._refuse_read(read_id)
        self.remote_reads = {}

    def _on_read_index(self, src: NodeId, msg: ReadIndex) -> None:
        lead = self.leading
        if lead is None:
            self._send(src, ReadIndexReply(read_id=msg.read_id, index=-1))
            return
        lead.read_index.request(RemoteRead(src, msg.read_id), self.learner.chosen_upto)

    def _on_read_index_reply(self, src: NodeId, msg: ReadIndexReply) -> None:
        if self.remote_reads.pop(msg.read_id, None) is None:
            return
        if msg.index < 0:
            self._refuse_read(msg.read_id)
        else:
            self.waiting_reads.append((msg.read_id, msg.index))
            self._answer_reads()

    # -- amnesia: rebuilding a lost store ------------------------------------------------------

    def _heard_leader(self, ballot: Ballot, commit: int) -> None:
        """A rebuilding node follows a leader only to learn from it, never to vote."""
        self._see(ballot)
        self.leader_hint = ballot.node
        self.quiet_ticks = 0
        if commit > self.learner.chosen_upto:
            self._catch_up(ballot.node, commit)

    def _rebuild_tick(self, rebuild: _Rebuild) -> None:
        if rebuild.target is None:
            rebuild.query_ticks_left -= 1
            if rebuild.query_ticks_left <= 0:
                rebuild.query_ticks_left = self.config.retransmit_ticks
                for peer in self.peers:
                    if peer not in rebuild.reports:
                        self._send(peer, StateQuery())
            return
        if self.learner.chosen_upto >= rebuild.target:
            self._finish_rebuild()
        else:
            self._catch_up(self.leader_hint or rebuild.source, rebuild.target)

    def _on_state_query(self, src: NodeId, msg: StateQuery) -> None:
        if self.rebuild is not None:
            report = StateReport(whole=False, promised=None, accepted=(), snapshot_slot=0)
        else:
            acceptor = self.acceptor
            report = StateReport(
                whole=True,
                promised=acceptor.promised,
                accepted=acceptor.report(acceptor.snapshot_slot + 1),
                snapshot_slot=acceptor.snapshot_slot,
            )
        self._send(src, report)  # after the sync, like every reply: it vouches for state

    def _on_state_report(self, src: NodeId, msg: StateReport) -> None:
        rebuild = self.rebuild
        if rebuild is None or rebuild.target is not None or not msg.whole:
            return
        rebuild.reports[src] = msg
        if set(rebuild.reports) != set(self.peers):
            return
        reports = rebuild.reports.values()
        promised = max((r.promised for r in reports if r.promised is not None), default=None)
        rebuild.target = max(r.snapshot_slot for r in reports)
        rebuild.source = max(rebuild.reports, key=lambda n: rebuild.reports[n].snapshot_slot)
        floor = max(rebuild.target, self.acceptor.snapshot_slot)
        if promised is not None:
            self._persist(self.acceptor.promise(promised))
        adopted = 0
        for report in reports:
            for slot, ballot, batch in report.accepted:
                if slot > floor:
                    records = self.acceptor.adopt(slot, ballot, batch)
                    adopted += len(records)
                    self._persist(records)
        self._note(
            "rebuild_merged",
            promised=promised,
            adopted_slots=adopted,
            catch_up_to=rebuild.target,
        )
        if self.learner.chosen_upto >= rebuild.target:
            self._finish_rebuild()

    def _finish_rebuild(self) -> None:
        self.rebuild = None
        self._persist([Rebuilding(False)])
        self._note("rebuild_finished", chosen_upto=self.learner.chosen_upto)

    # -- plumbing -----------------------------------------------------------------------------

    def _send(self, dst: NodeId, msg: Any) -> None:
        self._out.send_after_sync.append(Envelope(self.node_id, dst, msg))

    def _persist(self, records: list[Record]) -> None:
        self._out.records.extend(records)

    def _note(self, event: str, **fields: Any) -> None:
        self._out.notes.append(note(event, node=self.node_id, **fields))


def _ballots_of(msg: Any) -> tuple[Ballot, ...]:
    """The ballots a message asks this node to act on."""
    match msg:
        case Nack(ballot=ballot, promised=promised):
            return (ballot, promised)
        case StateReport(promised=promised):
            return () if promised is None else (promised,)
        case (
            Prepare()
            | PreVoteMessage()
            | PreVoteReply()
            | Promise()
            | Accept()
            | Accepted()
            | Heartbeat()
            | Commit()
            | Ack()
            | Entries()
            | SnapshotInstall()
        ):
            return (msg.ballot,)
    return ()


# One handler per message type: the whole protocol, as a table.
_HANDLERS: dict[type, Callable[[Replica, NodeId, Any], None]] = {
    Prepare: Replica._on_prepare,
    Promise: Replica._on_promise,
    Nack: Replica._on_nack,
    Accept: Replica._on_accept,
    Accepted: Replica._on_accepted,
    Heartbeat: Replica._on_heartbeat,
    Commit: Replica._on_commit,
    Ack: Replica._on_ack,
    Forward: Replica._on_forward,
    PreVoteMessage: Replica._on_prevote,
    PreVoteReply: Replica._on_prevote_reply,
    ReadIndex: Replica._on_read_index,
    ReadIndexReply: Replica._on_read_index_reply,
    CatchUp: Replica._on_catchup,
    Entries: Replica._on_entries,
    SnapshotInstall: Replica._on_snapshot,
    StateQuery: Replica._on_state_query,
    StateReport: Replica._on_state_report,
}
