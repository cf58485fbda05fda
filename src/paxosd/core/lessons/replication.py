"""The book's Example 2: database replication with multi-leader replication.

Theory of operation. Every node is a replica of a `users` table whose `username` column is
unique. A web server signs a user up by inserting the row (`paxos_expert`, owner) at the
replica it is connected to (`propose(owner)`). Under multi-leader replication that replica
accepts the insert at once if the name is free in its own copy of the table, tells the web
server "registered" (its decision: who owns `paxos_expert`), and syncs lazily: it sends the
row to every other replica (Replicate). A replica that receives a row for a name it does not
hold inserts it; one that holds the name already keeps its own row (the unique constraint
refuses the other) and records the conflict for someone to sort out later.

The flaw: two sign-ups for the same name at two replicas, each before hearing of the other,
insert conflicting rows. Both web servers were told "registered", so Agreement is violated,
and no later sync can repair it without one replica changing its mind (which breaks Agreement
in time instead of in space). The conflict was a consensus problem all along, delegated from
the web servers to the database and left unsolved there.

The `consensus` variant is the fix the book points to: a consensus-backed table. A replica
does not accept the insert on its own; the owner of the unique name is decided by Paxos across
the replicas (the lab's single-decree Paxos core, `core/synod`), and a replica inserts the row
only once it is chosen. Two sign-ups end with one row everywhere; the loser's web server is
told "username taken".
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from paxosd.core.effects import Effects
from paxosd.core.lessons.base import LessonCore
from paxosd.core.protocol import CoreConfig
from paxosd.core.synod.node import SynodNode
from paxosd.core.types import Envelope, NodeId

USERNAME = "paxos_expert"
OWNERS = ("alice", "bob", "carol", "dave")  # who signs up, in order (the values proposed)

VARIANTS = {
    "correct": "multi-leader replication: each replica accepts the insert locally, syncs lazily",
    "consensus": "a consensus-backed table: Paxos decides who owns the name before any insert",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Replicate:
    """A replica's lazy sync: the row it inserted, for the others to insert too."""

    family: ClassVar[str] = "client"
    owner: Any

    def describe(self) -> str:
        return f"Replicate({USERNAME}: {self.owner})"


class ReplicaNode(LessonCore):
    """One database replica (see the module docstring)."""

    def __init__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: CoreConfig,
        durable: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(node_id, members, rng, config)
        assert config.variant in VARIANTS, f"unknown replication variant {config.variant!r}"
        record = durable[-1] if durable else None
        # The replica's table: who owns `paxos_expert` here (None: the name is free), and the
        # conflicting rows it refused. Under `consensus`, Paxos holds the truth instead.
        self.owner: Any = None
        self.conflicts: frozenset[Any] = frozenset()
        self.paxos: SynodNode | None = None
        if config.variant == "consensus":
            paxos_config = replace(config, variant="correct")
            self.paxos = SynodNode(
                node_id, members, rng, paxos_config, [record] if record else None
            )
            self.owner = self.decided = self.paxos.query()
        elif record is not None:
            self.owner, self.conflicts = record
            self.decided = self.owner

    # -- the web servers' inserts and the replicas' sync -------------------------------------

    def propose(self, owner: Any) -> Effects:
        """A web server inserts (`paxos_expert`, owner) at this replica."""
        if self.paxos is not None:
            effects = self.paxos.propose(owner)
            effects.notes.insert(0, f"inserts {USERNAME} for {owner}: asks the cluster first")
            return self._after_paxos(effects)
        effects = Effects()
        if self.owner is not None:
            effects.notes.append(f"refuses {owner}: {USERNAME} is taken by {self.owner} here")
            return effects
        self.owner = owner
        effects.notes.append(f"inserts {USERNAME} for {owner} locally: registered")
        self._persist(effects)  # MUST be durable BEFORE the web server is told
        self.decide(effects, owner)
        self.broadcast(effects, Replicate(owner=owner), include_self=False)
        return effects

    def step(self, envelope: Envelope) -> Effects:
        if self.paxos is not None:
            return self._after_paxos(self.paxos.step(envelope))
        effects = Effects()
        match envelope.msg:
            case Replicate(owner=owner):
                if self.owner is None:
                    self.owner = owner
                    effects.notes.append(f"syncs {USERNAME}: {owner} from replica {envelope.src}")
                    self._persist(effects)
                    self.decide(effects, owner)
                elif owner != self.owner and owner not in self.conflicts:
                    self.conflicts = self.conflicts | {owner}
                    effects.notes.append(
                        f"conflict: keeps {USERNAME} for {self.owner}, refuses {owner} from "
                        f"replica {envelope.src}"
                    )
                    self._persist(effects)
            case other:
                raise AssertionError(f"unexpected message {other!r}")
        return effects

    def tick(self) -> Effects:
        if self.paxos is not None:
            return self._after_paxos(self.paxos.tick())
        return Effects()

    def _after_paxos(self, effects: Effects) -> Effects:
        """Under `consensus`: the row is inserted once Paxos has chosen its owner."""
        paxos = self.paxos
        assert paxos is not None
        chosen = paxos.query()
        if chosen is not None and self.owner is None:
            self.owner = chosen
            effects.notes.append(f"inserts {USERNAME} for {chosen}: chosen by the cluster")
        self.decided = paxos.query()
        return effects

    def _persist(self, effects: Effects) -> None:
        effects.persist.append((self.owner, self.conflicts))

    # -- what the explorer and the page ask --------------------------------------------------

    def query(self) -> Any:
        return self.owner

    def clone(self) -> ReplicaNode:
        twin = super().clone()
        if self.paxos is not None:
            twin.paxos = self.paxos.clone()
        return twin

    def state_key(self) -> Hashable:
        paxos = None if self.paxos is None else self.paxos.state_key()
        return (self.owner, self.conflicts, paxos)

    def invariants(self) -> None:
        super().invariants()
        if self.paxos is not None:
            self.paxos.invariants()

    def bound_reached(self) -> bool:
        return self.paxos is not None and self.paxos.bound_reached()

    @staticmethod
    def rename_nodes(value: Any, nodes: Mapping[NodeId, NodeId]) -> Any:
        """For the explorer's symmetry reduction: node ids occur only inside Paxos's state."""
        if isinstance(value, tuple) and len(value) == 3:
            owner, conflicts, paxos = value
            return (owner, conflicts, SynodNode.rename_nodes(paxos, nodes))
        return value

    def view(self) -> list[tuple[str, str]]:
        row = "(none)" if self.owner is None else f"{USERNAME} -> {self.owner}"
        rows = [("users table", row)]
        if self.conflicts:
            rows.append(("refused (conflict)", ", ".join(sorted(map(str, self.conflicts)))))
        if self.paxos is not None:
            rows.extend((f"paxos: {key}", value) for key, value in self.paxos.view())
        return rows
