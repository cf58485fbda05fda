"""Rebuilding a lost store: the REBUILDING role of a replica.

Theory of operation. A node that lost its durable state must not vote: it may have promised
a ballot or accepted a value that a quorum counted, and an empty acceptor would contradict
itself. It comes back rebuilding instead (a `Rebuilding(True)` record, written by `paxosd node
--reinitialize`), and while it rebuilds it takes no part in phase 1 or 2:

1. It asks EVERY voting peer for its acceptor state (StateQuery, again every
   `retransmit_ticks` until each answered) and gets a StateReport from each.
2. Once every peer reported, it adopts the highest promise and, per slot, the highest-ballot
   acceptance any of them reports (persisting them), and sets its target: the highest
   snapshot slot any of them has.
3. It catches up (from the leader it hears, or the peer with that snapshot) until its chosen
   point reaches the target, and only then persists `Rebuilding(False)` and votes again.

This is safe because (1) any ballot it ever promised was first promised, durably, by its own
candidate, so the highest promise among all peers is at least as high; (2) any value chosen
with its vote was also durably accepted by another member of that quorum, at a ballot at least
as high, with the same value (the Paxos invariant), or is covered by that member's snapshot,
which is why it must reach the highest snapshot before voting. It needs every peer, not a
quorum: the one peer that holds the proof may be the one missing. A rebuilding peer's report
does not count (it has nothing it could vouch for). Prefer a stalled rebuild to a wrong
answer; `Status.rebuild_waiting_for` names whom it waits for, so an operator can act.

While rebuilding, a node follows a leader only to learn from it: Accepts, Heartbeats and
Commits tell it the commit point to catch up to, and get no answer; Prepares get none either,
PreVotes a refusal, and it serves no catch-up of its own. `HANDLERS` are the messages it
handles differently from a follower; the replica dispatches through them while this role
lasts, as etcd's raft swaps its step function per role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paxosd.core.multi.messages import (
    Accept,
    CatchUp,
    Commit,
    Heartbeat,
    Prepare,
    PreVote,
    PreVoteReply,
    Stale,
    StateQuery,
    StateReport,
)
from paxosd.core.multi.ready import RebuildWait
from paxosd.core.multi.records import Rebuilding
from paxosd.core.types import Ballot, NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica


@dataclass(slots=True)
class Rebuild:
    """A node rebuilding a lost store: the peers' reports, then the snapshot slot to reach."""

    reports: dict[NodeId, StateReport] = field(default_factory=dict)
    # Peers that answered that they are rebuilding too: asked again, never counted.
    rebuilding_peers: set[NodeId] = field(default_factory=set)
    query_ticks_left: int = 0
    # It learned of a later epoch than its new store's (epochs.py): it can vouch for
    # nothing there, so the rebuild never finishes (the node must rejoin as a new member).
    stranded: bool = False
    target: int | None = None  # set once every peer reported
    source: NodeId | None = None  # the peer with the highest snapshot

    def waiting_for(self, peers: tuple[NodeId, ...]) -> tuple[tuple[NodeId, RebuildWait], ...]:
        if self.target is not None:
            return ()
        rebuilding, no_answer = RebuildWait.REBUILDING, RebuildWait.NO_ANSWER
        return tuple(
            (peer, rebuilding if peer in self.rebuilding_peers else no_answer)
            for peer in peers
            if peer not in self.reports
        )


def tick(replica: Replica, rebuild: Rebuild) -> None:
    """Ask the peers that have not reported (again, now and then); once every peer has, head
    for the target and finish there."""
    if rebuild.stranded:
        return
    if rebuild.target is None:
        rebuild.query_ticks_left -= 1
        if rebuild.query_ticks_left <= 0:
            rebuild.query_ticks_left = replica.config.retransmit_ticks
            for peer in replica.voting_peers:
                if peer not in rebuild.reports:
                    replica.out.send(peer, StateQuery())
        return
    if replica.learner.chosen_upto >= rebuild.target:
        finish(replica)
    else:
        replica.catchup.ask(replica, replica.leader_hint or rebuild.source, rebuild.target)


