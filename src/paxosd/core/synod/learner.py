"""The Paxos learner: a value is chosen once a quorum of acceptors accepted it in one ballot.

Acceptors report to the proposer of the ballot, which acts as the distinguished learner: it
counts Accepted messages and, on a quorum, tells every other node with Decided. (Sending every
Accepted to every node would let each learn on its own, at n times the messages.) A learner
that may have missed the news (it restarted, or a message was lost) asks the others with Query;
any node that knows the outcome answers Decided. Answering is safe because a decided value is,
by construction, the chosen one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from paxosd.core.quorum import Majority
from paxosd.core.types import Ballot


@dataclass(frozen=True, slots=True)
class LearnerState:
    votes: frozenset[tuple[Ballot, Any, int]] = frozenset()

    def on_accepted(
        self, quorum: Majority, acceptor: int, ballot: Ballot, value: Any
    ) -> tuple[LearnerState, Any]:
        """Count one Accepted; return the chosen value once a quorum agrees, else None."""
        votes = self.votes | {(ballot, value, acceptor)}
        voters = {a for b, v, a in votes if b == ballot and v == value}
        if quorum.is_phase2_quorum(voters):
            return LearnerState(), value
        return replace(self, votes=votes), None
