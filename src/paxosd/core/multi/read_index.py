"""Linearizable reads without the log (read-index), the leader's side.

Theory of operation. A read that reaches the leader is given the leader's current chosen point
as its read index. It may be answered once (1) a quorum has acknowledged a heartbeat round the
leader started AFTER the read arrived, which proves no higher ballot was promised meanwhile (a
deposed leader cannot get that quorum), and (2) the state machine has applied the read index.
No clocks and no leases are involved. Rounds are numbered; each peer's Ack names the latest
round it answered, and the confirmed round is the highest one that a quorum of the
configuration's voters (the leader included) has answered. A follower's read travels as
ReadIndex: the leader confirms it the same way and answers with the index, and the follower
waits until it has applied that far itself.

This object lives only while its node leads: a leader that steps down drops it, and every
read waiting in it is refused (the client asks again, wherever the leader now is).
"""

from __future__ import annotations

from dataclasses import dataclass

from paxosd.core.multi.configuration import Configuration
from paxosd.core.types import NodeId


@dataclass(frozen=True, slots=True)
class RemoteRead:
    """A read a follower asked this leader to confirm (its own id for the read)."""

    node: NodeId
    read_id: int


ReadKey = int | RemoteRead  # a local read id, or a follower's


class ReadIndex:
    def __init__(self, configuration: Configuration, node_id: NodeId) -> None:
        self.quorum = configuration.quorum
        self.node_id = node_id
        self.round = 0  # the latest heartbeat round started
        # The latest round each voting peer acknowledged (a learner's Ack proves nothing).
        self.acked: dict[NodeId, int] = dict.fromkeys(configuration.voting_peers_of(node_id), 0)
        self.outstanding = False  # a round was started and is not confirmed yet
        self.pending: list[tuple[ReadKey, int, int]] = []  # (read, read index, round needed)

    def request(self, read: ReadKey, index: int) -> None:
        """A read arrived: it needs a round started after now."""
        self.pending.append((read, index, self.round + 1))

    def needs_round(self) -> bool:
        return bool(self.pending) and not self.outstanding

    def start_round(self) -> int:
        self.round += 1
        self.outstanding = True
        return self.round

    def ack(self, peer: NodeId, round_: int) -> None:
        acked = self.acked
        if peer in acked and round_ > acked[peer]:
            acked[peer] = round_

    def confirmed_round(self) -> int:
        """The latest round acknowledged by a quorum (this node acks its own rounds)."""
        acked = self.acked
        for round_ in sorted({self.round, *acked.values()}, reverse=True):
            ackers = [self.node_id, *(peer for peer, r in acked.items() if r >= round_)]
            if self.quorum.is_phase2_quorum(ackers):
                return round_
        return 0

    def settle(self) -> int:
        """Note whether the latest round is confirmed; the confirmed round."""
        confirmed = self.confirmed_round()
        if confirmed >= self.round:
            self.outstanding = False
        return confirmed

    def take_confirmed(self) -> list[tuple[ReadKey, int]]:
        """The reads whose round a quorum confirmed, with their read indexes; the rest wait."""
        confirmed = self.settle()
        done = [(read, index) for read, index, needed in self.pending if needed <= confirmed]
        self.pending = [entry for entry in self.pending if entry[2] > confirmed]
        return done

    def drop(self) -> list[ReadKey]:
        """Leadership is over: every read still waiting must be refused."""
        reads = [read for read, _, _ in self.pending]
        self.pending = []
        return reads
