"""Linearizable reads, the replica's side: from the client's question to its answer.

Theory of operation. A read is answered from the local state machine, but only at a point no
earlier than the read's arrival in real time. At the leader, read_index.py confirms that it
still leads (a quorum acknowledged a heartbeat round started after the read arrived) and gives
the read its index: the chosen point when it arrived. A follower asks the leader for that
(ReadIndex / ReadIndexReply) and waits until it has applied as far as the index itself. A read
that cannot be confirmed - no leader known, the leader changed or stepped down, or it refused -
is refused (`ReadRefused`), and the client asks again wherever the leader now is: a refusal is
always safe, a stale answer never is.

Every read waits in exactly one place: `pending` at the leader's read index, `remote` while
a follower's leader confirms it, or `waiting` (confirmed, with its index) until the state
machine has applied that far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paxosd.core.multi.messages import ReadIndex, ReadIndexReply
from paxosd.core.multi.read_index import RemoteRead
from paxosd.core.multi.ready import ReadDone, ReadRefused
from paxosd.core.types import NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.leader import Leadership
    from paxosd.core.multi.replica import Replica


@dataclass(slots=True)
class Reads:
    queries: dict[int, Any] = field(default_factory=dict)  # read id -> the query
    remote: dict[int, NodeId] = field(default_factory=dict)  # read id -> the leader asked
    waiting: list[tuple[int, int]] = field(default_factory=list)  # (read id, index): to apply


def request(replica: Replica, read_id: int, query: Any) -> None:
    """A client's read arrived (see `Replica.read`)."""
    reads = replica.reads
    assert read_id not in reads.queries, f"read {read_id} is already outstanding"
    reads.queries[read_id] = query
    lead = replica.leading
    if lead is None:
        leader = replica.leader_hint
        if leader is None or leader == replica.node_id:
            refuse(replica, read_id)
            return
        reads.remote[read_id] = leader
        replica.out.send(leader, ReadIndex(read_id=read_id))
        return
    if replica.config.variant == "unconfirmed-reads":
        # The planted bug: no confirmation, so a deposed leader serves stale state.
        reads.waiting.append((read_id, replica.learner.chosen_upto))
        answer(replica)
        return
    lead.read_index.request(read_id, replica.learner.chosen_upto)


def confirm(replica: Replica, lead: Leadership) -> None:
    """A heartbeat round may have been confirmed: hand confirmed reads their index (and
    followers their ReadIndexReply), and start another round if reads still wait for one."""
    if replica.learner.chosen_upto < lead.recovered_upto:
        lead.read_index.settle()  # confirmed or not, reads wait until recovery is done
        return
    for read, index in lead.read_index.take_confirmed():
        index = max(index, lead.recovered_upto)
        if isinstance(read, RemoteRead):
            replica.out.send(read.node, ReadIndexReply(read_id=read.read_id, index=index))
        else:
            replica.reads.waiting.append((read, index))
    answer(replica)
    if lead.read_index.needs_round():
        replica.heartbeat_round(lead)


def answer(replica: Replica) -> None:
    """Answer every confirmed read whose index the state machine has applied."""
    reads = replica.reads
    applied = replica.learner.applied
    machine = replica.learner.machine
    still: list[tuple[int, int]] = []
    for read_id, index in reads.waiting:
        if applied >= index:
            query = reads.queries.pop(read_id)
            replica.out.reads.append(ReadDone(read_id, machine.read(query)))
        else:
            still.append((read_id, index))
    reads.waiting = still


def refuse(replica: Replica, read_id: int) -> None:
    replica.reads.queries.pop(read_id, None)
    replica.out.reads.append(ReadRefused(read_id, replica.leader_hint))


def refuse_remote(replica: Replica) -> None:
    """The leader asked to confirm these reads is not the leader any more: ask again."""
    for read_id in replica.reads.remote:
        refuse(replica, read_id)
    replica.reads.remote = {}


def step_down(replica: Replica, lead: Leadership | None) -> None:
    """Leadership ended (or a follower's leader changed): no read waiting here may be answered
    from this node's state any more."""
    if lead is not None:
        for read in lead.read_index.drop():
            if isinstance(read, RemoteRead):
                replica.out.send(read.node, ReadIndexReply(read_id=read.read_id, index=-1))
            else:
                refuse(replica, read)
    for read_id, _ in replica.reads.waiting:
        refuse(replica, read_id)
    replica.reads.waiting = []


def on_read_index(replica: Replica, src: NodeId, msg: ReadIndex) -> None:
    lead = replica.leading
    if lead is None:
        replica.out.send(src, ReadIndexReply(read_id=msg.read_id, index=-1))
        return
    lead.read_index.request(RemoteRead(src, msg.read_id), replica.learner.chosen_upto)


def on_read_index_reply(replica: Replica, src: NodeId, msg: ReadIndexReply) -> None:
    reads = replica.reads
    if reads.remote.pop(msg.read_id, None) is None:
        return
    if msg.index < 0:
        refuse(replica, msg.read_id)
    else:
        reads.waiting.append((msg.read_id, msg.index))
        answer(replica)
