"""The four algorithms of the book, by name, with what each one teaches."""

from __future__ import annotations

from dataclasses import dataclass, field

from paxosd.core.lessons.failover import FailoverNode
from paxosd.core.lessons.leader import LeaderNode
from paxosd.core.lessons.majority import VARIANTS as MAJORITY_VARIANTS
from paxosd.core.lessons.majority import MajorityNode
from paxosd.core.protocol import CoreFactory
from paxosd.core.synod.node import VARIANTS as PAXOS_VARIANTS
from paxosd.core.synod.node import SynodNode


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    factory: CoreFactory
    summary: str
    flaw: str
    variants: dict[str, str] = field(default_factory=lambda: {"correct": "as designed"})


ALGORITHMS: dict[str, Algorithm] = {
    "leader": Algorithm(
        "leader",
        LeaderNode,
        "one fixed leader holds the variable; the first proposal wins",
        "the leader is a single point of failure: one crash and nobody can decide",
    ),
    "failover": Algorithm(
        "failover",
        FailoverNode,
        "the leader replicates by heartbeat; followers promote the lowest id they still hear",
        "choosing a leader is itself consensus: a partition elects two (split brain)",
    ),
    "majority": Algorithm(
        "majority",
        MajorityNode,
        "every node votes for the first value it hears; a majority of votes decides",
        "a split vote plus one crash leaves no value with a majority, forever",
        dict(MAJORITY_VARIANTS),
    ),
    "paxos": Algorithm(
        "paxos",
        SynodNode,
        "single-decree Paxos: ballots, promises that report accepted values, quorums",
        "none for safety; termination is not guaranteed (dueling proposers), as FLP predicts",
        dict(PAXOS_VARIANTS),
    ),
}


def get(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        known = ", ".join(ALGORITHMS)
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {known}") from None
