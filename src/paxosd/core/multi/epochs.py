"""Membership change: one epoch after another (docs/engine.md, "Membership change: epochs").

Theory of operation. The cluster is a sequence of epochs, each a Multi-Paxos log over one
fixed `Configuration`. A `Reconfigure` command (reconfigure.py) chosen in epoch e at slot i
is epoch e's stop: e chooses nothing above i, and epoch e+1 runs from slot i+1 with the
members the command names. Inside an epoch the engine is unchanged. This module holds what
is added around it:

- The epoch lives in the ballot. Epoch e owns the rounds [e << 40, (e+1) << 40), so every
  ballot of a later epoch is higher than every ballot of an earlier one, and a message's
  epoch is its ballot's: no message needs a new field, and a promise made in an earlier
  epoch never blocks a later one. `screen` is the rule for every message that carries a
  ballot: a node answers only its own epoch's. A request of an earlier epoch gets `Stale`
  (this epoch's members and first slot), one of a later epoch means this node lags: it asks
  the sender for the chosen slots it lacks, and votes on nothing meanwhile. Chosen values
  (CatchUp, Entries, snapshots) belong to no epoch, and flow between all of them.
- The change (`request`, `propose_when_ready`). Only a leader proposes one, only once a
  value of its own ballot is chosen, no other change is unresolved, and its pipeline is
  drained (rule 1): the stop then takes the next slot, every slot below it is chosen, and
  the leader proposes nothing above it (its queue holds until the new epoch's leader takes
  it over). A second change meanwhile is refused with "a membership change is in progress".
- Adoption (`adopt`). A node that applies a chosen change adopts the new epoch at once, in
  the same turn: it persists `Configured(configuration)` (whose `first_slot` is the slot
  after the stop, so that a node restarting from an older snapshot knows it must reach it
  before it leads), drops the acceptances of earlier epochs above the stop (values never
  chosen), and steps down if it led; the old leader, if it votes in the new epoch,
  campaigns at once. A node that learns a later epoch from `Stale` (it may have jumped over
  the stop by installing a snapshot) adopts it once it has applied up to the epoch's first
  slot. A node that is not among the new members stops campaigning: it was removed.
- Learners receive the leader's Accepts, Heartbeats and Commits, answer Heartbeats (so the
  leader sees how far they have applied) and never vote.
- A node rebuilding a lost store (rebuild.py) can vouch for nothing in a later epoch than
  the one its new store was made for: once it learns of one, its rebuild never finishes,
  and peers of a later epoch answer its StateQuery with Stale instead of a report. A lost
  store comes back only under a new identity once the membership has changed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from paxosd.core.multi import busy, catchup, reads
from paxosd.core.multi.acceptor import AcceptorLog
from paxosd.core.multi.ballots import ROUND_BITS, epoch_of, is_mark, mark
from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.core.multi.leader import Leadership
from paxosd.core.multi.messages import (
    Accept,
    Accepted,
    Ack,
    Commit,
    Heartbeat,
    Nack,
    Prepare,
    PreVote,
    PreVoteReply,
    Promise,
    Stale,
    TimeoutNow,
)
from paxosd.core.multi.reconfigure import Reconfigure, in_batch
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Batch, Configured, Record
from paxosd.core.types import NodeId, ballot_round_max

if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica

# The last epoch whose rounds the ballot range still holds (rounds up to 2**62).
epoch_max = (ballot_round_max >> ROUND_BITS) - 1

_REQUESTS = (Prepare, Accept, Heartbeat, Commit, PreVote, TimeoutNow)
_REPLIES = (Promise, Accepted, Nack, Ack, PreVoteReply)


def screen(replica: Replica, src: NodeId, msg: Any) -> bool:
    """Whether `msg` was dealt with here (it is not for this node's epoch, or this node
    does not vote in it); False: the role's handler takes it."""
    own = replica.configuration.epoch
    if isinstance(msg, _REQUESTS):
        epoch = epoch_of(msg.ballot)
        if epoch < own:
            replica.out.send(src, Stale(configuration=replica.configuration))
            return True
        if epoch > own:
            if isinstance(msg, Prepare):
                replica.deferred[src] = msg  # answered once this node is in that epoch
            _behind(replica, src)
            return True
        if replica.configuration.is_voter(replica.node_id):
            return False
        if replica.configuration.is_member(replica.node_id):
            _as_learner(replica, src, msg)
        return True
    if isinstance(msg, _REPLIES):
        if isinstance(msg, Nack) and epoch_of(msg.promised) > own:
            _behind(replica, src)
        return epoch_of(msg.ballot) != own
    return False


