"""The learner of a Multi-Paxos replica: which values are chosen, and applying them in order.

Theory of operation. The learner knows, per slot, the batch that was chosen (from the leader's
count of Accepted, from a commit point that covers what this node accepted in the leader's own
ballot, or from a peer's Entries and snapshots). `chosen_upto` is the highest slot below which
every slot is known chosen; `advance()` moves it over every contiguous known slot and applies
them, strictly in order, to the deterministic state machine. A snapshot stands for the state
after some slot: once its record is written (`recorded`, snapshots.py) the chosen values it
covers are forgotten, but for those since the snapshot before it (`retained`); installing a
peer's snapshot (`install`) replaces the state machine too.

Everything here is one node's knowledge, rebuilt on restart from the snapshot and by catching
up: only the acceptor's state and snapshots are durable.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, BinaryIO, Protocol

from paxosd.core.multi import reconfigure
from paxosd.core.multi.ready import Applied
from paxosd.core.multi.records import Batch, Snapshot

_new_tuple = tuple.__new__  # builds an Applied per command without its generated __new__

batch_shift = 16  # command index = slot << 16 | position in the batch
batch_commands_cap = 1 << batch_shift


class SnapshotView(Protocol):
    """The state machine as it was when `Machine.snapshot_view` was called."""

    def write(self, out: BinaryIO) -> None:
        """Stream the captured state to `out`, in the format `restore` reads (deterministic:
        equal states, equal bytes). It may run in a worker thread while the machine goes on
        applying commands, so it reads only what the view captured."""
        ...


class Machine(Protocol):
    """The replicated state machine, as the engine sees it (the service's machine). A host
    also knows how to `restore(inp: BinaryIO) -> Machine` from what a view wrote (it may run
    in a worker thread); the engine never restores, it is handed the restored machine."""

    def apply(self, slot: int, payload: bytes) -> tuple[Any, Hashable | None]:
        """Apply one chosen command; its answer and the identity of the request it answers."""
        ...

    def read(self, query: Any) -> Any:
        """Answer a read-only query from the current state."""
        ...

    def snapshot_view(self) -> SnapshotView:
        """The state after the last command applied, captured for a snapshot. Called on the
        turn loop, so it must be cheap (it may not copy the whole state byte by byte)."""
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
    def __init__(self, machine: Machine, retained_bytes_max: int = 0, replay_cost: int = 0) -> None:
        self.machine = machine
        self.chosen: dict[int, Batch] = {}  # known-chosen values above the snapshot
        # The values the latest snapshot covers that the one before it did not, kept for
        # peers (`values`): a learner installing the previous snapshot while this one was
        # written catches up from them, where it would otherwise need this snapshot too
        # (and, under steady writes, each install lasting as long as the log takes to pass
        # another snapshot point, the next one). In memory only: one snapshot interval of
        # values, as the log held before the snapshot, and none if they are more than
        # `retained_bytes_max` bytes of commands (EngineConfig).
        self.retained: dict[int, Batch] = {}
        self.retained_bytes = 0  # of the commands in `retained`
        self.retained_bytes_max = retained_bytes_max
        self.replay_cost = replay_cost  # EngineConfig's
        self.chosen_upto = 0
        self.applied = 0
        self.snapshot: Snapshot | None = None  # the latest snapshot record written
        # Membership changes applied and not yet handed to the replica: (slot, change). A
        # change is the engine's, never the state machine's (epochs.py).
        self.changes: list[tuple[int, reconfigure.Reconfigure]] = []

    @property
    def snapshot_slot(self) -> int:
        return 0 if self.snapshot is None else self.snapshot.slot

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
            batch = self.chosen[slot]
            change = _change(batch)
            if change is not None:
                self.changes.append((slot, change))
                self.applied = slot
                continue
            for position, payload in enumerate(batch):
                result, request = machine.apply(base | position, payload)
                entry = (slot, payload, result, request, machine.events)
                applied.append(_new_tuple(Applied, entry))  # Applied(*entry), for less
            self.applied = slot
        return applied

    def take_changes(self) -> list[tuple[int, reconfigure.Reconfigure]]:
        changes, self.changes = self.changes, []
        return changes

    def restored(self, snapshot: Snapshot) -> None:
        """On restart: the machine this learner was made with is the state after
        `snapshot.slot`, restored from that snapshot's file by the host."""
        assert not self.chosen and self.applied == 0, "a restart starts from the snapshot"
        self.snapshot = snapshot
        self.applied = self.chosen_upto = snapshot.slot

    def install(self, snapshot: Snapshot, machine: Machine) -> None:
        """A peer's snapshot, restored by the host: `machine` is the state after its slot."""
        assert snapshot.slot > self.chosen_upto, "only a snapshot newer than what is known"
        self.machine = machine
        self.applied = self.chosen_upto = snapshot.slot
        self.recorded(snapshot)
        self.retained, self.retained_bytes = {}, 0  # only what it applied itself is kept

    def recorded(self, snapshot: Snapshot) -> None:
        """A snapshot record is written: the chosen values it covers are not needed again."""
        assert self.snapshot_slot < snapshot.slot <= self.applied
        self.snapshot = snapshot
        chosen = self.chosen
        retained = {s: chosen.pop(s) for s in [s for s in chosen if s <= snapshot.slot]}
        size = sum(_bytes(batch) for batch in retained.values())
        if size > self.retained_bytes_max:
            retained, size = {}, 0
        self.retained, self.retained_bytes = retained, size

    def keeps(self, slot: int) -> bool:
        """Whether a peer that lacks `slot`, below the snapshot, is better sent the values
        kept from there on than the snapshot: they hold it, and applying them costs less than
        restoring the snapshot would (a fresh node is sent the snapshot: the values since the
        first one are the whole state's making, and applying them costs far more)."""
        snapshot = self.snapshot
        return (
            slot in self.retained
            and snapshot is not None
            and self.retained_bytes * self.replay_cost <= snapshot.size_bytes
        )

    def values(self, from_slot: int, slots_max: int, bytes_max: int) -> list[tuple[int, Batch]]:
        """Chosen values from `from_slot` on, for a peer catching up, within the limits
        (from the retained ones below the snapshot too)."""
        entries: list[tuple[int, Batch]] = []
        size = 0
        slot = from_slot
        chosen, retained = self.chosen, self.retained
        while slot <= self.chosen_upto and len(entries) < slots_max:
            batch = chosen.get(slot)
            if batch is None:
                batch = retained.get(slot)
            if batch is None:
                break
            size += _bytes(batch)
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
            assert all(slot <= self.snapshot_slot for slot in self.retained)
            assert all(s in self.chosen for s in range(self.applied + 1, self.chosen_upto + 1))


def _change(batch: Batch) -> reconfigure.Reconfigure | None:
    """The membership change `batch` carries, if it is one. A command that carries the mark
    but is no valid change goes to the state machine, which refuses it as any bad command."""
    try:
        return reconfigure.in_batch(batch)
    except reconfigure.BadReconfigure:
        return None


def _bytes(batch: Batch) -> int:
    """The bytes of a batch's commands: what the catch-up and retention limits count."""
    return sum(len(command) for command in batch)
