"""Vocabulary shared by every protocol core: node ids, ballots, envelopes.

Everything here is immutable data. Cores exchange `Envelope`s; a driver (the simulator, the
explorer, or the asyncio runtime) moves them between nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

NodeId = int

# The range of ballots is one fact, shared by the protocol cores, the peer wire format and the
# storage format. Rounds run from 0 to `ballot_round_max` (the wire and the disk carry every
# round in that range, and nothing outside it); node ids from 0 to `node_id_max`.
ballot_round_max: Final = 1 << 62
node_id_max: Final = 255
# No Paxos node makes a ballot more than one round above the highest it has seen, so a ballot
# that jumps further than this above everything a node knows is not one a peer made in good
# faith (a forged or corrupted frame). Refusing it keeps one bad frame from using up the
# ballot space: four billion elections are more than any cluster holds.
ballot_round_step_max: Final = 1 << 32


@dataclass(frozen=True, slots=True, order=True)
class Ballot:
    """A proposal number: ordered first by round, then by the proposing node's id.

    Two proposers never share a ballot because the node id breaks every tie.
    """

    round: int
    node: NodeId

    def __str__(self) -> str:
        return f"{self.round}.{self.node}"

    def next_for(self, node: NodeId) -> Ballot:
        """The smallest ballot owned by `node` that is higher than this one."""
        return Ballot(self.round + 1, node)

    @property
    def in_range(self) -> bool:
        """Whether the wire and the disk can carry this ballot."""
        return 0 <= self.round <= ballot_round_max and 0 <= self.node <= node_id_max

    @property
    def has_successor(self) -> bool:
        """Whether a higher ballot can still be made and carried: only such ballots may be
        promised, or the cluster could never elect a leader again."""
        return self.in_range and self.round < ballot_round_max


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message in flight from `src` to `dst`."""

    src: NodeId
    dst: NodeId
    msg: Any

    def __str__(self) -> str:
        return f"{self.src}->{self.dst} {describe(self.msg)}"


def describe(value: Any) -> str:
    """A short human-readable rendering of a message or value, used by traces and diagrams."""
    text = getattr(value, "describe", None)
    if callable(text):
        return str(text())
    return str(value)
