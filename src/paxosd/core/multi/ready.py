"""The driver contract of the Multi-Paxos replica: what it hands over, and what it is told back.

Theory of operation. The replica is a pure object. Its inputs (`propose`, `read`, `step`,
`tick`) change its state and accumulate work; `ready()` hands all of that work over as ONE
frozen `Ready` value, and `synced(ready)` tells the replica that the value's records are
durable. Every driver (the node process and the simulator run the same one, runtime/driver.py)
MUST carry out a `Ready` in this order:

1. send `send_now` (it may leave at once, even before the records below are durable);
2. write `records` and make them durable (fsync);
3. call `replica.synced(ready)`;
4. send `send_after_sync`, then hand over `applied` and `reads` to whoever waits for them;
   then carry out `snapshots` (core/multi/snapshots.py), if any: remove the snapshot files a
   now-durable `Snapshot` record made garbage, send the chunks peers asked for, stage the
   chunks that arrived, and start writing or restoring a snapshot OFF the turn loop, each
   reported back later as an input (`snapshot_saved`, `snapshot_restored`,
   `snapshot_failed`).

Nothing in `send_after_sync`, `applied` or `reads` may leave the node before step 2 returns:
those messages reveal promises and acceptances (a Promise, an Accepted) and those answers
reveal state that may depend on this very turn's records. An acceptor that replied before its
promise was durable could forget the promise in a crash and let two values be chosen. The
replica itself decides what may go early (`send_now`: only the leader's own Accept requests,
whose commit point it cuts to what an earlier `synced` confirmed), so no driver ever has to
look inside a message to decide.

The teaching cores (core/lessons, core/synod) keep the simpler `core.effects.Effects`.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from paxosd.core.multi.messages import SnapshotInstall
from paxosd.core.multi.records import Record, Snapshot
from paxosd.core.types import Ballot, Envelope, NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.learner import SnapshotView


class Role(enum.Enum):
    """What a replica is doing; each role handles messages its own way (replica.py)."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"
    # Lost its durable state: learns from its peers, never votes, until it has rebuilt it.
    REBUILDING = "rebuilding"


class RebuildWait(enum.Enum):
    """Why a rebuilding replica still waits for a peer's report (rebuild.py)."""

    NO_ANSWER = "no_answer"  # it has not answered yet (down, unreachable, or slow)
    REBUILDING = "rebuilding"  # it answered that it is rebuilding too: it cannot vouch


class Proposal(enum.Enum):
    """What `Replica.propose` did with a command."""

    QUEUED = "queued"  # this node leads: the command waits for a slot here
    FORWARDED = "forwarded"  # queued for the leader this node knows
    NO_LEADER = "no_leader"  # dropped: no leader known (retry once one is)
    QUEUE_FULL = "queue_full"  # dropped: the queue is at its limit (retry later)

    @property
    def taken(self) -> bool:
        return self in (Proposal.QUEUED, Proposal.FORWARDED)


class Applied(NamedTuple):
    """One command applied at `slot`: the state machine's answer and, for a client request,
    the request's identity (whoever waits for the answer looks it up by that); `events`, what
    it changed (the service's typed events: key, version before and after, revision), so that
    a host sees every change in log order without decoding the payload again.

    A named tuple rather than a frozen dataclass: every replica makes one per command, and
    the learner builds it with tuple.__new__ for a tenth of the dataclass's __init__."""

    slot: int
    payload: bytes
    result: Any
    request: Hashable | None = None
    events: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class ReadDone:
    """A linearizable read, answered: `result` is the state machine's answer at a point no
    earlier than the read's arrival."""

    read_id: int
    result: Any


@dataclass(frozen=True, slots=True)
class ReadRefused:
    """A read this node could not get confirmed (no leader, or the leader changed): ask again."""

    read_id: int
    leader: NodeId | None


@dataclass(frozen=True, slots=True)
class Note:
    """Something an operator would want in the log: `event` names it, `fields` give the facts."""

    event: str
    fields: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        return " ".join([self.event, *(f"{key}={value}" for key, value in self.fields)])


def note(event: str, **fields: Any) -> Note:
    return Note(event, tuple(fields.items()))


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """A chunk of this node's snapshot file for a peer catching up: the host reads `length`
    bytes at `offset` of the file of `slot` and sends them as a SnapshotInstall. The core
    names what to send; it never holds a snapshot's bytes."""

    dst: NodeId
    ballot: Ballot
    slot: int
    offset: int
    length: int
    total_bytes: int
    checksum: bytes


@dataclass(frozen=True, slots=True)
class SnapshotWork:
    """What the host does with snapshot files once the turn's records are durable."""

    # Write `view` as the snapshot file of `slot`, off the turn loop; then report
    # `snapshot_saved(record)` or `snapshot_failed(slot, why)`.
    take: tuple[int, SnapshotView] | None = None
    # `records` hold this Snapshot record: once durable, older snapshot files are garbage.
    recorded: Snapshot | None = None
    # Read each chunk from this node's snapshot file and send it to its peer.
    chunks_out: tuple[SnapshotChunk, ...] = ()
    # Chunks of a snapshot arriving from a peer: append each to the staged file, in order.
    chunks_in: tuple[SnapshotInstall, ...] = ()
    # The staged snapshot is complete: check it against this record, and restore a state
    # machine from it, off the turn loop; then report `snapshot_restored(record, machine)` or
    # `snapshot_failed(slot, why)`.
    install: Snapshot | None = None