def _behind(replica: Replica, src: NodeId) -> None:
    """A peer is in a later epoch: fetch the chosen slots this node lacks from it."""
    replica.catchup.ask(replica, src, replica.learner.chosen_upto + 1)


def _as_learner(replica: Replica, src: NodeId, msg: Any) -> None:
    """A learner follows the leader to learn from it; it never votes."""
    if not isinstance(msg, Accept | Heartbeat | Commit):
        return  # Prepare, PreVote, TimeoutNow: a learner takes no part in elections
    if replica.acceptor.promised is not None and msg.ballot < replica.acceptor.promised:
        return
    replica.see(msg.ballot)
    replica.leader_hint = msg.ballot.node
    replica.quiet_ticks = 0
    if isinstance(msg, Heartbeat):
        ack = Ack(ballot=msg.ballot, read_round=0, applied=replica.learner.applied)
        replica.out.send(src, ack)
    catchup.learn_commit(replica, msg.ballot, msg.commit)


def on_stale(replica: Replica, src: NodeId, msg: Stale) -> None:
    """A peer is in a later epoch: remember it, and catch up to where it starts."""
    configuration = msg.configuration
    if configuration.epoch <= replica.configuration.epoch:
        return
    pending = replica.next_epoch
    if pending is None or configuration.epoch > pending.epoch:
        replica.next_epoch = configuration
        replica.out.note("epoch_behind", src=src, epoch=configuration.epoch,
                         first_slot=configuration.first_slot)  # fmt: skip
    rebuilding = replica.rebuilding
    if rebuilding is not None and not rebuilding.stranded:
        rebuilding.stranded = True
        replica.out.note("rebuild_stranded", epoch=configuration.epoch)
    if not adopt_pending(replica):
        replica.catchup.ask(replica, src, configuration.first_slot - 1)


def applied_change(replica: Replica, slot: int, change: Reconfigure) -> None:
    """The learner applied a chosen change at `slot`: adopt the epoch it starts (unless this
    node is already there, having restarted in it or jumped to a later one)."""
    configuration = change.configuration
    if configuration.epoch <= replica.configuration.epoch:
        return
    adopt(replica, replace(configuration, first_slot=slot + 1))


def use_accepted(replica: Replica, slot: int, batch: Batch) -> None:
    """The planted bug `accepted-config` (mutant R1's, as an engine variant): a follower
    enters the epoch a change it has just accepted starts, before the change is chosen."""
    change = in_batch(batch)
    if change is not None and change.configuration.epoch == replica.configuration.epoch + 1:
        applied_change(replica, slot, change)


def removed_by(replica: Replica) -> Configuration | None:
    """The latest configuration this node knows of, if it leaves this node out: the one it is
    in, or a later one a peer told of (`Stale`) that it has not reached yet. A node removed
    while it lagged cannot catch up to that epoch (its members no longer send it the log), so
    it must know it from `Stale` alone, to send its clients and watchers to a member."""
    latest = replica.next_epoch or replica.configuration
    return None if latest.is_member(replica.node_id) else latest


def adopt_pending(replica: Replica) -> bool:
    """Adopt the later epoch a peer told of, once this node has applied up to its start."""
    pending = replica.next_epoch
    if pending is None:
        return False
    if pending.epoch <= replica.configuration.epoch:
        replica.next_epoch = None
        return False
    if replica.learner.applied < pending.first_slot - 1:
        return False
    replica.next_epoch = None
    adopt(replica, pending)
    return True


