"""The driver contract: what a core asks its driver to do after each input.

Every core input (`propose`, `step`, `tick`) returns an `Effects` value. The driver MUST carry it
out in this order:

1. write every record in `persist` and make it durable (fsync) - BEFORE anything else;
2. send every envelope in `send`;
3. report every entry in `decided` (and `reads`) to whoever waits for it.

Sending before the records are durable would let a node promise or accept something it can
forget in a crash, which breaks Paxos. Both drivers (the simulator and the asyncio runtime) obey
the order; a planted bug in the simulator breaks it on purpose to show the checker catches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paxosd.core.types import Envelope


@dataclass(slots=True)
class Effects:
    """What a core wants done, in the order persist, then send, then decided."""

    persist: list[Any] = field(default_factory=list)
    send: list[Envelope] = field(default_factory=list)
    decided: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Linearizable reads that may now be answered, (read id, True), or must be retried
    # elsewhere, (read id, False). Only the Multi-Paxos engine uses these.
    reads: list[tuple[Any, bool]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.persist or self.send or self.decided or self.notes or self.reads)

    def extend(self, other: Effects) -> Effects:
        """Append another step's effects after this one's (keeps the persist-first order)."""
        self.persist.extend(other.persist)
        self.send.extend(other.send)
        self.decided.extend(other.decided)
        self.notes.extend(other.notes)
        self.reads.extend(other.reads)
        return self
