"""The Paxos proposer: turns a client's value into a chosen value, or finds the one already chosen.

Theory of operation. A proposer picks a ballot higher than any it has seen, asks every acceptor
to promise it (phase 1), and from a quorum of promises takes the value of the highest accepted
ballot - only if no acceptor in the quorum accepted anything may it offer its own value. Then it
asks the acceptors to accept that value (phase 2). If an acceptor answers with a Nack, a higher
ballot is about: the proposer waits a randomized backoff and tries again with a higher ballot.
The randomness is what makes dueling proposers stop dueling; with a fixed backoff they can
pre-empt each other forever (the book's FLP chapter: termination is not guaranteed).

The last ballot used is durable, so a proposer never reuses a ballot after a restart. Rounds are
kept as ballots, not bare integers, so that nothing but the order of ballots matters: the
explorer relies on that to recognise a livelock that repeats with ever higher ballots.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from paxosd.core.types import Ballot

IDLE = "idle"
PREPARING = "preparing"
ACCEPTING = "accepting"
BACKOFF = "backoff"
EXHAUSTED = "exhausted"  # hit the explorer's round bound


def pick_value(promises: Iterable[tuple[Ballot | None, Any]]) -> Any:
    """The value a quorum of promises forces: that of the highest accepted ballot, or None if no
    acceptor in the quorum accepted anything (then the proposer is free to offer its own)."""
    best: tuple[Ballot, Any] | None = None
    for accepted_ballot, accepted_value in promises:
        if accepted_ballot is not None and (best is None or accepted_ballot > best[0]):
            best = (accepted_ballot, accepted_value)
    return None if best is None else best[1]


@dataclass(frozen=True, slots=True)
class ProposerState:
    """A proposer's state; only `ballot` (the last ballot used) is durable."""

    value: Any = None
    phase: str = IDLE
    ballot: Ballot | None = None
    highest_seen: Ballot | None = None
    promises: frozenset[tuple[int, Ballot | None, Any]] = frozenset()
    timer: int = 0

    @property
    def active(self) -> bool:
        return self.phase in (PREPARING, ACCEPTING, BACKOFF)

    def next_round(self) -> int:
        known = [b.round for b in (self.ballot, self.highest_seen) if b is not None]
        return max(known, default=0) + 1

    def begin(self, node: int, timer: int) -> ProposerState:
        """Start phase 1 with a ballot higher than any this proposer has used or seen."""
        return replace(
            self,
            phase=PREPARING,
            ballot=Ballot(self.next_round(), node),
            promises=frozenset(),
            timer=timer,
        )

    def see(self, ballot: Ballot) -> ProposerState:
        if self.highest_seen is not None and ballot <= self.highest_seen:
            return self
        return replace(self, highest_seen=ballot)
