"""Plumbing shared by the teaching cores: membership, broadcasting and one-shot decisions."""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from typing import Any, Self

from paxosd.core.effects import Effects
from paxosd.core.protocol import CoreConfig
from paxosd.core.quorum import Majority
from paxosd.core.types import Envelope, NodeId


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)


class LessonCore:
    """Common state of a single-decree core: who we are, who the others are, what we decided."""

    def __init__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: CoreConfig,
    ) -> None:
        assert node_id in members, "a node must be a member of its own cluster"
        self.node_id = node_id
        self.members = tuple(members)
        self.quorum = Majority(self.members)
        self.rng = rng
        self.config = config
        self.decided: Any = None

    def query(self) -> Any:
        return self.decided

    def clone(self) -> Self:
        # Subclasses keep only immutable values (ints, tuples, frozensets) or replace containers
        # instead of mutating them, so a shallow copy is an independent copy.
        return copy.copy(self)

    def invariants(self) -> None:
        assert self.node_id in self.members

    def view(self) -> list[tuple[str, str]]:
        """What a learner watching this node should see, as (name, value) pairs. Display
        only: nothing reads it back."""
        return [("decided", _shown(self.decided))]

    def peers(self) -> tuple[NodeId, ...]:
        return tuple(m for m in self.members if m != self.node_id)

    def step(self, envelope: Envelope) -> Effects:
        raise NotImplementedError

    def broadcast(self, effects: Effects, msg: Any, *, include_self: bool = True) -> None:
        for member in self.members:
            if include_self or member != self.node_id:
                self.send(effects, member, msg)

    def send(self, effects: Effects, dst: NodeId, msg: Any) -> None:
        """Queue a message. A message to oneself is handled at once, in the same step: a node
        does not need the network to talk to itself."""
        if dst == self.node_id:
            effects.extend(self.step(Envelope(dst, dst, msg)))
            return
        effects.send.append(Envelope(self.node_id, dst, msg))

    def decide(self, effects: Effects, value: Any) -> None:
        """Record a decision. Cores that may change their mind call this more than once; the
        agreement checker is what notices."""
        if self.decided == value:
            return
        self.decided = value
        effects.decided.append(value)
        effects.notes.append(f"decides {value}")
