"""A Multi-Paxos replica: acceptor, leader (distinguished proposer) and learner in one node.

Theory of operation.

Slots. The log is a sequence of slots; each slot holds a batch of opaque commands (bytes) and
is decided by its own instance of Paxos. Slots are applied strictly in order to a deterministic
state machine; `chosen_upto` is the highest slot below which every slot is known chosen.

Leadership. A node that hears no leader for a randomized election timeout becomes a candidate:
it picks a ballot higher than any it has seen and runs phase 1 ONCE for every slot from
`chosen_upto + 1` on (Prepare / Promise). From a quorum of promises it takes, per slot, the value
of the highest accepted ballot and proposes it again in its own ballot; slots nobody reported
are filled with no-ops, so no gap stays open. If there was nothing to finish, it proposes one
no-op: a leader must get something chosen in its own ballot before it serves reads. From then
on each batch needs one round trip (Accept / Accepted). A leader that meets a higher ballot
(a Nack) steps down and follows; one that stops hearing from a quorum steps down too, so
clients look for the real leader.

Throughput. Client commands queue at the leader (followers forward theirs). Each `flush()` -
the driver calls it once per turn of its event loop, with no timer - drains the queue into
batches capped by count and bytes, and each batch takes the next slot. Up to
`pipeline_slots_max` slots may be in flight at once. The driver persists a step's records with
one fsync for all of them (group commit).

Learning. The leader counts Accepted per slot; a quorum means chosen. Accept and Heartbeat carry
the leader's `chosen_upto`; a follower that accepted a slot in the leader's ballot knows its
value is the chosen one, and asks the leader (CatchUp) for any slot it lacks. Slots below the
leader's snapshot come as a SnapshotInstall.

Reads without the log (read-index). A read arriving at the leader is answered at the
current `chosen_upto` once the leader has confirmed, with a quorum of heartbeat acks sent AFTER
the read arrived, that no higher ballot has been promised, and once it has applied that far.
No clocks and no leases: a deposed leader cannot get that quorum.

Durability. Only acceptor state (promise, accepted entries) and snapshots are persisted;
everything else is rebuilt on restart by phase 1 and catch-up. Every record MUST be durable
BEFORE the message that reveals it is sent: the driver syncs a step's `persist` before its
`send`. (The `reply-before-fsync` variant breaks exactly that, on purpose.)
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from paxosd.core.effects import Effects
from paxosd.core.multi.acceptor import AcceptorLog
from paxosd.core.multi.config import EngineConfig
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
    PreVote,
    PreVoteReply,
    Promise,
    ReadIndex,
    ReadIndexReply,
    SnapshotInstall,
)
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Batch, Promised, Record, Snapshot
from paxosd.core.quorum import Majority
from paxosd.core.types import Ballot, Envelope, NodeId

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
NOOP: Batch = ()
batch_shift = 16  # command index = slot << 16 | position in the batch
batch_commands_cap = 1 << batch_shift


class Machine(Protocol):
    """The replicated state machine, as the engine sees it (see paxosd.service)."""

    def apply(self, slot: int, payload: bytes) -> tuple[Any, Any]: ...

    def read(self, query: Any) -> Any: ...

    def snapshot(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Applied:
    """One command applied at `slot`, with the state machine's answer and, if the machine
    reports it (`last_request`), the identity of the client request it answers."""

    slot: int
    payload: bytes
    result: Any
    request: Any = None


@dataclass(frozen=True, slots=True)
class _Remote:
    """A read a follower asked the leader to confirm."""

    node: NodeId
    read_id: Any


@dataclass(slots=True)
class _Proposal:
    batch: Batch
    acks: set[NodeId]
    age_ticks: int = 0


class Replica:
    """One node of the Multi-Paxos engine."""

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
        self.machine = machine
        self._restore_machine = restore
        self.acceptor = AcceptorLog()
        self.role = FOLLOWER
        self.ballot: Ballot | None = None  # the ballot we lead or campaign with
        self.leader_hint: NodeId | None = None
        self.highest_seen: Ballot | None = None
        self.chosen_upto = 0
        self.applied = 0
        self.chosen: dict[int, Batch] = {}  # known-chosen values above the snapshot
        self.snapshot_data: bytes | None = None
        # follower
        self.election_timer = self._election_timeout()
        self.quiet_ticks = 0  # ticks since we last heard a leader
        self.catchup_timer = 0
        self.forward_queue: list[bytes] = []
        # candidate
        self.promises: dict[NodeId, Promise] = {}
        self.prevote: Ballot | None = None  # the ballot we asked peers about
        self.prevotes: set[NodeId] = set()
        # leader
        self.queue: deque[bytes] = deque()
        self.queue_bytes = 0
        self.next_slot = 1
        self.inflight: dict[int, _Proposal] = {}
        self.recovered_upto = 0  # reads wait until every slot up to here is chosen
        self.heartbeat_timer = 0
        self.commit_sent = 0  # the chosen point followers were last told of
        self.heard: dict[NodeId, int] = {}  # peer -> ticks since its last reply
        self.read_round = 0
        self.acked_round: dict[NodeId, int] = {}
        self.round_outstanding = False
        self.reads: list[tuple[Any, int, int]] = []  # (read id, read index, round needed)
        self.ready_reads: list[tuple[Any, int]] = []  # confirmed, waiting to apply
        self.remote_reads: dict[Any, NodeId] = {}  # read id -> the leader asked
        self.snapshot_pending = False
        for record in durable:
            self._replay(record)
        self.stats = {"proposed_slots": 0, "proposed_commands": 0, "elections": 0}

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
                if slot > self.applied:
                    self.machine = self._restore_machine(data)
                    self.snapshot_data = data
                    self.applied = self.chosen_upto = slot
                    self.acceptor.truncate(slot)
                    self.chosen = {s: b for s, b in self.chosen.items() if s > slot}
            case _:
                pass  # hints (Committed) are not needed: the node re-learns
        self.next_slot = max(self.next_slot, self.chosen_upto + 1)

    # -- inputs -------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    def propose(self, command: bytes) -> Effects:
        """Queue a client command. The leader batches it at the next flush; a follower forwards
        it to the leader it knows; with no leader known it is dropped (the client retries)."""
        if self.role == LEADER:
            self.queue.append(command)
            self.queue_bytes += len(command)
        elif self.leader_hint is not None and self.leader_hint != self.node_id:
            self.forward_queue.append(command)
        return Effects()

    def read(self, read_id: Any) -> Effects:
        """Ask for a linearizable read. It becomes ready in `Effects.reads` once leadership is
        confirmed after this call and the state machine has applied the read index. On a
        follower the leader does the confirming (ReadIndex) and the follower waits until it
        has applied that far itself; with no leader known the read is refused at once."""
        effects = Effects()
        if self.role != LEADER:
            if self.leader_hint is None or self.leader_hint == self.node_id:
                effects.reads.append((read_id, False))
            else:
                self.remote_reads[read_id] = self.leader_hint
                self._send(effects, self.leader_hint, ReadIndex(read_id=read_id))
            return effects
        if self.config.variant == "unconfirmed-reads":
            # The planted bug: no confirmation, so a deposed leader serves stale state.
            self.ready_reads.append((read_id, self.chosen_upto))
            self._answer_reads(effects)
            return effects
        self.reads.append((read_id, self.chosen_upto, self.read_round + 1))
        return effects

    def flush(self, stamp: bytes | None = None) -> Effects:
        """End of an event-loop turn: batch queued commands, start a read round if needed.

        `stamp`, if given, is a command the leader puts at the head of every batch it forms:
        the driver passes the leader's clock as a time command, so that every command is
        applied at a log time no earlier than the moment it reached the leader."""
        effects = Effects()
        if self.role == LEADER:
            self._propose_batches(effects, stamp)
            if self.reads and not self.round_outstanding:
                self._heartbeat_round(effects)
            if self.chosen_upto > self.commit_sent:
                self.commit_sent = self.chosen_upto
                message = Commit(ballot=self.ballot, commit=self.chosen_upto)  # type: ignore[arg-type]
                for peer in self.peers:
                    self._send(effects, peer, message)
        elif self.forward_queue and self.leader_hint is not None:
            commands, self.forward_queue = tuple(self.forward_queue), []
            self._send(effects, self.leader_hint, Forward(commands=commands))
        return effects

    def tick(self) -> Effects:
        effects = Effects()
        if self.role == LEADER:
            self._leader_tick(effects)
        else:
            self.quiet_ticks += 1
            self.election_timer -= 1
            if self.election_timer <= 0:
                self._start_prevote(effects)
            if self.catchup_timer > 0:
                self.catchup_timer -= 1
        return effects

    def step(self, envelope: Envelope) -> Effects:
        effects = Effects()
        src, msg = envelope.src, envelope.msg
        match msg:
            case Accept():
                self._on_accept(effects, src, msg)
            case Accepted():
                self._on_accepted(effects, src, msg)
            case Heartbeat():
                self._on_heartbeat(effects, src, msg)
            case Commit():
                if self.acceptor.can_accept(msg.ballot):
                    self._follow(effects, msg.ballot)
                    self._learn_commit(effects, msg.ballot, msg.commit)
            case Ack():
                self._on_ack(effects, src, msg)
            case Forward():
                if self.role == LEADER:
                    for command in msg.commands:
                        self.queue.append(command)
                        self.queue_bytes += len(command)
                # else: dropped; the clients behind it will time out and retry
            case Prepare():
                self._on_prepare(effects, src, msg)
            case PreVote():
                granted = not self._sticky(src) and self.acceptor.can_promise(msg.ballot)
                self._send(effects, src, PreVoteReply(ballot=msg.ballot, granted=granted))
            case PreVoteReply():
                if msg.granted and msg.ballot == self.prevote and self.role != LEADER:
                    self.prevotes.add(src)
                    if self.quorum.is_phase1_quorum(self.prevotes):
                        self.prevote = None
                        self._start_election(effects)
            case Promise():
                self._on_promise(effects, src, msg)
            case Nack():
                self._on_nack(effects, msg)
            case ReadIndex():
                if self.role == LEADER:
                    self.reads.append(
                        (_Remote(src, msg.read_id), self.chosen_upto, self.read_round + 1)
                    )
                else:
                    self._send(effects, src, ReadIndexReply(read_id=msg.read_id, index=-1))
            case ReadIndexReply():
                if self.remote_reads.pop(msg.read_id, None) is not None:
                    if msg.index < 0:
                        effects.reads.append((msg.read_id, False))
                    else:
                        self.ready_reads.append((msg.read_id, msg.index))
                        self._answer_reads(effects)
            case CatchUp():
                self._on_catchup(effects, src, msg)
            case Entries():
                self._on_entries(effects, msg)
            case SnapshotInstall():
                self._on_snapshot(effects, msg)
            case _:
                raise AssertionError(f"unexpected message {msg!r}")
        return effects

    # -- election (phase 1) -----------------------------------------------------------------

    def _election_timeout(self) -> int:
        return self.rng.randint(self.config.election_ticks_min, self.config.election_ticks_max)

    def _next_ballot(self) -> Ballot:
        known = [b.round for b in (self.acceptor.promised, self.highest_seen) if b is not None]
        return Ballot(max(known, default=0) + 1, self.node_id)

    def _start_prevote(self, effects: Effects) -> None:
        """Ask first whether a quorum would follow us; only then raise our own promise."""
        self.election_timer = self._election_timeout()
        self.prevote = self._next_ballot()
        self.prevotes = {self.node_id}
        if self.quorum.is_phase1_quorum(self.prevotes):
            self.prevote = None
            self._start_election(effects)
            return
        for peer in self.peers:
            self._send(effects, peer, PreVote(ballot=self.prevote))

    def _sticky(self, src: NodeId) -> bool:
        """Do we still hear a live leader other than `src`? Then we refuse to help `src`
        replace it. It costs nothing in safety and keeps a node that was cut off from
        disrupting the cluster when it comes back."""
        if self.role == LEADER:
            return True
        return (
            self.leader_hint not in (None, src)
            and self.quiet_ticks < self.config.election_ticks_min
        )

    def _start_election(self, effects: Effects) -> None:
        ballot = self._next_ballot()
        self.role = CANDIDATE
        self.ballot = ballot
        self.leader_hint = None
        self.promises = {}
        self.election_timer = self._election_timeout()
        self.stats["elections"] += 1
        effects.notes.append(f"starts election with ballot {ballot}")
        self._persist(effects, self.acceptor.promise(ballot))
        from_slot = self.chosen_upto + 1
        self.promises[self.node_id] = Promise(
            ballot=ballot,
            accepted=self.acceptor.report(from_slot),
            snapshot_slot=self.acceptor.snapshot_slot,
            commit=self.chosen_upto,
        )
        for peer in self.peers:
            self._send(effects, peer, Prepare(ballot=ballot, from_slot=from_slot))
        self._maybe_win(effects)

    def _on_prepare(self, effects: Effects, src: NodeId, msg: Prepare) -> None:
        if self._sticky(src) or not self.acceptor.can_promise(msg.ballot):
            promised = self.acceptor.promised
            self._send(effects, src, Nack(ballot=msg.ballot, promised=promised or msg.ballot))
            return
        self._see(msg.ballot)
        self._persist(effects, self.acceptor.promise(msg.ballot))
        if self.role != FOLLOWER:
            self._step_down(effects, msg.ballot)
        self.election_timer = self._election_timeout()
        self._send(
            effects,
            src,
            Promise(
                ballot=msg.ballot,
                accepted=self.acceptor.report(msg.from_slot),
                snapshot_slot=self.acceptor.snapshot_slot,
                commit=self.chosen_upto,
            ),
        )

    def _on_promise(self, effects: Effects, src: NodeId, msg: Promise) -> None:
        if self.role != CANDIDATE or msg.ballot != self.ballot:
            return
        self.promises[src] = msg
        self._maybe_win(effects)

    def _maybe_win(self, effects: Effects) -> None:
        if not self.quorum.is_phase1_quorum(self.promises.keys()):
            return
        ballot = self.ballot
        assert ballot is not None
        self.role = LEADER
        self.leader_hint = self.node_id
        effects.notes.append(f"leads with ballot {ballot}")
        # Per slot, the value of the highest ballot any promise reports.
        merged: dict[int, tuple[Ballot, Batch]] = {}
        snapshot_slot = self.chosen_upto
        for promise in self.promises.values():
            snapshot_slot = max(snapshot_slot, promise.snapshot_slot)
            for slot, accepted_ballot, batch in promise.accepted:
                if slot not in merged or accepted_ballot > merged[slot][0]:
                    merged[slot] = (accepted_ballot, batch)
        if snapshot_slot > self.chosen_upto:
            # Someone truncated slots we never learned: they are chosen; fetch them.
            holder = max(self.promises.items(), key=lambda item: item[1].snapshot_slot)[0]
            self._send(effects, holder, CatchUp(from_slot=self.chosen_upto + 1))
        top = max(merged, default=self.chosen_upto)
        start = max(self.chosen_upto, snapshot_slot) + 1
        self.inflight = {}
        self.heard = dict.fromkeys(self.peers, 0)
        self.acked_round = dict.fromkeys(self.peers, 0)
        self.round_outstanding = False
        self.next_slot = start
        for slot in range(start, top + 1):
            batch = merged[slot][1] if slot in merged else NOOP
            self._propose_slot(effects, slot, batch)
        if top < start:
            # Nothing to finish: get a no-op chosen in our own ballot before serving reads.
            self._propose_slot(effects, start, NOOP)
        self.recovered_upto = self.next_slot - 1
        self.promises = {}

    def _on_nack(self, effects: Effects, msg: Nack) -> None:
        self._see(msg.promised)
        if self.role in (LEADER, CANDIDATE) and msg.promised > (self.ballot or msg.promised):
            self._step_down(effects, msg.promised)

    def _step_down(self, effects: Effects, higher: Ballot) -> None:
        was = self.role
        self.role = FOLLOWER
        self.leader_hint = higher.node if higher.node != self.node_id else None
        self.inflight = {}
        self.promises = {}
        for read_id, _, _ in self.reads:
            if isinstance(read_id, _Remote):
                self._send(effects, read_id.node, ReadIndexReply(read_id=read_id.read_id, index=-1))
            else:
                effects.reads.append((read_id, False))
        for read_id, _ in self.ready_reads:
            effects.reads.append((read_id, False))
        self.reads, self.ready_reads = [], []
        # Queued commands were never proposed: forward them to whoever leads now.
        self.forward_queue.extend(self.queue)
        self.queue.clear()
        self.queue_bytes = 0
        self.election_timer = self._election_timeout()
        effects.notes.append(f"steps down as {was}: ballot {higher} is higher")

    def _see(self, ballot: Ballot) -> None:
        if self.highest_seen is None or ballot > self.highest_seen:
            self.highest_seen = ballot

    # -- phase 2 ----------------------------------------------------------------------------

    def _propose_batches(self, effects: Effects, stamp: bytes | None) -> None:
        config = self.config
        while self.queue and len(self.inflight) < config.pipeline_slots_max:
            commands: list[bytes] = [] if stamp is None else [stamp]
            size = 0
            while self.queue and len(commands) < config.batch_commands_max:
                command = self.queue[0]
                if size and size + len(command) > config.batch_bytes_max:
                    break
                self.queue.popleft()
                commands.append(command)
                size += len(command)
            self.queue_bytes -= size
            self._propose_slot(effects, self.next_slot, tuple(commands))
            self.stats["proposed_commands"] += len(commands) - (stamp is not None)

    def _propose_slot(self, effects: Effects, slot: int, batch: Batch) -> None:
        ballot = self.ballot
        assert ballot is not None and self.role == LEADER
        self.next_slot = max(self.next_slot, slot + 1)
        self.stats["proposed_slots"] += 1
        self._persist(effects, self.acceptor.accept(ballot, slot, batch))
        self.inflight[slot] = _Proposal(batch, {self.node_id})
        message = Accept(ballot=ballot, slot=slot, batch=batch, commit=self.chosen_upto)
        self.commit_sent = self.chosen_upto
        for peer in self.peers:
            self._send(effects, peer, message)
        self._check_chosen(effects, slot)

    def _on_accept(self, effects: Effects, src: NodeId, msg: Accept) -> None:
        if not self.acceptor.can_accept(msg.ballot):
            promised = self.acceptor.promised
            assert promised is not None
            self._send(effects, src, Nack(ballot=msg.ballot, promised=promised))
            return
        self._follow(effects, msg.ballot)
        self._persist(effects, self.acceptor.accept(msg.ballot, msg.slot, msg.batch))
        self._send(effects, src, Accepted(ballot=msg.ballot, slot=msg.slot))
        self._learn_commit(effects, msg.ballot, msg.commit)

    def _on_accepted(self, effects: Effects, src: NodeId, msg: Accepted) -> None:
        if self.role != LEADER or msg.ballot != self.ballot:
            return
        self.heard[src] = 0
        proposal = self.inflight.get(msg.slot)
        if proposal is None:
            return
        proposal.acks.add(src)
        self._check_chosen(effects, msg.slot)

    def _check_chosen(self, effects: Effects, slot: int) -> None:
        proposal = self.inflight.get(slot)
        if proposal is None or not self.quorum.is_phase2_quorum(proposal.acks):
            return
        del self.inflight[slot]
        self._mark_chosen(effects, slot, proposal.batch)
        # Queued commands wait for the end of the turn (flush), where they get a fresh stamp.

    # -- learning and applying ----------------------------------------------------------------

    def _mark_chosen(self, effects: Effects, slot: int, batch: Batch) -> None:
        if slot <= self.chosen_upto:
            return
        self.chosen[slot] = batch
        while self.chosen_upto + 1 in self.chosen:
            self.chosen_upto += 1
        self._apply(effects)

    def _apply(self, effects: Effects) -> None:
        machine = self.machine
        while self.applied < self.chosen_upto:
            slot = self.applied + 1
            batch = self.chosen[slot]
            base = slot << batch_shift
            decided = effects.decided
            for position, payload in enumerate(batch):
                result, request = machine.apply(base | position, payload)
                decided.append(Applied(slot, payload, result, request))
            self.applied = slot
        self._answer_reads(effects)
        if self.applied - self.acceptor.snapshot_slot >= self.config.snapshot_every_slots:
            self._take_snapshot(effects)

    def _take_snapshot(self, effects: Effects) -> None:
        slot = self.applied
        data = self.machine.snapshot()
        self.snapshot_data = data
        self._persist(effects, [Snapshot(slot, data)])
        self.acceptor.truncate(slot)
        for old in [s for s in self.chosen if s <= slot]:
            del self.chosen[old]
        effects.notes.append(f"snapshot at slot {slot}")

    def _learn_commit(self, effects: Effects, ballot: Ballot, commit: int) -> None:
        """Slots up to `commit` are chosen; where we accepted in the same ballot, our value is
        the chosen one. Anything else we lack, we ask the leader for."""
        if commit <= self.chosen_upto:
            return
        slot = self.chosen_upto + 1
        while slot <= commit:
            entry = self.acceptor.entries.get(slot)
            if slot in self.chosen:
                pass
            elif entry is not None and entry[0] == ballot:
                self.chosen[slot] = entry[1]
            else:
                break
            slot += 1
        before = self.chosen_upto
        while self.chosen_upto + 1 in self.chosen:
            self.chosen_upto += 1
        if self.chosen_upto > before:
            self._apply(effects)
        if self.chosen_upto < commit and self.catchup_timer == 0 and self.leader_hint:
            self.catchup_timer = self.config.catchup_timeout_ticks
            self._send(effects, self.leader_hint, CatchUp(from_slot=self.chosen_upto + 1))

    def _on_catchup(self, effects: Effects, src: NodeId, msg: CatchUp) -> None:
        ballot = self.ballot if self.role == LEADER else self.acceptor.promised
        if ballot is None:
            return
        if msg.from_slot <= self.acceptor.snapshot_slot and self.snapshot_data is not None:
            install = SnapshotInstall(
                ballot=ballot, slot=self.acceptor.snapshot_slot, data=self.snapshot_data
            )
            self._send(effects, src, install)
            return
        entries: list[tuple[int, Batch]] = []
        slot = msg.from_slot
        while slot <= self.chosen_upto and len(entries) < self.config.catchup_slots_max:
            batch = self.chosen.get(slot)
            if batch is None:
                break
            entries.append((slot, batch))
            slot += 1
        if entries:
            self._send(
                effects,
                src,
                Entries(ballot=ballot, entries=tuple(entries), commit=self.chosen_upto),
            )

    def _on_entries(self, effects: Effects, msg: Entries) -> None:
        # Values a peer knows are chosen. They go to the learner, not the acceptor log: an
        # acceptor only ever reports what it accepted itself.
        self.catchup_timer = 0
        for slot, batch in msg.entries:
            if slot > self.chosen_upto:
                self.chosen[slot] = batch
        before = self.chosen_upto
        while self.chosen_upto + 1 in self.chosen:
            self.chosen_upto += 1
        if self.chosen_upto > before:
            self._apply(effects)
        if self.chosen_upto < msg.commit and self.leader_hint is not None:
            self.catchup_timer = self.config.catchup_timeout_ticks
            self._send(effects, self.leader_hint, CatchUp(from_slot=self.chosen_upto + 1))

    def _on_snapshot(self, effects: Effects, msg: SnapshotInstall) -> None:
        self.catchup_timer = 0
        if msg.slot <= self.chosen_upto:
            return
        self.machine = self._restore_machine(msg.data)
        self.snapshot_data = msg.data
        self.applied = self.chosen_upto = msg.slot
        self.acceptor.truncate(msg.slot)
        self.chosen = {s: b for s, b in self.chosen.items() if s > msg.slot}
        self._persist(effects, [Snapshot(msg.slot, msg.data)])
        effects.notes.append(f"installs snapshot at slot {msg.slot}")
        while self.chosen_upto + 1 in self.chosen:
            self.chosen_upto += 1
        self._apply(effects)
        if self.leader_hint is not None:
            self.catchup_timer = self.config.catchup_timeout_ticks
            self._send(effects, self.leader_hint, CatchUp(from_slot=self.chosen_upto + 1))

    # -- heartbeats, leadership checks and reads ------------------------------------------

    def _leader_tick(self, effects: Effects) -> None:
        self.quiet_ticks = 0
        limit = self.config.election_ticks_max
        for peer in self.peers:
            self.heard[peer] = self.heard.get(peer, 0) + 1
        alive = [self.node_id, *(p for p in self.peers if self.heard[p] <= limit)]
        if not self.quorum.is_majority(alive):
            # Cut off from a quorum: nothing we propose can be chosen and no read can be
            # confirmed. Step down so clients go looking for a leader that can serve them.
            assert self.ballot is not None
            self._step_down(effects, self.ballot)
            self.leader_hint = None
            return
        self.heartbeat_timer -= 1
        if self.heartbeat_timer <= 0:
            self._heartbeat_round(effects)
        self._retransmit(effects)

    def _retransmit(self, effects: Effects) -> None:
        """Messages get lost: an Accept unanswered for a while goes out again to the acceptors
        that have not answered it."""
        ballot = self.ballot
        assert ballot is not None
        for slot, proposal in self.inflight.items():
            proposal.age_ticks += 1
            if proposal.age_ticks < self.config.retransmit_ticks:
                continue
            proposal.age_ticks = 0
            message = Accept(
                ballot=ballot, slot=slot, batch=proposal.batch, commit=self.chosen_upto
            )
            for peer in self.peers:
                if peer not in proposal.acks:
                    self._send(effects, peer, message)

    def _heartbeat_round(self, effects: Effects) -> None:
        ballot = self.ballot
        assert ballot is not None
        self.heartbeat_timer = self.config.heartbeat_ticks
        self.read_round += 1
        self.round_outstanding = True
        message = Heartbeat(ballot=ballot, commit=self.chosen_upto, read_round=self.read_round)
        self.commit_sent = self.chosen_upto
        for peer in self.peers:
            self._send(effects, peer, message)
        self._confirm_reads(effects)  # a one-node cluster confirms on its own

    def _on_heartbeat(self, effects: Effects, src: NodeId, msg: Heartbeat) -> None:
        if not self.acceptor.can_accept(msg.ballot):
            promised = self.acceptor.promised
            assert promised is not None
            self._send(effects, src, Nack(ballot=msg.ballot, promised=promised))
            return
        self._follow(effects, msg.ballot)
        self._send(
            effects, src, Ack(ballot=msg.ballot, read_round=msg.read_round, applied=self.applied)
        )
        self._learn_commit(effects, msg.ballot, msg.commit)

    def _follow(self, effects: Effects, ballot: Ballot) -> None:
        """A message from a leader in `ballot` (at least our promise): follow it."""
        self._see(ballot)
        if self.role != FOLLOWER and ballot != self.ballot:
            self._step_down(effects, ballot)
        if self.role == FOLLOWER:
            if self.leader_hint != ballot.node and self.remote_reads:
                # Reads the old leader was asked to confirm will not be answered: retry.
                effects.reads.extend((read_id, False) for read_id in self.remote_reads)
                self.remote_reads = {}
            self.leader_hint = ballot.node
            self.quiet_ticks = 0
            self.election_timer = self._election_timeout()

    def _on_ack(self, effects: Effects, src: NodeId, msg: Ack) -> None:
        if self.role != LEADER or msg.ballot != self.ballot:
            return
        self.heard[src] = 0
        if msg.read_round > self.acked_round.get(src, 0):
            self.acked_round[src] = msg.read_round
        self._confirm_reads(effects)

    def _confirmed_round(self) -> int:
        """The latest heartbeat round acknowledged by a quorum (this node acks its own)."""
        rounds = sorted([self.read_round, *self.acked_round.values()], reverse=True)
        return rounds[self.quorum.size - 1]

    def _confirm_reads(self, effects: Effects) -> None:
        confirmed = self._confirmed_round()
        if confirmed >= self.read_round:
            self.round_outstanding = False
        if not self.reads or self.chosen_upto < self.recovered_upto:
            return
        waiting = []
        for read_id, index, needed in self.reads:
            if needed > confirmed:
                waiting.append((read_id, index, needed))
            elif isinstance(read_id, _Remote):
                reply = ReadIndexReply(
                    read_id=read_id.read_id, index=max(index, self.recovered_upto)
                )
                self._send(effects, read_id.node, reply)
            else:
                self.ready_reads.append((read_id, max(index, self.recovered_upto)))
        self.reads = waiting
        self._answer_reads(effects)
        if self.reads and not self.round_outstanding:
            self._heartbeat_round(effects)

    def _answer_reads(self, effects: Effects) -> None:
        if not self.ready_reads:
            return
        still = []
        for read_id, index in self.ready_reads:
            if self.applied >= index:
                effects.reads.append((read_id, True))
            else:
                still.append((read_id, index))
        self.ready_reads = still

    # -- plumbing -----------------------------------------------------------------------------

    def _send(self, effects: Effects, dst: NodeId, msg: Any) -> None:
        effects.send.append(Envelope(self.node_id, dst, msg))

    def _persist(self, effects: Effects, records: list[Record]) -> None:
        effects.persist.extend(records)

    def query(self) -> Any:
        return self.chosen_upto

    def state_key(self) -> Hashable:
        return (self.role, self.ballot, self.acceptor.promised, self.chosen_upto, self.applied)

    def status(self) -> dict[str, Any]:
        """What an operator wants to see."""
        return {
            "role": self.role,
            "ballot": str(self.ballot) if self.ballot else None,
            "promised": str(self.acceptor.promised) if self.acceptor.promised else None,
            "leader": self.leader_hint,
            "chosen_upto": self.chosen_upto,
            "applied": self.applied,
            "next_slot": self.next_slot,
            "inflight_slots": len(self.inflight),
            "queued_commands": len(self.queue),
            "snapshot_slot": self.acceptor.snapshot_slot,
        }

    def invariants(self) -> None:
        self.acceptor.invariants()
        assert self.applied <= self.chosen_upto
        assert self.applied >= self.acceptor.snapshot_slot or not self.acceptor.entries
        if self.role == LEADER:
            assert self.ballot is not None and self.ballot.node == self.node_id
            assert self.acceptor.promised is not None and self.ballot <= self.acceptor.promised
            assert len(self.inflight) <= self.config.pipeline_slots_max + max(
                0, self.recovered_upto - self.chosen_upto
            )
