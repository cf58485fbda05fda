"""The lab's lesson "why a member list changes only through the log", told by the explorer on
the service's own engine: the real `Replica` (lab/multipaxos.py) with its epochs, asked by an
operator to change its voters while a client's value is on its way.

Theory of operation. A membership change starts at a leader, so the story starts there: node
1's timer fires first and the messages of its election are delivered one by one, in a fixed
order, until none is left (node 1 leads, and its first no-op is known everywhere). Then, in
one moment, the operator asks node 1 for the new voters (`MemberChange`) and clients send
their values to node 1. From that state the explorer tries every interleaving: any message in
flight may be delivered next, or stay in flight for ever, and timers fire at any moment, at
most `timeouts` times in all (the budget that brings the engine's deep runs within reach:
each firing may start an election or send heartbeats). Breadth first, the first violation
it meets is reached by a shortest run.

What the lesson shows. The engine's rule is that a change chosen at slot i stops the old
epoch there: the leader proposes nothing above i (the client's value waits for the new
epoch's leader), and a node entering the new epoch forgets what it accepted above i in the
old one, since none of it can have been chosen. Break the first half (`--variant past-stop`:
the leader forgets its stop and proposes the client's value above it) and the second half
turns against the cluster: the old voters choose the value above the stop, while the new
epoch, whose members forgot their acceptances of it, fills the same slot with a no-op. The
other rule is that a node enters the new epoch only once the change is chosen and applied;
break it (`--variant accepted-config`) and a follower that merely accepted the change leads
the new epoch from the change's own slot, and undoes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from paxosd.lab.multipaxos import MemberChange
from paxosd.sim.explorer import Explorer, ExState, Step

__all__ = ["leader_elected", "story"]

leader = 1  # the node whose timer fires first: it leads when the story starts


def story(explorer: Explorer) -> tuple[ExState, list[Step]]:
    """The state the search starts from, and the steps that led there (the election, then
    the operator's change and every client's value sent to node 1 in one moment). The
    explorer's values are the change first, then the clients' values, all at node 1."""
    assert all(node == leader for node in explorer.proposers)
    assert isinstance(explorer.values[0], MemberChange)
    state, steps = leader_elected(explorer)
    for value in explorer.values:
        step, state = _first(explorer, state, "propose", value=value)
        steps.append(step)
    # The election's timer firing is the setup's, not the search's budget.
    return state.but(timeouts_left=explorer.budget.timeouts), steps


def leader_elected(explorer: Explorer) -> tuple[ExState, list[Step]]:
    """Node 1 times out, then the messages in flight are delivered one by one (in the
    explorer's order) until none is left: node 1 leads, every node has applied its no-op."""
    state = explorer.initial().but(timeouts_left=None)
    step, state = _first(explorer, state, "timeout", node=leader)
    steps = [step]
    while state.network:
        step, state = _first(explorer, state, "deliver")
        steps.append(step)
    core: Any = state.cores[leader - 1]
    assert core.replica.leading is not None, "node 1 leads once its election is delivered"
    return state, steps


def _first(explorer: Explorer, state: ExState, kind: str, **fields: object) -> tuple[Step, ExState]:
    """The first successor of `state` by a step of `kind` whose `fields` match."""
    found = _matching(explorer.successors(state), kind, fields)
    if found is None:
        raise AssertionError(f"no {kind} step {fields or ''} from this state")
    return found


def _matching(
    successors: Iterable[tuple[Step, ExState]], kind: str, fields: dict[str, object]
) -> tuple[Step, ExState] | None:
    for step, successor in successors:
        if step.kind == kind and all(getattr(step, k) == v for k, v in fields.items()):
            return step, successor
    return None


def values(change: Sequence[int], client_values: Sequence[str]) -> list[Any]:
    """The explorer's values for the story: the operator's change, then the clients'."""
    return [MemberChange.of(change), *client_values]