def _has_work(output: Ready | Outbox) -> bool:
    """Whether there is anything to carry out: the one list of `Ready`'s work fields (all
    but `commit`), shared by `Ready` and `Outbox` so that the two cannot drift apart."""
    return bool(
        output.records
        or output.send_now
        or output.send_after_sync
        or output.applied
        or output.reads
        or output.notes
        or output.snapshots is not None
    )


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything one turn of the replica produced; see the module docstring for the order."""

    # MUST be durable BEFORE anything in send_after_sync, applied or reads leaves the node.
    records: tuple[Record, ...]
    # May leave at once, before the sync: the leader's Accepts (they reveal no unsynced vote).
    send_now: tuple[Envelope, ...]
    # Leave only after `records` are durable.
    send_after_sync: tuple[Envelope, ...]
    # Applied commands, in log order, with their answers: handed over after the sync.
    applied: tuple[Applied, ...]
    # Reads that were answered or refused: handed over after the sync.
    reads: tuple[ReadDone | ReadRefused, ...]
    notes: tuple[Note, ...]
    # The chosen point when this value was made: once `synced(ready)` is called, early
    # Accepts may tell followers everything up to it.
    commit: int
    # Work on snapshot files, after the sync (see SnapshotWork); None on most turns.
    snapshots: SnapshotWork | None = None

    __bool__ = _has_work


class Outbox:
    """What a replica's inputs produced since its last `ready()`: the same fields as `Ready`,
    as lists to add to, and the one way every handler sends, persists and notes."""

    __slots__ = (
        "applied",
        "node_id",
        "notes",
        "reads",
        "records",
        "send_after_sync",
        "send_now",
        "snapshots",
    )

    def __init__(self, node_id: NodeId) -> None:
        self.node_id = node_id
        self.records: list[Record] = []
        self.send_now: list[Envelope] = []
        self.send_after_sync: list[Envelope] = []
        self.applied: list[Applied] = []
        self.reads: list[ReadDone | ReadRefused] = []
        self.notes: list[Note] = []
        self.snapshots: SnapshotWork | None = None

    __bool__ = _has_work

    def snapshot_work(self, **change: Any) -> None:
        """Add to this turn's snapshot work: `take`, `recorded` or `install` set, or one
        SnapshotChunk (`chunk_out`) or SnapshotInstall (`chunk_in`) appended."""
        work = self.snapshots or SnapshotWork()
        if "chunk_out" in change:
            change["chunks_out"] = (*work.chunks_out, change.pop("chunk_out"))
        if "chunk_in" in change:
            change["chunks_in"] = (*work.chunks_in, change.pop("chunk_in"))
        self.snapshots = replace(work, **change)

    def send(self, dst: NodeId, msg: Any) -> None:
        """A message that leaves after this turn's records are durable (ready.py)."""
        self.send_after_sync.append(Envelope(self.node_id, dst, msg))

    def persist(self, records: list[Record]) -> None:
        self.records.extend(records)

    def note(self, event: str, **fields: Any) -> None:
        self.notes.append(Note(event, (("node", self.node_id), *fields.items())))

    def freeze(self, commit: int) -> Ready:
        return Ready(
            records=tuple(self.records),
            send_now=tuple(self.send_now),
            send_after_sync=tuple(self.send_after_sync),
            applied=tuple(self.applied),
            reads=tuple(self.reads),
            notes=tuple(self.notes),
            commit=commit,
            snapshots=self.snapshots,
        )


@dataclass(frozen=True, slots=True)
class Status:
    """What the replica is, as a value: drivers, operators and tests read this, never fields."""

    node_id: NodeId
    role: Role
    leader: NodeId | None  # this node if it leads, else the leader it follows (if known)
    ballot: Ballot | None  # the ballot it leads or campaigns with
    promised: Ballot | None
    highest_seen: Ballot | None
    chosen_upto: int
    applied: int
    next_slot: int
    inflight_slots: int
    queued_commands: int
    forward_commands: int
    snapshot_slot: int
    elections: int
    log_time_ms: int  # the state machine's log time
    wants_log_time: bool  # the state machine wants log time to keep moving while idle
    # While rebuilding: the peers whose reports it still waits for, and why (empty once
    # every peer reported, and whenever it is not rebuilding).
    rebuild_waiting_for: tuple[tuple[NodeId, RebuildWait], ...] = ()
    # While leading and handing leadership over: to whom (transfer.py).
    transferring_to: NodeId | None = None
    # The membership epoch this node is in (epochs.py): 0 until the first change.
    epoch: int = 0

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def rebuilding(self) -> bool:
        return self.role is Role.REBUILDING

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "leader": self.leader,
            "ballot": None if self.ballot is None else str(self.ballot),
            "promised": None if self.promised is None else str(self.promised),
            "chosen_upto": self.chosen_upto,
            "applied": self.applied,
            "next_slot": self.next_slot,
            "inflight_slots": self.inflight_slots,
            "queued_commands": self.queued_commands,
            "snapshot_slot": self.snapshot_slot,
            "elections": self.elections,
            "rebuilding": self.rebuilding,
            "rebuild_waiting_for": {str(peer): why.value for peer, why in self.rebuild_waiting_for},
            "transferring_to": self.transferring_to,
            "epoch": self.epoch,
        }
