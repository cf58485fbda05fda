"""Leadership transfer: the leader hands over to another voter, for maintenance, with no
failed write.

Theory of operation (Raft thesis 3.10, in this engine's terms). `start` makes the leader
stop forming new batches (client commands wait in its queue; followers' forwarded ones too)
and asks every peer for a heartbeat acknowledgement at once. When nothing is in flight and
the target's last Ack says it has applied everything chosen, the leader sends it TimeoutNow
(`progress`). The target campaigns at once, without PreVote, and its Prepare says it was
handed over (`Prepare.transfer`), so peers that still hear the old leader promise anyway:
stickiness exists to keep a node that was cut off from disrupting a live leader, not to
refuse the node that leader chose. The old leader promises the higher ballot and steps
down like any leader that meets one: the commands still in its queue are forwarded to the
new leader, and their clients get their answers when those are applied. If the handover
does not happen within an election timeout (the target is slow, or gone), it is abandoned
and the leader goes on.

Safety is not at stake: a transfer only changes who runs phase 1 next, and phase 1 is safe
whoever runs it and whenever. What it buys is availability: the target starts up to date,
so its phase 1 re-proposes nothing, and no election timeout passes with no leader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxosd.core.multi import busy
from paxosd.core.multi.leader import Leadership, Transfer
from paxosd.core.multi.messages import TimeoutNow
from paxosd.core.types import NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica


def start(replica: Replica, target: NodeId) -> str | None:
    """Begin handing leadership to `target`; the reason it cannot be done, or None."""
    lead = replica.leading
    if lead is None:
        return busy.not_leader(replica.node_id, replica.leader_hint)
    if target == replica.node_id:
        return f"node {target} already leads"
    if target not in replica.voting_peers:
        return f"node {target} is not a voting member: only a voter can lead"
    if lead.transfer is not None:
        return busy.handing_over(lead.transfer.target)
    if lead.change is not None or lead.stop is not None:
        return busy.CHANGING
    lead.transfer = Transfer(target, replica.config.election_ticks_max)
    replica.out.note("transfer_started", target=target, ballot=lead.ballot)
    replica.heartbeat_round(lead)  # fresh Acks: how far the target has applied
    progress(replica, lead)
    return None


def progress(replica: Replica, lead: Leadership) -> None:
    """Tell the target to campaign once it is caught up and nothing is in flight."""
    transfer = lead.transfer
    if transfer is None or transfer.told or lead.inflight:
        return
    if lead.applied.get(transfer.target, -1) < replica.learner.chosen_upto:
        return
    transfer.told = True
    replica.out.note("transfer_told", target=transfer.target, chosen=replica.learner.chosen_upto)
    replica.out.send(transfer.target, TimeoutNow(ballot=lead.ballot))


def tick(replica: Replica, lead: Leadership) -> None:
    transfer = lead.transfer
    if transfer is None:
        return
    transfer.ticks_left -= 1
    if transfer.ticks_left <= 0:
        lead.transfer = None
        replica.out.note("transfer_abandoned", target=transfer.target, told=transfer.told)
        return
    progress(replica, lead)


def on_timeout_now(replica: Replica, src: NodeId, msg: TimeoutNow) -> None:
    """The leader this node follows hands leadership to it: campaign now."""
    promised = replica.acceptor.promised
    if (
        replica.leading is not None
        or replica.campaign is not None
        or replica.rebuilding is not None
        # Only from the leader it follows now, in that leader's ballot. Its promise may be
        # older: a node that caught up from heartbeats alone (it started after the election,
        # and no write came since) never saw a Prepare or an Accept of that ballot.
        or replica.leader_hint != src
        or msg.ballot.node != src
        or (promised is not None and promised > msg.ballot)
    ):
        return
    replica.out.note("transfer_campaign", src=src, ballot=msg.ballot)
    replica.start_election(handed_over=True)
