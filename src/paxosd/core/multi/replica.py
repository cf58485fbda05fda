"""A Multi-Paxos replica: the acceptor, the leader (distinguished proposer) and the learner of
one node, composed as in "Paxos Made Moderately Complex".

Theory of operation.

Slots. The log is a sequence of slots; each slot holds a batch of opaque commands (bytes) and
is decided by its own instance of Paxos. The learner (learner.py) applies slots strictly in
order to a deterministic state machine; `chosen_upto` is the highest slot below which every
slot is known chosen.

Membership. Who votes is one value, the `Configuration` (configuration.py): its quorum
system decides every "is this enough?" (promises, acceptances, a leader still hearing enough
of the cluster, read confirmation), and its voters are whom a candidate asks and whom a
rebuilding node must hear from.

Roles. A replica is a follower, a candidate, a leader or rebuilding (`Role`). Role state
lives in objects that exist only while the role lasts (leader.py: `Campaign`, `Leadership`;
rebuild.py: `Rebuild`), and messages are dispatched through one table per role (`_HANDLERS`;
while rebuilding, rebuild.HANDLERS take over the messages it handles unlike a follower).

Leadership (the paper's scout and commander). A node that hears no leader for a randomized
election timeout asks its peers first whether they would follow it (PreVote), and only then
becomes a candidate: it picks a ballot higher than any it has seen and runs phase 1 ONCE for
every slot from `chosen_upto + 1` on (Prepare / Promise). From a quorum of promises it takes,
per slot, the value of the highest accepted ballot and proposes it again in its own ballot;
slots nobody reported are filled with no-ops, so no gap stays open. If there was nothing to
finish, it proposes one no-op: a leader must get something chosen in its own ballot before it
serves reads. From then on each batch needs one round trip (Accept / Accepted). A leader that
meets a higher ballot (a Nack) steps down and follows; one that stops hearing from a quorum
steps down too, so clients look for the real leader.

Throughput. Client commands queue at the leader (followers forward theirs; queue.py bounds
both queues). Each `ready()` - the driver calls it once per turn of its event loop - drains
the queue into batches capped by count and bytes, and each batch takes the next slot. Up to
`pipeline_slots_max` slots may be in flight at once. The driver persists a turn's records with
one fsync (group commit).

Learning. The leader counts Accepted per slot; a quorum means chosen. Accept and Heartbeat carry
the leader's commit point; a follower learns from it, and catches up on what it lacks
(catchup.py: CatchUp / Entries, or a snapshot in chunks).

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

Ballots. Every ballot a peer sends must be in the protocol's range and not jump far above
anything this node has seen (ballots.py); anything else is refused with a note, never
promised, so one forged or corrupted frame cannot use up the ballot space.

Amnesia. A node that lost its durable state must not vote; it rebuilds from every peer first
(rebuild.py says how, and why that is safe).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from paxosd.core.multi import (
    ballots,
    catchup,
    epochs,
    queue,
    reads,
    rebuild,
    reconfigure,
    snapshots,
    transfer,
)
from paxosd.core.multi.acceptor import AcceptorLog
from paxosd.core.multi.catchup import Catchup
from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration, ConfigurationMismatch, Joined
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
    Stale,
    StateQuery,
    StateReport,
    TimeoutNow,
)
from paxosd.core.multi.messages import PreVote as PreVoteMessage
from paxosd.core.multi.queue import CommandQueue
from paxosd.core.multi.read_index import ReadIndex as ReadIndexState
from paxosd.core.multi.reads import Reads
from paxosd.core.multi.ready import Outbox, Proposal, Ready, Role, Status
from paxosd.core.multi.rebuild import Rebuild
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import (
    Batch,
    Configured,
    InlineSnapshot,
    Promised,
    Rebuilding,
    Record,
    Snapshot,
)
from paxosd.core.multi.snapshots import Snapshots
from paxosd.core.types import Ballot, Envelope, NodeId

NOOP: Batch = ()
Handler = Callable[["Replica", NodeId, Any], None]


class Replica:
    """One node of the Multi-Paxos engine (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        configuration: Configuration,
        rng: random.Random,
        config: EngineConfig,
        machine: Machine,
        durable: Sequence[Record] = (),
    ) -> None:
        assert config.batch_commands_max < batch_commands_cap
        self.node_id = node_id
        self.configure(configuration)
        # A later epoch a peer told of (epochs.py), adopted once applied up to its start.
        self.next_epoch: Configuration | None = None
        # Prepares of a later epoch, answered once this node has adopted it (epochs.py).
        self.deferred: dict[NodeId, Prepare] = {}
        self.rng = rng
        self.config = config
        self.acceptor = AcceptorLog()
        self.learner = Learner(machine, config.retained_bytes_max, config.replay_cost)
        self.snapshots = Snapshots()
        self.leading: Leadership | None = None
        self.campaign: Campaign | None = None
        self.prevote: PreVote | None = None
        self.rebuilding: Rebuild | None = None
        self._handlers = _HANDLERS
        self.leader_hint: NodeId | None = None
        self.highest_seen: Ballot | None = None
        self.election_ticks_left = self.election_timeout()
        self.quiet_ticks = 0  # ticks since this node last heard a leader
        self.catchup = Catchup()
        self.forward_queue = self._command_queue()
        self.reads = Reads()
        self.durable_commit = 0
        self.elections = 0
        self.refused_ballots = 0
        self.out = Outbox(node_id)
        for record in durable:
            self._replay(record)
        # The store may give acceptances back in any order: drop by epoch (epochs.py).
        epochs.drop_older(self.acceptor, self.configuration)
        assert self.configuration.epoch > 0 or self.configuration.is_voter(node_id), (
            "a node of the first epoch runs as one of its voters (learners join by a change)"
        )
        if self.configuration.epoch > 0:
            epochs.learn_marked(self)
            self.advance()
        self.durable_commit = self.learner.chosen_upto

    def configure(self, configuration: Configuration) -> None:
        """Take `configuration` as this node's epoch (at start, or adopting a new one)."""
        self.configuration = configuration
        self.quorum = configuration.quorum
        self.peers = configuration.peers_of(self.node_id)  # everyone this node sends to
        self.voting_peers = configuration.voting_peers_of(self.node_id)  # whose votes count

    # -- restart ----------------------------------------------------------------------------

    def _replay(self, record: Record) -> None:
        """Rebuild durable state from one record (in the order they were written).
        `ConfigurationMismatch` if the store was made for other members than this replica's
        configuration: the one check every host (node and simulator) runs."""
        match record:
            case Configured(configuration=stored):
                if stored.epoch > self.configuration.epoch:
                    # Membership changed through the log since the store was made: the
                    # store's epoch is the one this node is in (the host's config file
                    # names the founding members only).
                    self.configure(stored)
                    return
                unchecked = self.config.variant == "members-unchecked"  # (the planted bug)
                if not stored.same_members(self.configuration) and not unchecked:
                    raise ConfigurationMismatch(self.node_id, stored, self.configuration)
            case Promised(ballot=ballot):
                self.acceptor.promise(ballot)
            case AcceptedRecord(slot=slot, ballot=ballot, batch=batch):
                if slot > self.acceptor.snapshot_slot:
                    if not epochs.is_mark(ballot):  # a chosen value's mark: no vote (epochs.py)
                        self.acceptor.promise(ballot)
                    self.acceptor.entries[slot] = (ballot, batch)
            case Snapshot(slot=slot):
                self.learner.restored(record)  # `machine` is the state after it (recovery.py)
                self.acceptor.truncate(slot)
            case InlineSnapshot():
                raise AssertionError("a host moves an inline snapshot to a file first")
            case Rebuilding(active=True):
                self.rebuilding, self._handlers = Rebuild(), _REBUILDING_HANDLERS
            case Rebuilding(active=False):
                self.end_rebuild()

    def end_rebuild(self) -> None:
        """The REBUILDING role is over: from now on this node votes as a follower."""
        self.rebuilding, self._handlers = None, _HANDLERS

    # -- inputs -------------------------------------------------------------------------------

    def propose(self, command: bytes) -> Proposal:
        """Offer a client command. The leader queues it for the next batch; a follower queues
        it for the leader it knows; with no leader known, or a full queue, it is dropped and
        the caller is told so (and may retry)."""
        lead = self.leading
        if lead is not None:
            return Proposal.QUEUED if lead.queue.offer(command) else Proposal.QUEUE_FULL
        if self.leader_hint is None or self.leader_hint == self.node_id:
            return Proposal.NO_LEADER
        return Proposal.FORWARDED if self.forward_queue.offer(command) else Proposal.QUEUE_FULL

    def read(self, read_id: int, query: Any) -> None:
        """Ask for a linearizable read of `query`. It is answered (`ReadDone` in a later
        `Ready`) once leadership is confirmed after this call and the state machine has applied
        the read index; on a follower the leader confirms (ReadIndex) and the follower waits
        until it has applied that far itself. With no leader known it is refused at once
        (reads.py)."""
        reads.request(self, read_id, query)

    def snapshot_saved(self, snapshot: Snapshot) -> None:
        """The host made the snapshot file this replica asked for durable (snapshots.py)."""
        snapshots.saved(self, snapshot)

    def snapshot_restored(self, snapshot: Snapshot, machine: Machine) -> None:
        """The host restored `machine` from the peer's snapshot this replica staged."""
        snapshots.restored(self, snapshot, machine)

    def snapshot_failed(self, slot: int, reason: str) -> None:
        """Writing this replica's snapshot of `slot`, or installing a peer's, failed."""
        snapshots.failed(self, slot, reason)

    def change_members(
        self,
        voters: Sequence[NodeId],
        learners: Sequence[NodeId] = (),
        joining: Joined | None = None,
    ) -> str:
        """Change the membership to `voters` and `learners` (`joining`: the identity of a
        node that joins as a learner) through the log (epochs.py): the reason it is refused,
        or "" once it is under way."""
        return epochs.request(self, tuple(voters), tuple(learners), joining)

    def transfer_leadership(self, target: NodeId) -> str | None:
        """Hand leadership to the voter `target` (transfer.py): the reason it cannot be
        done, or None once the handover has begun."""
        return transfer.start(self, target)

    def tick(self) -> None:
        """One unit of logical time has passed."""
        rebuilding = self.rebuilding
        if rebuilding is not None:
            rebuild.tick(self, rebuilding)
        self.catchup.tick()
        lead = self.leading
        if lead is not None:
            self._leader_tick(lead)
            return
        self.quiet_ticks += 1
        if rebuilding is not None:
            return  # a rebuilding node never campaigns: it could not vote for itself
        if not epochs.may_campaign(self):
            if self.configuration.is_voter(self.node_id):
                epochs.tick(self)  # restarted below its epoch's start: catch up first
            elif self.configuration.is_member(self.node_id):
                epochs.learner_tick(self)  # no leader heard: ask a peer what it missed
            return  # learners and removed nodes never campaign
        self.election_ticks_left -= 1
        if self.election_ticks_left <= 0:
            self._start_prevote()

    def step(self, envelope: Envelope) -> None:
        """Handle one message from a peer, as this node's role does."""
        msg = envelope.msg
        if not ballots.admissible(self, envelope.src, msg):
            return
        self.step_message(envelope.src, msg)

    def step_message(self, src: NodeId, msg: Any) -> None:
        """Handle an admitted message: not at all if it is of another epoch (epochs.py)."""
        if epochs.screen(self, src, msg):
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            raise AssertionError(f"unexpected message {msg!r}")
        handler(self, src, msg)

    # -- output -------------------------------------------------------------------------------

    def ready(self, stamp: bytes | None = None) -> Ready:
        """End of a turn: batch queued commands, then hand over everything produced since the
        last call (see ready.py for what the driver must do with it, in which order).

        `stamp`, if given, is a command the leader puts at the head of every batch: the driver
        passes the leader's log time, so that every command is applied at a log time no earlier
        than the moment it reached the leader."""
        lead = self.leading
        if lead is not None and lead.change is not None:
            epochs.propose_when_ready(self, lead)
            lead = self.leading  # a one-node cluster chose it and is in the new epoch
        if lead is not None:
            self._propose_batches(lead, stamp)
            if lead.read_index.needs_round():
                self.heartbeat_round(lead)
            if self.learner.chosen_upto > lead.commit_sent and not lead.inflight:
                # The chosen point moved and no Accept is in flight to carry it: tell the
                # followers now, so they apply (and answer their clients) without waiting for
                # the next heartbeat.
                lead.commit_sent = self.learner.chosen_upto
                message = Commit(ballot=lead.ballot, commit=lead.commit_sent)
                for peer in self.peers:
                    self.out.send(peer, message)
        elif self.forward_queue and self.leader_hint not in (None, self.node_id):
            queue.forward(self, self.leader_hint)
        out, self.out = self.out, Outbox(self.node_id)
        return out.freeze(commit=self.learner.chosen_upto)

    def synced(self, ready: Ready) -> None:
        """The driver made `ready`'s records durable (etcd's Advance): early Accepts may from
        now on tell followers the chosen point it carried."""
        self.durable_commit = max(self.durable_commit, ready.commit)

    def has_ready(self) -> bool:
        """Whether `ready()` would hand over anything (or batch anything) now."""
        if self.out:
            return True
        lead = self.leading
        if lead is not None:
            return bool(
                (
                    lead.queue
                    and len(lead.inflight) < self.config.pipeline_slots_max
                    and not lead.holding
                )
                or (lead.change is not None and epochs.ready_to_propose(self, lead))
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
        if self.campaign is not None:
            return Role.CANDIDATE
        return Role.FOLLOWER if self.rebuilding is None else Role.REBUILDING

    @property
    def batching(self) -> bool:
        """Whether the next `ready()` could form a batch, were a command queued: leading, not
        holding for a handover (transfer.py), the pipeline not full. The driver proposes idle
        log time only then, so that a time stamp never waits in the queue (a stamp forwarded
        to the next leader would move its log time ahead of its leases)."""
        lead = self.leading
        return (
            lead is not None
            and not lead.holding
            and len(lead.inflight) < self.config.pipeline_slots_max
        )

    @property
    def batch_ballot(self) -> Ballot | None:
        """The ballot under which the next `ready()` forms a batch; None if it forms none (not
        leading, nothing queued, or the pipeline full). The driver stamps log time only then."""
        lead = self.leading
        if (
            lead is None
            or not lead.queue
            or len(lead.inflight) >= self.config.pipeline_slots_max
            or lead.holding
        ):
            return None
        return lead.ballot

    @property
    def log_time_ms(self) -> int:
        """The log time of everything applied here (the state machine's clock)."""
        return self.learner.machine.log_time_ms

    def status(self) -> Status:
        lead, campaign, rebuilding = self.leading, self.campaign, self.rebuilding
        if lead is not None:
            ballot: Ballot | None = lead.ballot
        else:
            ballot = campaign.ballot if campaign is not None else None
        machine = self.learner.machine
        return Status(
            node_id=self.node_id,
            role=self.role,
            leader=self.leader,
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
            log_time_ms=machine.log_time_ms,
            wants_log_time=machine.wants_log_time,
            rebuild_waiting_for=rebuilding.waiting_for(self.voting_peers) if rebuilding else (),
            transferring_to=lead.transfer.target if lead and lead.transfer else None,
            epoch=self.configuration.epoch,
        )

    def invariants(self, full: bool = False) -> None:
        """Assert internal consistency; drivers call it after every turn. `full` also walks
        every log entry (its cost grows with the log, so drivers do it now and then)."""
        self.acceptor.invariants(full)
        self.learner.invariants(full)
        assert self.learner.applied >= self.acceptor.snapshot_slot or not self.acceptor.entries
        assert (self._handlers is _REBUILDING_HANDLERS) == (self.rebuilding is not None)
        lead = self.leading
        if lead is not None:
            assert self.campaign is None and self.rebuilding is None
            assert lead.ballot.node == self.node_id
            assert self.acceptor.promised is not None and lead.ballot <= self.acceptor.promised
            assert len(lead.inflight) <= self.config.pipeline_slots_max + max(
                0, lead.recovered_upto - self.learner.chosen_upto
            )
            assert len(lead.queue) <= self.config.queue_commands_max
            assert not self.forward_queue, "a leader queues its own commands"
        assert len(self.forward_queue) <= self.config.queue_commands_max

    # -- ballots --------------------------------------------------------------------------

    def _next_ballot(self) -> Ballot | None:
        # A node's ballots stay in its own epoch's rounds (epochs.py): above every ballot of
        # the epoch it has seen, and never in a later epoch's, which it has not joined.
        # A node that has seen a later epoch's ballot lags behind a membership change: it
        # catches up (epochs.py) rather than campaign.
        epoch = self.configuration.epoch
        seen = [b for b in (self.acceptor.promised, self.highest_seen) if b is not None]
        known = [b.round for b in seen if ballots.epoch_of(b) == epoch]
        ballot = Ballot(max(known, default=ballots.first_round(epoch)) + 1, self.node_id)
        # A peer's promise of a mark ballot (epochs.mark; only a store written before marks
        # went unpromised holds one) proves only that the peer once adopted a later epoch: a
        # torn write may have left it that promise without the epoch's record, and no one
        # else in the later epoch; the change is then recovered by a phase 1 of this epoch
        # (the brick wall), which this node must be free to run. Its own mark promise still
        # bars it (it can promise nothing of this epoch).
        promised = self.acceptor.promised
        later = [
            b
            for b in seen
            if ballots.epoch_of(b) > epoch and (b == promised or not epochs.is_mark(b))
        ]
        if later and all(b.has_successor for b in later):
            return None
        if later or not ballot.has_successor or ballots.epoch_of(ballot) != epoch:
            self.out.note("ballot_space_exhausted", ballot=ballot)
            return None
        return ballot

    def see(self, ballot: Ballot) -> None:
        """A ballot some peer uses: the next one this node makes must be higher."""
        if self.highest_seen is None or ballot > self.highest_seen:
            self.highest_seen = ballot

    # -- election (phase 1: the paper's scout) --------------------------------------------

    def election_timeout(self) -> int:
        return self.rng.randint(self.config.election_ticks_min, self.config.election_ticks_max)

    def _start_prevote(self) -> None:
        """Ask first whether a quorum would follow us; only then raise our own promise."""
        self.election_ticks_left = self.election_timeout()
        ballot = self._next_ballot()
        if ballot is None:
            epochs.lagging_tick(self)  # behind a membership change: catch up instead
            return
        self.prevote = PreVote(ballot, {self.node_id})
        if self.quorum.is_phase1_quorum(self.prevote.granted):
            self.start_election()
            return
        for peer in self.voting_peers:
            self.out.send(peer, PreVoteMessage(ballot=ballot))

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
        granted = not self._sticky(src) and self.acceptor.can_promise(msg.ballot)
        self.out.send(src, PreVoteReply(ballot=msg.ballot, granted=granted))

    def _on_prevote_reply(self, src: NodeId, msg: PreVoteReply) -> None:
        prevote = self.prevote
        if prevote is None or not msg.granted or msg.ballot != prevote.ballot or self.leading:
            return
        prevote.granted.add(src)
        if self.quorum.is_phase1_quorum(prevote.granted):
            self.start_election()

    def start_election(self, handed_over: bool = False) -> None:
        """Phase 1 in a new ballot; `handed_over`: the leader asked this node to take over
        (transfer.py), so peers that still hear it answer anyway."""
        self.prevote = None
        if not epochs.may_campaign(self):
            return
        ballot = self._next_ballot()
        if ballot is None:
            return
        self.leader_hint = None
        self.election_ticks_left = self.election_timeout()
        self.elections += 1
        self.out.note("election_started", ballot=ballot)
        self.out.persist(self.acceptor.promise(ballot))
        own = self._promise(ballot, self.learner.chosen_upto + 1)
        self.campaign = Campaign(ballot, {self.node_id: own})
        prepare = Prepare(
            ballot=ballot, from_slot=self.learner.chosen_upto + 1, transfer=handed_over
        )
        for peer in self.voting_peers:
            self.out.send(peer, prepare)
        self._maybe_win(self.campaign)

    def _promise(self, ballot: Ballot, from_slot: int) -> Promise:
        acceptor = self.acceptor
        return Promise(
            ballot=ballot,
            accepted=acceptor.report(from_slot),
            snapshot_slot=acceptor.snapshot_slot,
            commit=self.learner.chosen_upto,
        )

    def _on_prepare(self, src: NodeId, msg: Prepare) -> None:
        sticky = self._sticky(src) and not msg.transfer
        if sticky or not self.acceptor.can_promise(msg.ballot):
            promised = self.acceptor.promised or msg.ballot
            self.out.send(src, Nack(ballot=msg.ballot, promised=promised))
            return
        self.see(msg.ballot)
        self.out.persist(self.acceptor.promise(msg.ballot))
        if self.leading is not None or self.campaign is not None:
            self._step_down(msg.ballot)
        self.election_ticks_left = self.election_timeout()
        self.out.send(src, self._promise(msg.ballot, msg.from_slot))

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
            # Someone truncated slots we never learned: they are chosen; fetch them now.
            holder = max(campaign.promises.items(), key=lambda item: item[1].snapshot_slot)[0]
            self.catchup.ticks_left = 0
            self.catchup.ask(self, holder, snapshot_slot)  # asked again by `_leader_tick`
        start = max(chosen_upto, snapshot_slot) + 1
        lead = Leadership(
            ballot=ballot,
            next_slot=start,
            read_index=ReadIndexState(self.configuration, self.node_id),
            queue=self._command_queue(),
            heard=dict.fromkeys(self.peers, 0),
        )
        self.campaign = None
        self.leading = lead
        self.leader_hint = self.node_id
        self.out.note("leader_elected", ballot=ballot, from_slot=start)
        reads.refuse_remote(self)  # asked of a leader that is not this node: ask again
        for command in self.forward_queue.drain():  # meant for the old leader: ours now
            queued = lead.queue.offer(command)
            assert queued, "an empty queue takes what another one of the same limits held"
        # Every slot a predecessor may have chosen is proposed again, and nothing above a
        # stop that may have been chosen (reconfigure.py: the brick wall).
        plan = reconfigure.brick_wall({s: v for s, v in merged.items() if s >= start}, start)
        lead.stop = plan.stop
        for slot, batch in plan.batches.items():
            self.propose_slot(lead, slot, batch)
        if not plan.batches:
            # Nothing to finish: get a no-op chosen in our own ballot before serving reads.
            self.propose_slot(lead, start, NOOP)
        lead.recovered_upto = lead.next_slot - 1

    def _on_nack(self, src: NodeId, msg: Nack) -> None:
        self.see(msg.promised)
        ours = self._own_ballot()
        # A later epoch's mark ballot is no competing leader (see _next_ballot): the other
        # acceptors may still make a quorum.
        if ours is not None and msg.promised > ours and not epochs.is_mark(msg.promised):
            self._step_down(msg.promised)

    def _own_ballot(self) -> Ballot | None:
        """The ballot this node leads or campaigns with, if any."""
        if self.leading is not None:
            return self.leading.ballot
        return None if self.campaign is None else self.campaign.ballot

    def _step_down(self, higher: Ballot) -> None:
        was = self.role
        lead = self.leading
        self.leading = None
        self.campaign = None
        self.prevote = None
        self.leader_hint = higher.node if higher.node != self.node_id else None
        reads.step_down(self, lead)
        if lead is not None:
            # Queued commands were never proposed: forward them to whoever leads now.
            for command in lead.queue.drain():
                queued = self.forward_queue.offer(command)
                assert queued, "a leader's forward queue is empty"
        self.election_ticks_left = self.election_timeout()
        self.out.note("stepped_down", was=was.value, ballot=higher)

    def _follow(self, ballot: Ballot) -> None:
        """A message from a leader in `ballot` (at least our promise): follow it."""
        self.see(ballot)
        ours = self._own_ballot()
        if ours is not None and ballot != ours:
            self._step_down(ballot)
        if self.leading is None:
            if self.leader_hint != ballot.node:
                # Reads the old leader was asked to confirm will not be answered: retry.
                reads.refuse_remote(self)
            self.leader_hint = ballot.node
            self.quiet_ticks = 0
            self.election_ticks_left = self.election_timeout()

    # -- phase 2 (the paper's commander) ----------------------------------------------------

    def _command_queue(self) -> CommandQueue:
        return CommandQueue(self.config.queue_commands_max, self.config.queue_bytes_max)

    def _propose_batches(self, lead: Leadership, stamp: bytes | None) -> None:
        config = self.config
        head = () if stamp is None else (stamp,)
        count_max = config.batch_commands_max - len(head)
        if lead.holding:
            # Handing over (transfer.py) or changing membership (epochs.py): commands wait,
            # and go to the next leader.
            return
        while lead.queue and len(lead.inflight) < config.pipeline_slots_max:
            commands = lead.queue.take(count_max, config.batch_bytes_max)
            self.propose_slot(lead, lead.next_slot, (*head, *commands))

    def propose_slot(self, lead: Leadership, slot: int, batch: Batch) -> None:
        lead.next_slot = max(lead.next_slot, slot + 1)
        self.out.persist(self.acceptor.accept(lead.ballot, slot, batch))
        lead.inflight[slot] = Inflight(batch, {self.node_id})
        self._send_accept(lead, slot, batch, self.peers)
        self._check_chosen(lead, slot)

    def _send_accept(
        self, lead: Leadership, slot: int, batch: Batch, peers: Sequence[NodeId]
    ) -> None:
        """The leader's Accept: early (before this turn's sync) when configured, with a commit
        point no later than what synced turns made durable."""
        early = self.config.early_accepts
        commit = self.commit_told(lead)
        if early:
            commit = min(commit, self.durable_commit)
        message = Accept(ballot=lead.ballot, slot=slot, batch=batch, commit=commit)
        lead.commit_sent = max(lead.commit_sent, commit)
        out = self.out.send_now if early else self.out.send_after_sync
        out.extend(Envelope(self.node_id, peer, message) for peer in peers)

    def _on_accept(self, src: NodeId, msg: Accept) -> None:
        if not self.acceptor.can_accept(msg.ballot):
            self._refuse(src, msg.ballot)
            return
        self._follow(msg.ballot)
        self.out.persist(self.acceptor.accept(msg.ballot, msg.slot, msg.batch))
        self.out.send(src, Accepted(ballot=msg.ballot, slot=msg.slot))
        catchup.learn_commit(self, msg.ballot, msg.commit)
        if self.config.variant == "accepted-config":
            epochs.use_accepted(self, msg.slot, msg.batch)  # a planted bug

    def _refuse(self, src: NodeId, ballot: Ballot) -> None:
        """An Accept or Heartbeat below our promise: tell the sender what we promised."""
        promised = self.acceptor.promised
        if promised is not None:  # else refused for its range alone: nothing to report
            self.out.send(src, Nack(ballot=ballot, promised=promised))

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
        self.advance()

    # -- learning and applying (the paper's replica) ------------------------------------------

    def advance(self) -> None:
        """Apply whatever became contiguous, answer the reads that waited for it, snapshot."""
        learner = self.learner
        applied = learner.advance()
        if applied:
            self.out.applied.extend(applied)
        if learner.changes:
            for slot, change in learner.take_changes():
                epochs.applied_change(self, slot, change)
        if self.next_epoch is not None:
            epochs.adopt_pending(self)
        if self.reads.waiting:
            reads.answer(self)
        self.catchup.reached(self)
        snapshots.maybe_take(self)

    # -- heartbeats, leadership checks and reads ------------------------------------------

    def _leader_tick(self, lead: Leadership) -> None:
        self.quiet_ticks = 0
        limit = self.config.election_ticks_max
        heard = lead.heard
        for peer in heard:
            heard[peer] += 1
        alive = [self.node_id, *(peer for peer, ticks in heard.items() if ticks <= limit)]
        if not self.quorum.is_phase2_quorum(alive):
            # Cut off from a quorum: nothing we propose can be chosen and no read can be
            # confirmed. Step down so clients go looking for a leader that can serve them.
            self.out.note("quorum_lost", ballot=lead.ballot, heard=len(alive))
            self._step_down(lead.ballot)
            self.leader_hint = None
            return
        lead.heartbeat_ticks_left -= 1
        if lead.heartbeat_ticks_left <= 0:
            self.heartbeat_round(lead)
        self._retransmit(lead)
        self.catchup.retry(self)
        transfer.tick(self, lead)
        epochs.promote_caught_up(self, lead)

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

    def commit_told(self, lead: Leadership) -> int:
        """The chosen point this leader may tell its followers in its ballot, which they read
        as "your acceptances of this ballot up to here are chosen": never past a slot it
        proposed and has not seen chosen. A leader whose ballot was overtaken can learn the
        values chosen there from a peer (a later epoch's Stale, then Entries, or a snapshot)
        while still leading: its own proposals there, which some followers accepted, were
        not chosen (simulator seed 5799 at 7 nodes, at eb6ec88: a follower applied them)."""
        chosen = self.learner.chosen_upto
        if lead.inflight:
            chosen = min(chosen, min(lead.inflight) - 1)
        return chosen

    def heartbeat_round(self, lead: Leadership) -> None:
        lead.heartbeat_ticks_left = self.config.heartbeat_ticks
        read_round = lead.read_index.start_round()
        commit = self.commit_told(lead)
        message = Heartbeat(ballot=lead.ballot, commit=commit, read_round=read_round)
        lead.commit_sent = max(lead.commit_sent, commit)
        for peer in self.peers:
            self.out.send(peer, message)
        reads.confirm(self, lead)  # a one-node cluster confirms on its own

    def _on_heartbeat(self, src: NodeId, msg: Heartbeat) -> None:
        if not self.acceptor.can_accept(msg.ballot):
            self._refuse(src, msg.ballot)
            return
        self._follow(msg.ballot)
        ack = Ack(ballot=msg.ballot, read_round=msg.read_round, applied=self.learner.applied)
        self.out.send(src, ack)
        catchup.learn_commit(self, msg.ballot, msg.commit)

    def _on_commit(self, src: NodeId, msg: Commit) -> None:
        if self.acceptor.can_accept(msg.ballot):
            self._follow(msg.ballot)
            catchup.learn_commit(self, msg.ballot, msg.commit)

    def _on_ack(self, src: NodeId, msg: Ack) -> None:
        lead = self.leading
        if lead is None or msg.ballot != lead.ballot:
            return
        lead.heard[src] = 0
        lead.applied[src] = msg.applied
        lead.read_index.ack(src, msg.read_round)
        reads.confirm(self, lead)
        if lead.transfer is not None:
            transfer.progress(self, lead)

    def _ignore(self, src: NodeId, msg: Any) -> None:
        """A message meant for another role (a rebuild's late report, say)."""


# One handler per message type: the whole protocol, as a table.
_HANDLERS: dict[type, Handler] = {
    Prepare: Replica._on_prepare,
    Promise: Replica._on_promise,
    Nack: Replica._on_nack,
    Accept: Replica._on_accept,
    Accepted: Replica._on_accepted,
    Heartbeat: Replica._on_heartbeat,
    Commit: Replica._on_commit,
    Ack: Replica._on_ack,
    Forward: queue.on_forward,
    PreVoteMessage: Replica._on_prevote,
    PreVoteReply: Replica._on_prevote_reply,
    ReadIndex: reads.on_read_index,
    ReadIndexReply: reads.on_read_index_reply,
    CatchUp: catchup.on_catchup,
    Entries: catchup.on_entries,
    SnapshotInstall: catchup.on_snapshot,
    StateQuery: rebuild.report_state,
    StateReport: Replica._ignore,
    TimeoutNow: transfer.on_timeout_now,
    Stale: epochs.on_stale,
}
# While rebuilding: a follower's table, but for the messages rebuild.py handles its own way.
_REBUILDING_HANDLERS: dict[type, Handler] = {**_HANDLERS, **rebuild.HANDLERS}
