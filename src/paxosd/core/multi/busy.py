"""Refusals of an operator's request that pass by themselves.

A membership change or a handover is refused for one of two kinds of reason. Some stay
until the request changes (a node that must join as a learner first, a quorum that could
not answer): asking again is useless. Others pass on their own within an election timeout
or two: the node asked does not lead (it is being replaced, or another leads), or a change
or a handover is already under way. Those are `Busy`: the tools ask the leader again until
their deadline (`paxosd member`, `paxosd node --join`, the chaos nemesis), and the HTTP API
answers them with the error code "busy" so that any client can tell them apart.
"""

from __future__ import annotations

from paxosd.core.types import NodeId


class Busy(str):
    """The reason for a refusal that passes by itself: ask the leader again shortly."""

    __slots__ = ()


def not_leader(node: NodeId, hint: NodeId | None) -> Busy:
    where = f" (node {hint} leads)" if hint is not None else ""
    return Busy(f"node {node} is not the leader{where}: ask the leader")


def handing_over(target: NodeId) -> Busy:
    return Busy(f"leadership is already being handed to node {target}: try again after")


CHANGING = Busy("a membership change is in progress: try again once it is done")
STOPPING = Busy("the node is stopping: ask the next leader")
