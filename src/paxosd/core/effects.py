"""The driver contract of the teaching cores: what a core asks its driver to do after an input.

Every input of a teaching core (core/lessons, core/synod: `propose`, `step`, `tick`) returns an
`Effects` value. The driver MUST carry it out in this order:

1. write every record in `persist` and make it durable (fsync) - BEFORE anything else;
2. send every envelope in `send`;
3. report every entry in `decided` to whoever waits for it.

Sending before the records are durable would let a node promise or accept something it can
forget in a crash, which breaks Paxos; the simulator can break the order on purpose to show
the checkers catch it. A teaching core persists its whole durable state each time, so the
latest record is all a restarted node needs.

The Multi-Paxos engine has a richer contract of its own (core/multi/ready.py): which messages
may leave before the sync, applied commands with their answers, reads.
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

    def __bool__(self) -> bool:
        return bool(self.persist or self.send or self.decided or self.notes)

    def extend(self, other: Effects) -> Effects:
        """Append another step's effects after this one's (keeps the persist-first order)."""
        self.persist.extend(other.persist)
        self.send.extend(other.send)
        self.decided.extend(other.decided)
        self.notes.extend(other.notes)
        return self
