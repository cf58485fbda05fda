"""The Paxos acceptor: the memory of the protocol.

Theory of operation. An acceptor keeps two facts: the highest ballot it has promised, and the
highest-ballot (ballot, value) pair it has accepted. It promises a Prepare only for a ballot
strictly higher than any it promised before, and reports what it accepted so the new proposer
can carry it forward. It accepts an Accept for any ballot at least as high as its promise.
Both facts MUST be durable BEFORE the reply leaves: an acceptor that forgets a promise after a
crash can let two different values be chosen (the `forget-promise` variant shows exactly that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paxosd.core.synod.messages import Accept, Accepted, Nack, Prepare, Promise
from paxosd.core.types import Ballot


@dataclass(frozen=True, slots=True)
class AcceptorState:
    """Durable acceptor state (Lamport's maxBal, maxVBal, maxVal)."""

    promised: Ballot | None = None
    accepted_ballot: Ballot | None = None
    accepted_value: Any = None

    def on_prepare(self, msg: Prepare) -> tuple[AcceptorState, Promise | Nack | None]:
        """Promise if the ballot is strictly higher than every earlier promise. A repeat of the
        Prepare already promised changes nothing and needs no answer: the first answer stands."""
        if self.promised is not None and msg.ballot <= self.promised:
            if msg.ballot == self.promised:
                return self, None
            return self, Nack(ballot=msg.ballot, promised=self.promised)
        state = AcceptorState(msg.ballot, self.accepted_ballot, self.accepted_value)
        reply = Promise(
            ballot=msg.ballot,
            accepted_ballot=self.accepted_ballot,
            accepted_value=self.accepted_value,
        )
        return state, reply

    def on_accept(self, msg: Accept) -> tuple[AcceptorState, Accepted | Nack]:
        """Accept unless a higher ballot was promised meanwhile."""
        if self.promised is not None and msg.ballot < self.promised:
            return self, Nack(ballot=msg.ballot, promised=self.promised)
        state = AcceptorState(msg.ballot, msg.ballot, msg.value)
        return state, Accepted(ballot=msg.ballot, value=msg.value)

    def invariants(self) -> None:
        if self.accepted_ballot is not None:
            assert self.promised is not None and self.accepted_ballot <= self.promised, (
                "an acceptor never accepts above its promise"
            )