def adopt(replica: Replica, configuration: Configuration) -> None:
    """Enter the epoch `configuration` (this node has applied every slot before its first
    slot): durably, before anything of the new epoch leaves this node."""
    old = replica.configuration
    drop_older(replica.acceptor, configuration)
    replica.out.persist([*_mark_chosen(replica, configuration), Configured(configuration)])
    lead = replica.leading
    if lead is not None:
        # Tell the old epoch's members that the stop is chosen, so that they adopt too: as
        # far as this leader chose in its ballot (it may have learned the stop from a peer,
        # its ballot overtaken: its own proposals there were not chosen).
        commit = Commit(ballot=lead.ballot, commit=replica.commit_told(lead))
        for peer in replica.peers:
            replica.out.send(peer, commit)
        reads.step_down(replica, lead)
        for command in lead.queue.drain():  # for the new epoch's leader
            queued = replica.forward_queue.offer(command)
            assert queued, "a leader's forward queue is empty"
    replica.leading = replica.campaign = replica.prevote = None
    replica.leader_hint = None
    replica.configure(configuration)
    replica.out.note(
        "epoch_adopted",
        epoch=configuration.epoch,
        first_slot=configuration.first_slot,
        voters=configuration.voters,
        learners=configuration.learners,
        joined=tuple((j.node, j.incarnation, j.contact) for j in configuration.joined),
    )
    me = replica.node_id
    if not configuration.is_member(me):
        replica.out.note("removed", epoch=configuration.epoch, was=old.describe())
        # No leader will ever be known here again: the host fails the writes behind these
        # (with an unknown outcome), and their clients retry at a member.
        replica.forward_queue.drain()
    rebuilding = replica.rebuilding
    if rebuilding is not None and not rebuilding.stranded:
        rebuilding.stranded = True
        replica.out.note("rebuild_stranded", epoch=configuration.epoch)
    deferred, replica.deferred = replica.deferred, {}
    if lead is not None and configuration.is_voter(me) and rebuilding is None:
        replica.start_election()  # the old leader: no election timeout with no leader
    else:
        replica.election_ticks_left = replica.election_timeout()
    for src, prepare in deferred.items():
        if epoch_of(prepare.ballot) == configuration.epoch and replica.leading is None:
            replica.step_message(src, prepare)


def drop_older(acceptor: AcceptorLog, configuration: Configuration) -> None:
    """Forget acceptances of earlier epochs from `configuration`'s first slot on: they were
    never chosen (the old epoch stopped below), and must not reach a promise of this one.
    By their ballots' epoch, not by when they were written, so that a store's records may
    come back in any order after a restart."""
    first, epoch = configuration.first_slot, configuration.epoch
    if epoch == 0:
        return
    entries = acceptor.entries
    for slot in [s for s, (b, _) in entries.items() if s >= first and epoch_of(b) < epoch]:
        del entries[slot]


def _mark_chosen(replica: Replica, configuration: Configuration) -> list[Record]:
    """Make the values chosen up to the stop durable, as acceptances in the new epoch's mark
    ballot. A node restarted below its epoch's first slot must reach it before it leads, and
    if every member restarted (a power failure just after the change) no one might still know
    those values but from its own store: the old epoch, which could have recovered them with
    a phase 1, is over. The node's own acceptances below the stop are of no use any more (no
    phase 1 of the old epoch asks it, and the new one asks from the first slot), so they are
    replaced. At most the slots since its last snapshot are written, once per change.

    The mark is not promised. A crash may tear this write before its `Configured` record,
    and the node then comes back in the old epoch, where it may be needed: if it learned the
    stop was chosen before anyone else did, the other voters cannot recover the stop without
    it. A promise of the mark would have replaced, in its store, the highest promise it made
    in the old epoch (a store keeps only the highest), and it could have promised nothing
    there again (simulator seed 30326 at 3 nodes). Unpromised, the torn write leaves it the
    old epoch's voter it was, with some of its acceptances replaced by marks of values that
    were chosen: a phase 1 that reads one takes the chosen value (the mark is higher than
    any ballot of the old epoch), and it is as safe as a crash before the write."""
    acceptor, learner = replica.acceptor, replica.learner
    ballot = mark(configuration.epoch)
    records: list[Record] = []
    for slot in range(learner.snapshot_slot + 1, configuration.first_slot):
        batch = learner.chosen.get(slot)
        if batch is not None and slot > acceptor.snapshot_slot:
            acceptor.entries[slot] = (ballot, batch)
            records.append(AcceptedRecord(slot, ballot, batch))
    return records


