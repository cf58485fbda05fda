"""The Multi-Paxos acceptor: one promise for all slots, one accepted value per slot.

Theory of operation. Multi-Paxos runs phase 1 once for every slot from some point on, so an
acceptor keeps a single promised ballot rather than one per slot, and a log of what it accepted
per slot. A Prepare(ballot, from_slot) is promised if the ballot is higher than the promise; the
Promise reports every accepted (slot, ballot, batch) from `from_slot` on, which is what lets a
new leader finish whatever its predecessors may have chosen. An Accept for any slot is taken if
its ballot is at least the promise. Slots up to the snapshot are chosen and applied; their
entries are dropped, and a Promise says so with `snapshot_slot`.

Only ballots with a successor are promised or accepted (`Ballot.has_successor`): a promise at
the very top of the ballot range would leave no higher ballot anyone could lead with.

Every change MUST be durable BEFORE the reply that reveals it: the caller persists the records
this module returns and the driver syncs them before sending.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paxosd.core.multi.ballots import is_mark
from paxosd.core.multi.records import Accepted, Batch, Promised, Record
from paxosd.core.types import Ballot


@dataclass(slots=True)
class AcceptorLog:
    promised: Ballot | None = None
    entries: dict[int, tuple[Ballot, Batch]] = field(default_factory=dict)
    snapshot_slot: int = 0

    def promise(self, ballot: Ballot) -> list[Record]:
        """Raise the promise; return the record to persist (none if nothing changed)."""
        if self.promised is not None and ballot <= self.promised:
            return []
        self.promised = ballot
        return [Promised(ballot)]

    def can_promise(self, ballot: Ballot) -> bool:
        return ballot.has_successor and (self.promised is None or ballot > self.promised)

    def can_accept(self, ballot: Ballot) -> bool:
        return ballot.has_successor and (self.promised is None or ballot >= self.promised)

    def accept(self, ballot: Ballot, slot: int, batch: Batch) -> list[Record]:
        assert self.can_accept(ballot), "accept above the promise only"
        records = self.promise(ballot)
        if slot <= self.snapshot_slot:
            return records  # chosen and applied long ago; nothing to remember
        self.entries[slot] = (ballot, batch)
        records.append(Accepted(slot, ballot, batch))
        return records

    def adopt(self, slot: int, ballot: Ballot, batch: Batch) -> list[Record]:
        """Take a peer's acceptance as this acceptor's own (rebuilding a lost store, see
        rebuild.py): kept only if higher than what is here for the slot."""
        assert is_mark(ballot) or (self.promised is not None and ballot <= self.promised)
        current = self.entries.get(slot)
        if slot <= self.snapshot_slot or (current is not None and current[0] >= ballot):
            return []
        self.entries[slot] = (ballot, batch)
        return [Accepted(slot, ballot, batch)]

    def report(self, from_slot: int) -> tuple[tuple[int, Ballot, Batch], ...]:
        """Everything accepted from `from_slot` on, for a Promise."""
        return tuple(
            (slot, ballot, batch)
            for slot, (ballot, batch) in sorted(self.entries.items())
            if slot >= from_slot
        )

    def truncate(self, upto: int) -> None:
        """Forget entries up to a snapshot slot."""
        if upto <= self.snapshot_slot:
            return
        self.snapshot_slot = upto
        for slot in [s for s in self.entries if s <= upto]:
            del self.entries[slot]

    def invariants(self, full: bool = False) -> None:
        """Every entry is above the snapshot and at most the promise, but for the marks of
        chosen values (epochs.py), which are never promised. `accept` and `adopt` keep that as
        they go, so the walk over every entry is for `full` checks only."""
        if full:
            for slot, (ballot, _) in self.entries.items():
                assert slot > self.snapshot_slot, "entries below the snapshot are dropped"
                assert is_mark(ballot) or (self.promised is not None and ballot <= self.promised)
