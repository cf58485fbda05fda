"""Lamport's Paxos specification, explored with paxosd's own acceptor and value rule.

Theory of operation. Lamport's TLA+ spec of Paxos (Paxos.tla) abstracts the network away:
messages form a set that only grows, and any acceptor may act on any message in it, any number
of times. Its variables are each acceptor's (maxBal, maxVBal, maxVal) and the message set. This
module enumerates exactly that state space, but every transition is computed by paxosd's code:
`AcceptorState.on_prepare` / `on_accept` are the acceptor, and `pick_value` is the rule a
proposer uses to choose the value for phase 2 from a quorum of promises.

With 3 acceptors, 2 values and ballots 0..1, TLC reports 3,921 distinct states for the spec. A
test pins that this explorer counts the same number: if paxosd's acceptor or value rule allowed
one transition the spec does not (or missed one), the count would differ.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from paxosd.core.quorum import Majority
from paxosd.core.synod.acceptor import AcceptorState
from paxosd.core.synod.messages import Accept, Accepted, Nack, Prepare, Promise
from paxosd.core.synod.proposer import pick_value
from paxosd.core.types import Ballot

# A message in the spec's set: a Prepare or Accept (sent by "some proposer"), or an acceptor's
# Promise or Accepted tagged with the acceptor that sent it.
SpecMessage = Prepare | Accept | tuple[int, Promise] | tuple[int, Accepted]


@dataclass(frozen=True, slots=True)
class SpecState:
    acceptors: tuple[AcceptorState, ...]
    msgs: frozenset[Any]


@dataclass(frozen=True, slots=True)
class SpecResult:
    distinct_states: int
    depth: int
    agreement_holds: bool
    chosen_values: frozenset[Any]


class PaxosSpec:
    """The state space of Lamport's Paxos spec for a small configuration."""

    def __init__(
        self, acceptors: int = 3, values: tuple[Any, ...] = ("v1", "v2"), ballots: int = 2
    ) -> None:
        self.acceptor_ids = tuple(range(1, acceptors + 1))
        self.quorum = Majority(self.acceptor_ids)
        self.values = values
        self.ballots = tuple(Ballot(b, 0) for b in range(ballots))
        self.quorums = [
            q for size in range(self.quorum.size, acceptors + 1)
            for q in combinations(self.acceptor_ids, size)
            if self.quorum.is_phase1_quorum(q)
        ]  # fmt: skip

    def initial(self) -> SpecState:
        return SpecState(tuple(AcceptorState() for _ in self.acceptor_ids), frozenset())

    def successors(self, state: SpecState) -> Iterator[SpecState]:
        msgs = state.msgs
        for ballot in self.ballots:  # Phase1a(b)
            yield SpecState(state.acceptors, msgs | {Prepare(ballot=ballot)})
        for index, acceptor in enumerate(state.acceptors):
            a = self.acceptor_ids[index]
            for m in msgs:
                reply: Promise | Accepted | Nack | None
                if isinstance(m, Prepare):  # Phase1b(a)
                    new, reply = acceptor.on_prepare(m)
                elif isinstance(m, Accept):  # Phase2b(a)
                    new, reply = acceptor.on_accept(m)
                else:
                    continue
                if isinstance(reply, Promise | Accepted):
                    acceptors = state.acceptors[:index] + (new,) + state.acceptors[index + 1 :]
                    yield SpecState(acceptors, msgs | {(a, reply)})
        for ballot in self.ballots:  # Phase2a(b, v)
            if any(isinstance(m, Accept) and m.ballot == ballot for m in msgs):
                continue
            promises = {
                m[0]: m[1]
                for m in msgs
                if isinstance(m, tuple) and isinstance(m[1], Promise) and m[1].ballot == ballot
            }
            for q in self.quorums:
                if not all(a in promises for a in q):
                    continue
                forced = pick_value(
                    (promises[a].accepted_ballot, promises[a].accepted_value) for a in q
                )
                for value in self.values if forced is None else (forced,):
                    yield SpecState(state.acceptors, msgs | {Accept(ballot=ballot, value=value)})

    def chosen(self, state: SpecState) -> set[Any]:
        votes: dict[tuple[Ballot, Any], set[int]] = {}
        for m in state.msgs:
            if isinstance(m, tuple) and isinstance(m[1], Accepted):
                votes.setdefault((m[1].ballot, m[1].value), set()).add(m[0])
        return {v for (_, v), voters in votes.items() if self.quorum.is_phase2_quorum(voters)}

    def explore(self) -> SpecResult:
        start = self.initial()
        seen: dict[Hashable, int] = {start: 0}
        queue = deque([start])
        depth = 0
        chosen: set[Any] = set()
        agreement = True
        while queue:
            state = queue.popleft()
            here = seen[state]
            values = self.chosen(state)
            chosen |= values
            agreement = agreement and len(values) <= 1
            for successor in self.successors(state):
                if successor not in seen:
                    seen[successor] = here + 1
                    depth = max(depth, here + 1)
                    queue.append(successor)
        return SpecResult(len(seen), depth + 1, agreement, frozenset(chosen))