def learn_marked(replica: Replica) -> None:
    """After a restart: the values a store marked as chosen (`_mark_chosen`) are known."""
    learner = replica.learner
    for slot, (ballot, batch) in sorted(replica.acceptor.entries.items()):
        if slot > learner.chosen_upto and is_mark(ballot):
            learner.learn(slot, batch)


def may_campaign(replica: Replica) -> bool:
    """A voter that has applied up to its epoch's first slot (a node restarted from an older
    snapshot has not: its phase 1 would read old acceptances as this epoch's)."""
    c = replica.configuration
    if replica.config.variant == "accepted-config":
        return c.is_voter(replica.node_id)  # the planted bug: need not have reached its start
    return c.is_voter(replica.node_id) and replica.learner.chosen_upto >= c.first_slot - 1


def tick(replica: Replica) -> None:
    """A voter that restarted below its epoch's first slot catches up, from each peer in
    turn, before it may campaign."""
    c = replica.configuration
    target = c.first_slot - 1
    if replica.learner.chosen_upto >= target or not replica.peers:
        return
    replica.catchup.ask(replica, _next_peer(replica), target)


def learner_tick(replica: Replica) -> None:
    """A learner that has heard no leader for an election timeout asks a peer (each in turn,
    once per timeout) for the chosen values it lacks. A learner sends nothing a peer of a
    later epoch would answer with Stale, and no leader sends the log to a node it removed:
    a learner removed while it was down or cut off would otherwise wait for ever, serving
    nobody; the values it is sent hold its removal, and applying it, it learns it."""
    limit = replica.config.election_ticks_max
    quiet = replica.quiet_ticks
    if quiet < limit or quiet % limit or not replica.peers:
        return
    replica.catchup.ask(replica, _next_peer(replica), replica.learner.chosen_upto + 1)


def lagging_tick(replica: Replica) -> None:
    """A voter whose election timeout passed but that may not campaign, having seen a later
    epoch's ballot (a lost catch-up's, or its own promise of a later epoch's mark, which a
    store written before marks went unpromised may hold without the epoch's `Configured`
    record, a torn write having lost it), asks a peer (each in turn, once per timeout) for
    the chosen values it lacks. Removed by that later epoch, it would otherwise wait for
    ever: its members send it nothing, and it sends nothing a peer would answer with Stale.
    The values it is sent hold the change; applying it, it adopts the epoch (and learns it
    was removed)."""
    epoch = replica.configuration.epoch
    seen = [b for b in (replica.acceptor.promised, replica.highest_seen) if b is not None]
    if replica.peers and any(epoch_of(b) > epoch for b in seen):
        replica.catchup.ask(replica, _next_peer(replica), replica.learner.chosen_upto + 1)


def _next_peer(replica: Replica) -> NodeId:
    """The peer after the one last asked for chosen values (the first if none was)."""
    peers = replica.peers
    source = replica.catchup.source
    return peers[(peers.index(source) + 1) % len(peers)] if source in peers else peers[0]


# -- the leader's side -------------------------------------------------------------------------


