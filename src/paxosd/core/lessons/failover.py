"""The book's second design: replicate to followers and fail over when the leader goes quiet.

Theory of operation. Every node sends heartbeats to every other node each tick; the leader's
heartbeats also carry the value it holds, which is how followers keep their backup copy. A node
that has not heard from a peer for `suspect_after_ticks` ticks suspects it, and each node takes
as leader the lowest id it does not suspect (itself included). A proposal goes to whoever the
proposer believes leads; a node that believes it leads accepts the first value it is offered.

The flaw: who leads is itself a consensus problem. In a partition both sides elect a leader,
each accepts a different value, and Agreement breaks (split brain).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from paxosd.core.effects import Effects
from paxosd.core.lessons.base import LessonCore
from paxosd.core.lessons.leader import SetRequest
from paxosd.core.protocol import CoreConfig
from paxosd.core.types import Envelope, NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    family: ClassVar[str] = "heartbeat"
    value: Any = None

    def describe(self) -> str:
        return "Heartbeat" if self.value is None else f"Heartbeat({self.value})"


class FailoverNode(LessonCore):
    """A node of the heartbeat-failover design."""

    def __init__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: CoreConfig,
        durable: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(node_id, members, rng, config)
        # Ticks since each peer was last heard from, capped at the suspicion threshold.
        self.silence: tuple[int, ...] = tuple(0 for _ in self.members)
        self.pending: Any = None
        if durable:
            self.decided = durable[-1]

    @property
    def leader(self) -> NodeId:
        limit = self.config.suspect_after_ticks
        alive = [
            m
            for m, quiet in zip(self.members, self.silence, strict=True)
            if m == self.node_id or quiet < limit
        ]
        return min(alive)

    def propose(self, value: Any) -> Effects:
        effects = Effects()
        effects.notes.append(f"proposes {value}")
        self.pending = value
        self._offer(effects)
        return effects

    def step(self, envelope: Envelope) -> Effects:
        effects = Effects()
        before = self.leader
        self._heard(envelope.src)
        match envelope.msg:
            case SetRequest(value=value):
                if self.leader == self.node_id:
                    self._accept(effects, value)
            case Heartbeat(value=value):
                if value is not None and envelope.src == self.leader:
                    self._accept(effects, value)
            case other:
                raise AssertionError(f"unexpected message {other!r}")
        self._note_leader_change(effects, before)
        return effects

    def tick(self) -> Effects:
        effects = Effects()
        before = self.leader
        limit = self.config.suspect_after_ticks
        self.silence = tuple(
            0 if m == self.node_id else min(quiet + 1, limit)
            for m, quiet in zip(self.members, self.silence, strict=True)
        )
        self._note_leader_change(effects, before)
        value = self.decided if self.leader == self.node_id else None
        self.broadcast(effects, Heartbeat(value=value), include_self=False)
        if self.pending is not None and self.decided is None:
            self._offer(effects)
        return effects

    def view(self) -> list[tuple[str, str]]:
        quiet = ", ".join(
            f"{m}:{q}" for m, q in zip(self.members, self.silence, strict=True) if m != self.node_id
        )
        waiting = "-" if self.pending is None else str(self.pending)
        return [
            ("follows", f"leader {self.leader}"),
            ("ticks since heard", quiet),
            ("asked to set", waiting),
            *super().view(),
        ]

    def _offer(self, effects: Effects) -> None:
        if self.leader == self.node_id:
            self._accept(effects, self.pending)
        else:
            self.send(effects, self.leader, SetRequest(value=self.pending))

    def _accept(self, effects: Effects, value: Any) -> None:
        if self.decided is None:
            self.decide(effects, value)
            effects.persist.append(value)

    def _heard(self, src: NodeId) -> None:
        index = self.members.index(src)
        if self.silence[index]:
            self.silence = self.silence[:index] + (0,) + self.silence[index + 1 :]

    def _note_leader_change(self, effects: Effects, before: NodeId) -> None:
        if self.leader != before:
            effects.notes.append(f"now follows leader {self.leader}")

    def state_key(self) -> Hashable:
        return (self.decided, self.silence, self.pending)
