"""The learner of a Multi-Paxos replica: which values are chosen, and applying them in order.

Theory of operation. The learner knows, per slot, the batch that was chosen (from the leader's
count of Accepted, from a commit point that covers what this node accepted in the leader's own
ballot, or from a peer's Entries and snapshots). `chosen_upto` is the highest slot below which
every slot is known chosen; `advance()` moves it over every contiguous known slot and applies
them, strictly in order, to the deterministic state machine. A snapshot replaces the state
machine with the state after some slot and forgets the chosen values it covers.

Everything here is one node's knowledge, rebuilt on restart from the snapshot and by catching
up: only the acceptor's state and snapshots are durable.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

from paxosd.core.multi.ready import Applied
from paxosd.core.multi.records import Batch

batch_shift = 16  # command index = slot << 16 | position in the batch
batch_commands_cap = 1 << batch_shift


class Machine(Protocol):
    """The replicated state machine, as the engine sees it (paxosd.service.StateMachine)."""

    def apply(self, slot: int, payload: bytes) -> tuple[Any, Hashable | None]:
        """Apply one chosen command; its answer and the identity of the request it answers."""
        ...

    def read(self, query: Any) -> Any:
        """Answer a read-only query from the current state."""
        ...

    def snapshot(self) -> bytes:
        """The whole state, as bytes `restore` accepts."""
        ...

    @property
    def events(self) -> tuple[Any, ...]:
        """What the last `apply` changed (the service's typed events), handed on with it."""
        ...

    @property
    def log_time_ms(self) -> int:
        """Log time: the latest time the leader stamped on a batch this machine applied."""
        ...

    @property
    def wants_log_time(self) -> bool:
        """Whether log time must keep moving while no commands arrive (something in the
        state, such as a lease, expires in it): then the idle leader proposes time."""
        ...


class Learner:
    def __init__(self, machine: Machine, restore: Callable[[bytes], Machine]) -> None:
        self.machine = machine
        self._restore = restore
        self.chosen: dict[int, Batch] = {}  # known-chosen values above the snapshot
        self.chosen_upto = 0
        self.applied = 0
        self.snapshot_slot = 0
        self.snapshot_data: bytes | None = None

    def learn(self, slot: int, batch: Batch) -> None:
        """`batch` is the value chosen for `slot`."""
        if slot > self.chosen_upto:
            self.chosen[slot] = batch

    def knows(self, slot: int) -> bool:
        return slot <= self.chosen_upto or slot in self.chosen

    def advance(self) -> list[Applied]:
        """Move the chosen point over every contiguous known slot and apply each, in order."""
        while self.chosen_upto + 1 in self.chosen:
            self.chosen_upto += 1
        machine = self.machine
        applied: list[Applied] = []
        while self.applied < self.chosen_upto:
            slot = self.applied + 1
            base = slot << batch_shift
            for position, payload in enumerate(self.chosen[slot]):
                result, request = machine.apply(base | position, payload)
                applied.append(Applied(slot, payload, result, request, machine.events))
            self.applied = slot
        return applied

    def install(self, slot: int, data: bytes) -> str | None:
        """Replace the state with a snapshot taken after `slot`. None if installed, else why
        not: the snapshot is not newer than what is here, or it does not restore."""
        if slot <= self.chosen_upto:
            return "not newer than this node's state"
        try:
            machine = self._restore(data)
        except Exception as error:
            return f"does not restore: {error}"
        self.machine = machine
        self._took(slot, data)
        self.applied = self.chosen_upto = slot
        return None

    def take_snapshot(self, bytes_max: int) -> tuple[int, bytes] | None:
        """The state machine after everything applied, as (slot, data); None if it is larger
        than `bytes_max` (no store could hold it)."""
        slot, data = self.applied, self.machine.snapshot()
        if len(data) > bytes_max:
            return None
        self._took(slot, data)
        return slot, data

    def _took(self, slot: int, data: bytes) -> None:
        self.snapshot_slot, self.snapshot_data = slot, data
        for old in [s for s in self.chosen if s <= slot]:
            del self.chosen[old]

    def values(self, from_slot: int, slots_max: int, bytes_max: int) -> list[tuple[int, Batch]]:
        """Chosen values from `from_slot` on, for a peer catching up, within the limits."""
        entries: list[tuple[int, Batch]] = []
        size = 0
        slot = from_slot
        while slot <= self.chosen_upto and len(entries) < slots_max:
            batch = self.chosen.get(slot)
            if batch is None:
                break
            size += sum(len(command) for command in batch)
            if entries and size > bytes_max:
                break
            entries.append((slot, batch))
            slot += 1
        return entries

    def invariants(self, full: bool = False) -> None:
        assert self.snapshot_slot <= self.applied <= self.chosen_upto
        assert self.chosen_upto + 1 not in self.chosen, "advance() leaves no known slot behind"
        if full:
            assert all(slot > self.snapshot_slot for slot in self.chosen)
            assert all(s in self.chosen for s in range(self.applied + 1, self.chosen_upto + 1))
