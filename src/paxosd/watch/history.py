"""Where a watch that starts in the past reads the changes it missed: the store's history.

Theory of operation. The multi-version store (service/kv/store.py) keeps every version of
every key since its compacted revision; the changes of a range between two revisions are
exactly the versions whose mod_revision lies between them, each one's previous version being
the one before it in the key's list. `History` is the small interface the watch hub needs
(the store's revision, its compacted revision, and those changes), so the hub is tested
against a plain list of events as well as against the store.

The changes after the compacted revision C are all there: compaction frees only versions
superseded at or before C (and tombstones at or before C), so for a revision r > C both the
version written at r and the one it replaced are kept. Hence `changes` asks for
`first > compact_revision`; a watch that needs revision C or older is cancelled instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from paxosd.service.kv.store import MvccStore
from paxosd.service.kv.types import Event, EventType, KeyValue, in_range

__all__ = [
    "EventLog",
    "History",
    "MachineHistory",
    "StoreHistory",
    "compaction_due",
    "event_revisions",
]

_PUT = EventType.PUT
_DELETE = EventType.DELETE


class History(Protocol):
    """What the watch hub reads from a node's state."""

    @property
    def revision(self) -> int:
        """The store's revision (the newest change applied)."""
        ...

    @property
    def compact_revision(self) -> int:
        """Changes at or below this revision may be gone (-1: nothing compacted)."""
        ...

    def changes(self, key: bytes, range_end: bytes, first: int, last: int) -> list[Event]:
        """Every change of the keys in range (types.py `in_range`) with first <= revision
        <= last, in revision order, each revision's in key order (a key changed twice in one
        revision: in the order it changed). Complete only if first > compact_revision: the
        caller checks that (a watch that needs older changes is cancelled instead)."""
        ...


def event_revisions(events: list[Event]) -> list[tuple[int, list[Event]]]:
    """`events` (in revision order) grouped by revision."""
    grouped: list[tuple[int, list[Event]]] = []
    for event in events:
        revision = event.kv.mod_revision
        if grouped and grouped[-1][0] == revision:
            grouped[-1][1].append(event)
        else:
            grouped.append((revision, [event]))
    return grouped


class StoreHistory:
    """`History` over the multi-version store of one node's state machine."""

    __slots__ = ("store",)

    def __init__(self, store: MvccStore) -> None:
        self.store = store

    @property
    def revision(self) -> int:
        return self.store.revision

    @property
    def compact_revision(self) -> int:
        return self.store.compact_revision

    def changes(self, key: bytes, range_end: bytes, first: int, last: int) -> list[Event]:
        store = self.store
        found: list[tuple[int, bytes, int, Event]] = []
        keys: Iterable[bytes]
        if not range_end:
            keys = (key,)
        else:
            keys = store.index.irange(key, None if range_end == b"\0" else range_end)
        history = store.history
        for name in keys:
            versions = history.get(name)
            if versions is None or versions[-1].mod_revision < first:
                continue
            _key_changes(versions, first, last, found)
        found.sort(key=_order)
        return [entry[3] for entry in found]


def _order(entry: tuple[int, bytes, int, Event]) -> tuple[int, bytes, int]:
    return entry[0], entry[1], entry[2]


def _key_changes(
    versions: list[KeyValue], first: int, last: int, out: list[tuple[int, bytes, int, Event]]
) -> None:
    """The changes in [first, last] of one key, from its versions (oldest first)."""
    # Versions are in mod_revision order: walk back from the newest to the first one needed.
    i = len(versions) - 1
    while i > 0 and versions[i - 1].mod_revision >= first:
        i -= 1
    for j in range(i, len(versions)):
        kv = versions[j]
        revision = kv.mod_revision
        if revision > last:
            break
        if revision < first:
            continue
        before = versions[j - 1] if j > 0 else None
        prev = before if before is not None and before.create_revision else None
        kind = _PUT if kv.create_revision else _DELETE
        out.append((revision, kv.key, j, Event(kind, kv, prev)))


class EventLog:
    """`History` as a plain list of every event applied: the reference the hub is tested
    against (and what a simulated client's checker reads)."""

    __slots__ = ("compact_revision", "events", "revision")

    def __init__(self) -> None:
        self.revision = 1
        self.compact_revision = -1
        self.events: list[Event] = []

    def append(self, events: list[Event] | tuple[Event, ...]) -> None:
        """The events of one revision (the next one)."""
        if events:
            revision = events[0].kv.mod_revision
            assert revision == self.revision + 1, (revision, self.revision)
            assert all(e.kv.mod_revision == revision for e in events)
            self.events.extend(sorted(events, key=lambda e: e.kv.key))
            self.revision = revision

    def compact(self, revision: int) -> None:
        """Forget the events at or below `revision` (as the store frees them)."""
        assert self.compact_revision < revision <= self.revision
        self.compact_revision = revision
        self.events = [e for e in self.events if e.kv.mod_revision > revision]

    def changes(self, key: bytes, range_end: bytes, first: int, last: int) -> list[Event]:
        return [
            e
            for e in self.events
            if first <= e.kv.mod_revision <= last and in_range(e.kv.key, key, range_end)
        ]


class MachineHistory:
    """The history of whatever state machine a replica holds now, for `WatchHub(source)`:
    installing a snapshot replaces the machine, and the hub notices by the new object this
    returns. `machine` gives the replica's current state machine (a service Router)."""

    __slots__ = ("_current", "_machine", "_of")

    def __init__(self, machine: Callable[[], Any]) -> None:
        self._machine = machine
        self._current: StoreHistory | None = None
        self._of: Any = None  # the machine `_current` is the history of

    def __call__(self) -> StoreHistory:
        # Asked for every applied command: the same machine has the same store (a machine's
        # store is set when it is built, and a snapshot installs a new machine).
        machine = self._machine()
        current = self._current
        if machine is self._of and current is not None:
            return current
        store = machine.kv.store
        if current is None or current.store is not store:
            current = self._current = StoreHistory(store)
        self._of = machine
        return current


def compaction_due(revisions_max: int, bytes_max: int) -> Callable[[History], int | None]:
    """The automatic compaction's rule (service/kv/compaction.py), for `WatchHub`'s
    `upcoming_compaction`: the revision the leader will compact to, or None."""

    def due(history: History) -> int | None:
        if not isinstance(history, StoreHistory):
            return None
        return history.store.compaction_target(revisions_max, bytes_max)

    return due
