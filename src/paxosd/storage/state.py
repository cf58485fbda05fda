"""What a store gives back (`Recovered`), the contract every backend keeps (`LogStore`) and the
fold of a record sequence into the state it describes (`LogState`). Pure code.

Theory of operation. A store is a sequence of records; its meaning is the fold below, which
every backend implements (the file and memory backends by literally replaying it, SQLite by
keeping its tables equal to its result):

- `Promised`: keep the highest ballot ever written. The acceptor never lowers its promise, and
  a store that let a stale record win could make it forget a promise it already made.
- `Accepted(slot, ...)`: the latest record for a slot replaces the older ones, unless the slot
  is covered by the snapshot (then it is chosen, applied and forgotten).
- `Rebuilding`: the latest one says whether the node is rebuilding its state from its peers
  (and so must not vote).
- `Snapshot` and `InlineSnapshot` (either kind): keep the one with the highest slot (the
  latest written among equals); it drops every `Accepted` at or below its slot. A snapshot
  with a lower slot than the current one is ignored rather than obeyed: obeying it would
  resurrect nothing and lose the snapshot that covers the slots whose entries are already
  gone.
- `Configured`: keep the configuration of the highest epoch (the latest written among equals).
  One of a lower epoch is ignored: membership only moves forward, through the log.

`LogState` also counts the bytes of the frames that make up the current state (`live_bytes`),
which the log backends compare with their file size to decide when to compact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import (
    Accepted,
    Batch,
    Configured,
    InlineSnapshot,
    Promised,
    Rebuilding,
    Record,
    Snapshot,
    SnapshotRecord,
)
from paxosd.core.types import Ballot

from .snapshots import SnapshotStore


@dataclass(frozen=True)
class Recovered:
    """The durable state of one node, as `LogStore.load()` returns it."""

    promised: Ballot | None = None
    # slot -> latest accepted (ballot, batch), only for slots above the snapshot's slot.
    accepted: dict[int, tuple[Ballot, Batch]] = field(default_factory=dict)
    # The node lost its state and is rebuilding it from its peers: it must not vote yet.
    rebuilding: bool = False
    # The snapshot the state starts from: a reference to a snapshot file (`Snapshot`), or,
    # in a store written before snapshot files, the state's bytes themselves.
    snapshot: SnapshotRecord | None = None
    # The membership the store belongs to; None only in a store made before stores recorded
    # it (see runtime/datadir.py, "Stores without a configuration").
    configuration: Configuration | None = None
    # Bytes of a torn tail (a crash mid-append) cut off when the store was opened.
    repaired_tail_bytes: int = 0

    @property
    def snapshot_slot(self) -> int:
        return 0 if self.snapshot is None else self.snapshot.slot

    def records(self) -> list[Record]:
        """The same state as a minimal record list, in an order that replays to it."""
        out: list[Record] = []
        if self.configuration is not None:
            out.append(Configured(self.configuration))
        if self.rebuilding:
            out.append(Rebuilding(True))
        if self.snapshot is not None:
            out.append(self.snapshot)
        if self.promised is not None:
            out.append(Promised(self.promised))
        for slot in sorted(self.accepted):
            ballot, batch = self.accepted[slot]
            out.append(Accepted(slot, ballot, batch))
        return out


class LogStore(Protocol):
    """The driver contract: write after each step, sync once per batch of steps, reply after."""

    def write(self, records: Sequence[Record]) -> None:
        """Buffer `records` (cheap, no I/O). `InvalidRecord` for a record that cannot be stored."""
        ...

    def sync(self) -> None:
        """Make everything written since the last sync durable, with one fsync, before returning."""
        ...

    def load(self) -> Recovered:
        """The state as of the last sync, possibly plus writes made since."""
        ...

    def close(self) -> None:
        """Sync what was written and release files and locks. Idempotent."""
        ...

    def disk_bytes(self) -> int:
        """Bytes the store occupies on disk (or on its simulated disk)."""
        ...

    @property
    def snapshots(self) -> SnapshotStore:
        """The snapshot files beside the log (the records name them)."""
        ...


class LogState:
    """The fold of a record sequence (see the module docstring), with live-byte accounting."""

    __slots__ = (
        "_accepted_bytes",
        "_configured_bytes",
        "_promised_bytes",
        "_rebuilding_bytes",
        "_slot_bytes",
        "_snapshot_bytes",
        "accepted",
        "configuration",
        "promised",
        "rebuilding",
        "snapshot",
    )

    def __init__(self) -> None:
        self.promised: Ballot | None = None
        self.accepted: dict[int, tuple[Ballot, Batch]] = {}
        self.rebuilding = False
        self.snapshot: SnapshotRecord | None = None
        self.configuration: Configuration | None = None
        self._configured_bytes = 0
        self._promised_bytes = 0
        self._rebuilding_bytes = 0
        self._snapshot_bytes = 0
        self._accepted_bytes = 0
        self._slot_bytes: dict[int, int] = {}  # frame size of each live slot's record

    @property
    def snapshot_slot(self) -> int:
        return 0 if self.snapshot is None else self.snapshot.slot

    @property
    def live_bytes(self) -> int:
        """Bytes of the frames that describe the current state (what compaction would keep)."""
        return (
            self._promised_bytes
            + self._rebuilding_bytes
            + self._snapshot_bytes
            + self._accepted_bytes
            + self._configured_bytes
        )

    def apply(self, record: Record, frame_bytes: int = 0) -> None:
        """Fold one record in; `frame_bytes` is its size on disk, for `live_bytes`."""
        kind = type(record)
        if kind is Accepted:
            assert isinstance(record, Accepted)
            slot = record.slot
            if self.snapshot is not None and slot <= self.snapshot.slot:
                return
            self.accepted[slot] = (record.ballot, record.batch)
            self._accepted_bytes += frame_bytes - self._slot_bytes.get(slot, 0)
            self._slot_bytes[slot] = frame_bytes
        elif kind is Promised:
            assert isinstance(record, Promised)
            if self.promised is None or record.ballot > self.promised:
                self.promised = record.ballot
                self._promised_bytes = frame_bytes
        elif kind is Rebuilding:
            assert isinstance(record, Rebuilding)
            self.rebuilding = record.active
            self._rebuilding_bytes = frame_bytes if record.active else 0
        elif kind is Snapshot or kind is InlineSnapshot:
            assert isinstance(record, Snapshot | InlineSnapshot)
            if self.snapshot is not None and record.slot < self.snapshot.slot:
                return
            self.snapshot = record
            self._snapshot_bytes = frame_bytes
            covered = [slot for slot in self.accepted if slot <= record.slot]
            for slot in covered:
                del self.accepted[slot]
                self._accepted_bytes -= self._slot_bytes.pop(slot, 0)
        elif kind is Configured:
            assert isinstance(record, Configured)
            configuration = record.configuration
            if self.configuration is None or configuration.epoch >= self.configuration.epoch:
                self.configuration = configuration
                self._configured_bytes = frame_bytes
        else:
            raise TypeError(f"not a storage record: {kind.__name__}")

    def recovered(self, repaired_tail_bytes: int = 0) -> Recovered:
        """A `Recovered` value that shares no mutable state with this fold."""
        return Recovered(
            promised=self.promised,
            accepted=dict(self.accepted),
            rebuilding=self.rebuilding,
            snapshot=self.snapshot,
            configuration=self.configuration,
            repaired_tail_bytes=repaired_tail_bytes,
        )


def fold(records: Sequence[Record]) -> Recovered:
    """The state `records` describe (the reference semantics, without byte accounting)."""
    state = LogState()
    for record in records:
        state.apply(record)
    return state.recovered()
