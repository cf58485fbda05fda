"""The book's first design: one fixed leader holds the variable.

Theory of operation. Node `min(members)` is the leader. The first value proposed to it wins and
never changes; every other node sends its proposal to the leader and asks it for the outcome.

The flaw: the leader is a single point of failure. If it crashes, no other node can ever learn
or make a decision, so Termination fails with one crash.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from paxosd.core.effects import Effects
from paxosd.core.lessons.base import LessonCore
from paxosd.core.protocol import CoreConfig
from paxosd.core.types import Envelope, NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class SetRequest:
    family: ClassVar[str] = "client"
    value: Any

    def describe(self) -> str:
        return f"Set({self.value})"


@dataclass(frozen=True, slots=True, kw_only=True)
class GetRequest:
    family: ClassVar[str] = "client"

    def describe(self) -> str:
        return "Get"


@dataclass(frozen=True, slots=True, kw_only=True)
class Value:
    family: ClassVar[str] = "client"
    value: Any

    def describe(self) -> str:
        return f"Value({self.value})"


class LeaderNode(LessonCore):
    """A node of the fixed-leader design."""

    def __init__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: CoreConfig,
        durable: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(node_id, members, rng, config)
        self.leader = min(self.members)
        self.pending: Any = None
        if durable:
            self.decided = durable[-1]

    @property
    def is_leader(self) -> bool:
        return self.node_id == self.leader

    def propose(self, value: Any) -> Effects:
        effects = Effects()
        effects.notes.append(f"proposes {value}")
        if self.is_leader:
            self._set(effects, value)
        else:
            self.pending = value
            self.send(effects, self.leader, SetRequest(value=value))
        return effects

    def step(self, envelope: Envelope) -> Effects:
        effects = Effects()
        match envelope.msg:
            case SetRequest(value=value):
                assert self.is_leader, "only the leader is sent proposals"
                self._set(effects, value)
                self.send(effects, envelope.src, Value(value=self.decided))
            case GetRequest():
                if self.decided is not None:
                    self.send(effects, envelope.src, Value(value=self.decided))
            case Value(value=value):
                self.decide(effects, value)
            case other:
                raise AssertionError(f"unexpected message {other!r}")
        return effects

    def tick(self) -> Effects:
        """A follower that does not know the outcome yet asks the leader again (the book's
        query()), repeating its own proposal if it made one."""
        effects = Effects()
        if not self.is_leader and self.decided is None:
            if self.pending is not None:
                self.send(effects, self.leader, SetRequest(value=self.pending))
            else:
                self.send(effects, self.leader, GetRequest())
        return effects

    def view(self) -> list[tuple[str, str]]:
        role = "leader" if self.is_leader else f"follower of {self.leader}"
        waiting = "-" if self.pending is None else str(self.pending)
        return [("role", role), ("asked to set", waiting), *super().view()]

    def _set(self, effects: Effects, value: Any) -> None:
        if self.decided is None:
            self.decide(effects, value)
            effects.persist.append(value)

    def state_key(self) -> Hashable:
        return (self.decided, self.pending)
