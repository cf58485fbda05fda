"""Vocabulary shared by every protocol core: node ids, ballots, envelopes.

Everything here is immutable data. Cores exchange `Envelope`s; a driver (the simulator, the
explorer, or the asyncio runtime) moves them between nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NodeId = int


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
