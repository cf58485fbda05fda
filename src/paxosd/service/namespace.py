"""What a state machine behind the router provides: the seam between `router.py` and the
namespaces it routes to (the key-value store, coordination, and others to come).

Theory of operation: one replicated log can carry several state machines. Each owns a set of
op classes (a namespace) and is applied, in log order, only the ops it owns; the router
(`router.py`) keeps what they share: the slot order, exactly-once sessions, log time and the
snapshot. To add a state machine (the SQL database, for one):

1. write its op classes and their `OpCodec`s (codec.py) with tags from a range of your own
   (commands.py lists who owns which);
2. write a class that satisfies `Part`;
3. add a `Namespace` for it to `registry.NAMESPACES`.

A part must be deterministic - the same ops in the same order give the same answers and state
on every replica: no clock (log time arrives through `advance_time`), no randomness, no I/O,
no dependence on anything but its ops. A well-formed op that cannot take effect answers an
error value (results.Error, kv.KvError); it never raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .codec import OpCodec


class Part(Protocol):
    """One state machine behind the router."""

    def handlers(self) -> dict[type, Callable[[Any], Any]]:
        """For every op class this part owns, the bound method that applies it (a write) or
        answers it (a read, which must not change the state)."""
        ...

    def advance_time(self, now_ms: int) -> None:
        """Log time moved forward to `now_ms` (see router.py)."""
        ...

    @property
    def wants_log_time(self) -> bool:
        """Whether something here waits for log time to pass (a lease that may be live):
        then the leader keeps log time moving while no commands arrive."""
        ...


@dataclass(frozen=True, slots=True)
class Namespace:
    """A state machine the router can host: its name, its ops' codecs, and a factory of an
    empty instance."""

    name: str
    codecs: tuple[OpCodec, ...]
    new: Callable[[], Any]
