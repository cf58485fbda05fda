"""What a state machine behind the router provides: the seam between `router.py` and the
namespaces it routes to (the key-value store, coordination, and others to come).

Theory of operation: one replicated log can carry several state machines. Each owns a set of
op classes (a namespace) and is applied, in log order, only the ops it owns; the router
(`router.py`) keeps what they share: the slot order, exactly-once sessions, log time and the
snapshot. To add a state machine (the SQL database, for one):

1. write its op classes and their `OpCodec`s (codec.py) with tags from a range of your own
   (registry.py lists who owns which), and its answers' encoding for the exactly-once table
   (results.py: `result_to_raw` / `result_from_raw`);
2. write a class that satisfies `Part`;
3. add a `Namespace` for it at the end of `registry.NAMESPACES`.

A part must be deterministic - the same ops in the same order give the same answers and state
on every replica: no clock (log time arrives through `advance_time`), no randomness, no I/O,
no dependence on anything but its ops. A well-formed op that cannot take effect answers an
error value (results.Error, kv.KvError); it never raises.

Snapshots: `snapshot_view()` is called on the event loop between two applies and must be
cheap; the view's `write(writer)` may run in another thread while the part goes on applying,
so it may read only what the view captured or what the part promises not to change in place
while a view is open; it writes msgpack objects with `writer.write(obj)` (snapshot.py).
`Namespace.restore` reads them back, in the same order, and checks every invariant
(`CorruptSnapshot` for anything `write` could not have written).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .codec import OpCodec
from .kv.checks import DEFAULT_LIMITS, KvLimits
from .snapshot import SnapshotReader

if TYPE_CHECKING:  # a node's files, handed in (the state machines do no I/O)
    from paxosd.storage.sql_files import SqlFiles


@dataclass(frozen=True, slots=True)
class Options:
    """What a node configures in its state machines. None of it is replicated state: it may
    differ between nodes and change at restart, so it may shape only what this node answers
    to reads, never what applying the log does."""

    kv_limits: KvLimits = field(default_factory=lambda: DEFAULT_LIMITS)
    # A planted bug of the state machines (runtime/variants.py), never set in production.
    variant: str = "correct"
    # Where the SQL database lives: None in memory, else a file of its own among these
    # (storage/sql_files.py; a node's data directory's `sql/`).
    sql_files: SqlFiles | None = None


class PartView(Protocol):
    def write(self, writer: Any) -> None:
        """Write the captured state as msgpack objects (writer.write(obj))."""
        ...

    def close(self) -> None:
        """The view is no longer needed (whether written or not)."""
        ...


class Part(Protocol):
    """One state machine behind the router."""

    def handlers(self) -> dict[type, Callable[[Any], Any]]:
        """For every op class this part owns, the bound method that applies it from the log
        (reads included: a client may send one through the log)."""
        ...

    def readers(self) -> dict[type, Callable[[Any], Any]]:
        """For every read op class, the bound method that answers it from the current state,
        without the log (it must not change the state)."""
        ...

    def advance_time(self, now_ms: int) -> None:
        """Log time moved forward to `now_ms` (see router.py)."""
        ...

    @property
    def wants_log_time(self) -> bool:
        """Whether something here waits for log time to pass (a lease that may be live):
        then the leader keeps log time moving while no commands arrive."""
        ...

    def snapshot_view(self) -> PartView:
        """The state after the last apply, cheaply, for `PartView.write`."""
        ...


@dataclass(frozen=True, slots=True)
class Namespace:
    """A state machine the router can host: its name, its ops' codecs, how to make an empty
    one, and how to restore one from its section of a snapshot (objects, the reader, the
    node's options, the log time)."""

    name: str
    codecs: tuple[OpCodec, ...]
    new: Callable[[Options], Any]
    restore: Callable[[Iterator[Any], SnapshotReader, Options, int], Any]