def request(
    replica: Replica,
    voters: tuple[NodeId, ...],
    learners: tuple[NodeId, ...],
    joining: Joined | None = None,
) -> str:
    """Ask the leader to change the membership to `voters` and `learners` (with `joining`,
    the identity of a node that joins as a learner): the reason it is refused, or "" once it
    is under way (it is proposed when the pipeline has drained)."""
    lead = replica.leading
    me = replica.node_id
    if lead is None:
        return busy.not_leader(me, replica.leader_hint)
    if lead.change is not None or lead.stop is not None:
        return busy.CHANGING
    if lead.transfer is not None:
        return busy.handing_over(lead.transfer.target)
    current = replica.configuration
    epoch = current.epoch + 1
    if epoch > epoch_max:
        return f"no epoch after {current.epoch} fits the ballot range"
    if joining is not None:
        if joining.node not in learners or joining.node in voters:
            return f"node {joining.node} joins as a learner: name it among the learners"
        if current.is_member(joining.node):
            return (
                f"node {joining.node} is a member already: to replace it, remove it first "
                f"(paxosd member remove {joining.node}), then join the new one"
            )
    try:
        configuration = current.after(voters, learners, joining)
    except ValueError as error:
        return f"not a valid membership: {error}"
    if configuration.same_members(current):
        return f"the members are already {current.describe()}"
    if me not in configuration.voters:
        return f"node {me} leads: hand leadership to another voter first, then remove it"
    new = [v for v in configuration.voters if not current.is_member(v)]
    if new:
        ids = ",".join(map(str, new))
        return f"node(s) {ids} must join as learners first, and be promoted once caught up"
    limit = replica.config.election_ticks_max
    answering = {me, *(n for n, ticks in lead.heard.items() if ticks <= limit)}
    promoted = [v for v in configuration.voters if v in current.learners]
    behind = [v for v in promoted if lead.applied.get(v, -1) < _caught_up(replica)]
    answering -= set(behind)
    if not configuration.quorum.is_phase2_quorum(answering):
        voting = sorted(answering & set(configuration.voters))
        return (
            f"{configuration.describe()} needs {configuration.quorum.size} voters answering, "
            f"but only {len(voting)} do ({','.join(map(str, voting)) or 'none'}): it could "
            f"not choose anything"
        )
    lead.change = configuration
    replica.out.note("change_requested", epoch=epoch, members=configuration.describe())
    return ""


def promote_caught_up(replica: Replica, lead: Leadership) -> None:
    """With `auto_promote`, the leader promotes a learner that has caught up (rule 5): once
    nothing else is under way and the learner answers, within 90 % of the chosen log. The
    change is an ordinary one: the same checks, the same refusals (then it tries again on a
    later tick)."""
    configuration = replica.configuration
    if (
        not configuration.learners
        or not replica.config.auto_promote
        or lead.change is not None
        or lead.stop is not None
        or lead.transfer is not None
        or replica.learner.chosen_upto < lead.recovered_upto
    ):
        return
    limit = replica.config.election_ticks_max
    for learner in configuration.learners:
        if lead.heard.get(learner, limit + 1) > limit:
            continue
        if lead.applied.get(learner, -1) < _caught_up(replica):
            continue
        voters = (*configuration.voters, learner)
        learners = tuple(n for n in configuration.learners if n != learner)
        if request(replica, voters, learners) == "":
            replica.out.note("learner_promoted", learner=learner, epoch=configuration.epoch + 1)
        return


def _caught_up(replica: Replica) -> int:
    """How far a learner must have applied to be promoted: 90 % of the chosen log."""
    return replica.learner.chosen_upto * 9 // 10


def ready_to_propose(replica: Replica, lead: Leadership) -> bool:
    """Rule 1: a value of this leader's ballot is chosen, and nothing is in flight."""
    return (
        lead.change is not None
        and not lead.inflight
        and replica.learner.chosen_upto >= lead.recovered_upto
        and replica.learner.chosen_upto == lead.next_slot - 1
    )


def propose_when_ready(replica: Replica, lead: Leadership) -> None:
    """Propose the change asked for, once the pipeline has drained."""
    change = lead.change
    if change is None or not ready_to_propose(replica, lead):
        return
    lead.change = None
    slot = lead.next_slot
    lead.stop = slot
    if replica.config.variant == "past-stop":
        lead.stop = None  # the planted bug: it forgets its stop, and batches go on above it
    replica.out.note("change_proposed", epoch=change.epoch, slot=slot)
    replica.propose_slot(lead, slot, Reconfigure(change).batch())
