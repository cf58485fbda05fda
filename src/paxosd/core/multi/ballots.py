"""Which ballots a replica acts on: admission control for every message that carries one.

Theory of operation. A ballot is an ordered (round, node) pair, and every ballot the core may
hold fits the protocol's range, which the peer wire and the disk carry exactly (core/types.py).
A replica refuses any message that asks it to act on a ballot outside that range, or on one
more than `ballot_round_step_max` rounds above everything it has seen (its promise and the
highest ballot any peer used). No honest peer ever makes such a jump: each new ballot is one
round above the highest its maker has seen. A forged or corrupted frame could, and promising
it would use up the ballot space for good (a node never promises a ballot without a
successor, so the cluster would be wedged). A refused message is dropped with a note, logged
on the 1st, 2nd, 4th, 8th, ... refusal so that a flood does not flood the log too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paxosd.core.multi.messages import (
    Accept,
    Accepted,
    Ack,
    Commit,
    Entries,
    Heartbeat,
    Nack,
    Prepare,
    PreVote,
    PreVoteReply,
    Promise,
    SnapshotInstall,
    StateReport,
    TimeoutNow,
)
from paxosd.core.types import Ballot, NodeId, ballot_round_step_max

ROUND_BITS = 40  # epoch e owns the ballot rounds [e << 40, (e+1) << 40) (epochs.py)


def epoch_of(ballot: Ballot) -> int:
    return ballot.round >> ROUND_BITS


def first_round(epoch: int) -> int:
    return epoch << ROUND_BITS


def mark(epoch: int) -> Ballot:
    """The ballot that marks a value as chosen before `epoch` began (epochs.py): the epoch's
    lowest round, which no node makes (its ballots start one above). A mark is a record of
    knowledge, not a vote: no acceptor promises it."""
    return Ballot(first_round(epoch), 0)


def is_mark(ballot: Ballot) -> bool:
    return ballot.node == 0 and ballot.round == first_round(epoch_of(ballot))


if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica


def admissible(replica: Replica, src: NodeId, msg: Any) -> bool:
    """Whether `replica` may act on `msg` (see the module docstring); notes a refusal."""
    ballots = ballots_of(msg)
    if not ballots:
        return True
    # Rounds are counted within this node's epoch (epochs.py); a ballot of a later epoch is
    # admitted, as it only makes this node catch up, never vote.
    epoch = replica.configuration.epoch
    seen = (replica.acceptor.promised, replica.highest_seen)
    known = max(
        (b.round for b in seen if b is not None and epoch_of(b) == epoch),
        default=first_round(epoch),
    )
    for ballot in ballots:
        if ballot.in_range and (
            ballot.round <= known + ballot_round_step_max or epoch_of(ballot) > epoch
        ):
            continue
        replica.refused_ballots += 1
        refused = replica.refused_ballots
        if refused & (refused - 1) == 0:  # 1st, 2nd, 4th, ...
            replica.out.note(
                "ballot_refused", src=src, ballot=ballot, known_round=known, refused=refused
            )
        return False
    return True


def ballots_of(msg: Any) -> tuple[Ballot, ...]:
    """The ballots a message asks its receiver to act on."""
    match msg:
        case Nack(ballot=ballot, promised=promised):
            return (ballot, promised)
        case StateReport(promised=promised):
            return () if promised is None else (promised,)
        case (
            Prepare()
            | PreVote()
            | PreVoteReply()
            | Promise()
            | Accept()
            | Accepted()
            | Heartbeat()
            | Commit()
            | Ack()
            | Entries()
            | SnapshotInstall()
            | TimeoutNow()
        ):
            return (msg.ballot,)
    return ()
