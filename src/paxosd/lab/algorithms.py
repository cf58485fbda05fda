"""The four algorithms of the book, by name, with what each one teaches."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from paxosd.core.lessons.failover import FailoverNode
from paxosd.core.lessons.leader import LeaderNode
from paxosd.core.lessons.majority import VARIANTS as MAJORITY_VARIANTS
from paxosd.core.lessons.majority import MajorityNode
from paxosd.core.lessons.replication import OWNERS, ReplicaNode
from paxosd.core.lessons.replication import VARIANTS as REPLICATION_VARIANTS
from paxosd.core.multi.config import CORE_VARIANTS
from paxosd.core.protocol import CoreFactory
from paxosd.core.synod.node import VARIANTS as PAXOS_VARIANTS
from paxosd.core.synod.node import SynodNode
from paxosd.lab.values import COLOURS
from paxosd.sim.symmetry import RenameNodes, Renaming, Symmetry


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    factory: CoreFactory
    summary: str
    flaw: str
    variants: dict[str, str] = field(default_factory=lambda: {"correct": "as designed"})
    # Symmetry (sim/symmetry.py): the core's function that renames node ids inside its state
    # (set if nodes that never propose are interchangeable), and the variants in which the
    # proposers are interchangeable too, each together with the value it proposes (not in
    # Paxos, whose ballots are ordered by node id).
    rename_nodes: RenameNodes | None = None
    proposers_alike: frozenset[str] = frozenset()
    value_names: tuple[str, ...] = COLOURS  # what is proposed, by the story's names
    # Variants in which nodes differ by id (each believes its own member list): no renaming.
    unlike_nodes: frozenset[str] = frozenset()
    # Variants whose story needs a given cluster size.
    variant_nodes: dict[str, int] = field(default_factory=dict)

    def symmetry(
        self, variant: str, nodes: int, values: Sequence[Any], proposers: Sequence[int]
    ) -> Symmetry | None:
        """The renamings a search may treat as one, for a cluster whose value i is proposed
        at node `proposers[i]`; None if there is nothing to gain."""
        if self.rename_nodes is None or variant in self.unlike_nodes:
            return None
        swap_nodes = [n for n in range(1, nodes + 1) if n not in proposers]
        renamings: list[Renaming] = []
        if variant in self.proposers_alike and len(set(proposers)) == len(values):
            for order in itertools.permutations(range(len(values))):
                moved = {proposers[i]: proposers[order[i]] for i in range(len(values))}
                renamings.append(
                    Renaming(tuple(moved.get(n, n) for n in range(1, nodes + 1)), order)
                )
        symmetry = Symmetry(nodes, values, swap_nodes, renamings, self.rename_nodes)
        return None if symmetry.trivial else symmetry


# The engine's planted bugs of a membership change, which the lab's `--change` story shows.
MEMBERSHIP_VARIANTS = ("past-stop", "accepted-config")


def _multipaxos(
    node_id: int, members: Sequence[int], rng: Any, config: Any, durable: Any = None
) -> Any:
    from paxosd.lab.multipaxos import MultiPaxosNode  # the engine: loaded only when played

    return MultiPaxosNode(node_id, members, rng, config, durable)


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
        rename_nodes=MajorityNode.rename_nodes,
        proposers_alike=frozenset({"correct"}),  # the tiebreak variant prefers red
    ),
    "paxos": Algorithm(
        "paxos",
        SynodNode,
        "single-decree Paxos: ballots, promises that report accepted values, quorums",
        "none for safety; termination is not guaranteed (dueling proposers), as FLP predicts",
        dict(PAXOS_VARIANTS),
        rename_nodes=SynodNode.rename_nodes,
        unlike_nodes=frozenset({"swapped-members"}),
        variant_nodes={"swapped-members": 5},
    ),
    "replication": Algorithm(
        "replication",
        ReplicaNode,
        "database replicas that accept an insert locally and sync lazily (multi-leader "
        "replication): the book's Example 2",
        "two replicas accept conflicting inserts of one unique name: the rows conflict",
        dict(REPLICATION_VARIANTS),
        rename_nodes=ReplicaNode.rename_nodes,
        value_names=OWNERS,
    ),
    "multipaxos": Algorithm(
        "multipaxos",
        _multipaxos,
        "the service's own Multi-Paxos engine: a leader, and one Paxos instance per slot",
        "none for safety: a new leader re-proposes what a quorum accepted and fills gaps with "
        "no-ops; termination is not guaranteed (FLP), as for Paxos",
        {
            "correct": "as designed",
            **{name: CORE_VARIANTS[name] + " (--change)" for name in MEMBERSHIP_VARIANTS},
        },
    ),
}


def get(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        known = ", ".join(ALGORITHMS)
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {known}") from None
