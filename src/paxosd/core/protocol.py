"""The shape every consensus core has, whichever algorithm it runs.

A core is a deterministic object. It never reads a clock, touches a socket or a file, or draws
from a global random generator: time arrives as `tick()` calls, messages as `step()` calls,
client requests as `propose()` calls, and chance through the `random.Random` its driver hands it.
This is what lets the simulator, the model explorer and the real node all run the same code.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from paxosd.core.effects import Effects
from paxosd.core.types import Envelope, NodeId


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Knobs of the teaching cores, in logical ticks. Drivers decide how long a tick is."""

    heartbeat_ticks: int = 1
    suspect_after_ticks: int = 3
    retry_after_ticks: int = 8
    backoff_ticks_max: int = 8
    fixed_backoff: bool = False
    rounds_max: int | None = None
    learner_query_ticks: int | None = 20
    variant: str = "correct"


class Core(Protocol):
    """One node's protocol state machine."""

    node_id: NodeId

    def propose(self, value: Any) -> Effects:
        """The book's propose(value): offer a value for the shared variable."""
        ...

    def step(self, envelope: Envelope) -> Effects:
        """Handle one delivered message."""
        ...

    def tick(self) -> Effects:
        """One unit of logical time has passed."""
        ...

    def query(self) -> Any:
        """The book's query(): the value this node knows was decided, or None."""
        ...

    def clone(self) -> Self:
        """An independent copy, for the explorer to branch on."""
        ...

    def state_key(self) -> Hashable:
        """Everything that determines future behaviour, as a hashable value."""
        ...

    def invariants(self) -> None:
        """Assert internal consistency; drivers call it after every input."""
        ...


class CoreFactory(Protocol):
    """Builds a fresh core, or rebuilds one from the records it persisted before a crash."""

    def __call__(
        self,
        node_id: NodeId,
        members: Sequence[NodeId],
        rng: random.Random,
        config: CoreConfig,
        durable: Sequence[Any] | None,
    ) -> Core: ...