def finish(replica: Replica) -> None:
    rebuild = replica.rebuilding
    if rebuild is not None and rebuild.stranded:
        return
    replica.end_rebuild()
    replica.out.persist([Rebuilding(False)])
    replica.out.note("rebuild_finished", chosen_upto=replica.learner.chosen_upto)


def heard_leader(replica: Replica, ballot: Ballot, commit: int) -> None:
    """A rebuilding node follows a leader only to learn from it, never to vote."""
    replica.see(ballot)
    replica.leader_hint = ballot.node
    replica.quiet_ticks = 0
    if commit > replica.learner.chosen_upto:
        replica.catchup.ask(replica, ballot.node, commit)


def _on_accept(replica: Replica, src: NodeId, msg: Accept | Heartbeat | Commit) -> None:
    heard_leader(replica, msg.ballot, msg.commit)  # no vote, no Ack: it cannot vouch


def _on_prepare(replica: Replica, src: NodeId, msg: Prepare) -> None:
    pass  # it cannot know what it promised before: no answer at all


def _on_prevote(replica: Replica, src: NodeId, msg: PreVote) -> None:
    replica.out.send(src, PreVoteReply(ballot=msg.ballot, granted=False))


def _on_catchup(replica: Replica, src: NodeId, msg: CatchUp) -> None:
    pass  # what it knows, it is still putting together


def report_state(replica: Replica, src: NodeId, msg: StateQuery) -> None:
    """A voting node's answer to a peer that rebuilds: its whole durable acceptor state.
    Only in the first epoch: once membership has changed, a node that lost its store can
    vouch for nothing, and is told the current epoch instead (epochs.py)."""
    if replica.configuration.epoch > 0:
        replica.out.send(src, Stale(configuration=replica.configuration))
        return
    acceptor = replica.acceptor
    report = StateReport(
        whole=True,
        promised=acceptor.promised,
        accepted=acceptor.report(acceptor.snapshot_slot + 1),
        snapshot_slot=acceptor.snapshot_slot,
    )
    replica.out.send(src, report)  # after the sync, like every reply: it vouches for state


def _on_state_query(replica: Replica, src: NodeId, msg: StateQuery) -> None:
    report = StateReport(whole=False, promised=None, accepted=(), snapshot_slot=0)
    replica.out.send(src, report)  # nothing it could vouch for


def _on_state_report(replica: Replica, src: NodeId, msg: StateReport) -> None:
    rebuild = replica.rebuilding
    assert rebuild is not None
    if rebuild.target is not None:
        return
    if not msg.whole:
        rebuild.rebuilding_peers.add(src)
        return
    rebuild.rebuilding_peers.discard(src)
    rebuild.reports[src] = msg
    if set(rebuild.reports) != set(replica.voting_peers):
        return
    reports = rebuild.reports.values()
    promised = max((r.promised for r in reports if r.promised is not None), default=None)
    rebuild.target = max(r.snapshot_slot for r in reports)
    rebuild.source = max(rebuild.reports, key=lambda n: rebuild.reports[n].snapshot_slot)
    acceptor = replica.acceptor
    floor = max(rebuild.target, acceptor.snapshot_slot)
    if promised is not None:
        replica.out.persist(acceptor.promise(promised))
    adopted = 0
    for report in reports:
        for slot, ballot, batch in report.accepted:
            if slot > floor:
                records = acceptor.adopt(slot, ballot, batch)
                adopted += len(records)
                replica.out.persist(records)
    replica.out.note(
        "rebuild_merged", promised=promised, adopted_slots=adopted, catch_up_to=rebuild.target
    )
    if replica.learner.chosen_upto >= rebuild.target:
        finish(replica)


# The messages a rebuilding node handles unlike a follower (the rest it handles as one).
HANDLERS: dict[type, Callable[[Replica, NodeId, Any], None]] = {
    Prepare: _on_prepare,
    PreVote: _on_prevote,
    Accept: _on_accept,
    Heartbeat: _on_accept,
    Commit: _on_accept,
    CatchUp: _on_catchup,
    StateQuery: _on_state_query,
    StateReport: _on_state_report,
}
