"""Messages of single-decree Paxos, named as in "Paxos Made Simple".

Phase 1: a proposer sends Prepare(ballot); an acceptor that has promised nothing higher answers
Promise(ballot, accepted) with the highest-ballot value it has accepted, if any.
Phase 2: the proposer sends Accept(ballot, value); an acceptor that has promised nothing higher
accepts and tells every learner with Accepted(ballot, value).
A Nack tells a proposer its ballot is stale and which ballot the acceptor has promised instead.
Query/Decided let a learner that missed the outcome (after a restart, say) ask the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from paxosd.core.types import Ballot


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepare:
    family: ClassVar[str] = "phase1"
    ballot: Ballot

    def describe(self) -> str:
        return f"Prepare({self.ballot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Promise:
    family: ClassVar[str] = "phase1"
    ballot: Ballot
    accepted_ballot: Ballot | None
    accepted_value: Any

    def describe(self) -> str:
        if self.accepted_ballot is None:
            return f"Promise({self.ballot}, none)"
        return f"Promise({self.ballot}, {self.accepted_ballot}:{self.accepted_value})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    family: ClassVar[str] = "phase2"
    ballot: Ballot
    value: Any

    def describe(self) -> str:
        return f"Accept({self.ballot}, {self.value})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    family: ClassVar[str] = "phase2"
    ballot: Ballot
    value: Any

    def describe(self) -> str:
        return f"Accepted({self.ballot}, {self.value})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Nack:
    family: ClassVar[str] = "nack"
    ballot: Ballot
    promised: Ballot

    def describe(self) -> str:
        return f"Nack({self.ballot}, promised {self.promised})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    family: ClassVar[str] = "learn"

    def describe(self) -> str:
        return "Query"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decided:
    family: ClassVar[str] = "learn"
    value: Any

    def describe(self) -> str:
        return f"Decided({self.value})"


Message = Prepare | Promise | Accept | Accepted | Nack | Query | Decided
