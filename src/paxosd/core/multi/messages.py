"""Messages of the Multi-Paxos engine, named as in the papers.

Phase 1 runs once per leadership for every slot from `from_slot` on: Prepare / Promise (with
everything the acceptor accepted from that slot on) or Nack. Phase 2 runs per batch: Accept /
Accepted, or Nack. The leader's Heartbeat carries the commit point; an Ack answers it and, for
linearizable reads, confirms the leader still leads (`read_round`). A node that lacks chosen
values asks with CatchUp and gets Entries, or a SnapshotInstall (in chunks, each asked for by
the next CatchUp) when the leader has truncated the slots it needs. A follower forwards client
commands to the leader with Forward. A node rebuilding a lost store asks every peer for its
acceptor state with StateQuery and gets a StateReport from each (see replica.py, "Amnesia").
Each message class names its `family`, which is how diagrams group and colour messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import Batch
from paxosd.core.types import Ballot


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepare:
    family: ClassVar[str] = "phase1"
    ballot: Ballot
    from_slot: int
    # Sent by the node its leader handed leadership to (TimeoutNow): the peers still hear
    # that leader, and answer anyway (stickiness is for nodes nobody asked to take over).
    transfer: bool = False

    def describe(self) -> str:
        handed = ", handed over" if self.transfer else ""
        return f"Prepare({self.ballot}, from {self.from_slot}{handed})"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow:
    """The leader hands leadership over: the receiver campaigns at once (Raft's TimeoutNow),
    once it has applied everything the leader had chosen."""

    family: ClassVar[str] = "election"
    ballot: Ballot

    def describe(self) -> str:
        return f"TimeoutNow({self.ballot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class PreVote:
    """Would you promise this ballot? Asked before a node raises its own promise, so that a
    node cut off from the others cannot inflate its ballot and disrupt the leader on its
    return. Nothing is persisted or promised by either side."""

    family: ClassVar[str] = "election"
    ballot: Ballot

    def describe(self) -> str:
        return f"PreVote({self.ballot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class PreVoteReply:
    family: ClassVar[str] = "election"
    ballot: Ballot
    granted: bool

    def describe(self) -> str:
        return f"PreVoteReply({self.ballot}, {'yes' if self.granted else 'no'})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Promise:
    family: ClassVar[str] = "phase1"
    ballot: Ballot
    # (slot, accepted ballot, batch) for every slot >= the Prepare's from_slot
    accepted: tuple[tuple[int, Ballot, Batch], ...]
    # slots up to here were truncated into a snapshot (and so are chosen)
    snapshot_slot: int
    commit: int

    def describe(self) -> str:
        return f"Promise({self.ballot}, {len(self.accepted)} accepted)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    family: ClassVar[str] = "phase2"
    ballot: Ballot
    slot: int
    batch: Batch
    commit: int

    def describe(self) -> str:
        return f"Accept({self.ballot}, slot {self.slot}, {len(self.batch)} cmds)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    family: ClassVar[str] = "phase2"
    ballot: Ballot
    slot: int

    def describe(self) -> str:
        return f"Accepted({self.ballot}, slot {self.slot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Nack:
    family: ClassVar[str] = "nack"
    ballot: Ballot
    promised: Ballot

    def describe(self) -> str:
        return f"Nack({self.ballot}, promised {self.promised})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    family: ClassVar[str] = "heartbeat"
    ballot: Ballot
    commit: int
    read_round: int

    def describe(self) -> str:
        return f"Heartbeat({self.ballot}, commit {self.commit})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """The chosen point moved and no Accept is going out to say so: tell the followers now,
    so that they apply (and answer their clients) without waiting for the next heartbeat."""

    family: ClassVar[str] = "learn"
    ballot: Ballot
    commit: int

    def describe(self) -> str:
        return f"Commit({self.ballot}, {self.commit})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    family: ClassVar[str] = "heartbeat"
    ballot: Ballot
    read_round: int
    applied: int

    def describe(self) -> str:
        return f"Ack({self.ballot}, round {self.read_round})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndex:
    """A follower asks the leader for a confirmed read index (reads on any node)."""

    family: ClassVar[str] = "read"
    read_id: int

    def describe(self) -> str:
        return f"ReadIndex({self.read_id})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndexReply:
    """The leader confirmed it leads after the request arrived: reads may be answered once
    applied up to `index`. `index` is -1 when the node asked is not the leader."""

    family: ClassVar[str] = "read"
    read_id: int
    index: int

    def describe(self) -> str:
        return f"ReadIndexReply({self.read_id}, {self.index})"


@dataclass(frozen=True, slots=True, kw_only=True)
class CatchUp:
    """Send me the chosen values from `from_slot` on. While a snapshot arrives in chunks,
    `snapshot_slot` names it and `snapshot_offset` is how many of its bytes are here."""

    family: ClassVar[str] = "catchup"
    from_slot: int
    snapshot_slot: int = 0
    snapshot_offset: int = 0

    def describe(self) -> str:
        if self.snapshot_slot:
            return f"CatchUp(snapshot {self.snapshot_slot} from byte {self.snapshot_offset})"
        return f"CatchUp(from {self.from_slot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Entries:
    family: ClassVar[str] = "catchup"
    ballot: Ballot
    entries: tuple[tuple[int, Batch], ...]  # chosen values, in slot order
    commit: int

    def describe(self) -> str:
        return f"Entries({len(self.entries)} slots, commit {self.commit})"


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotInstall:
    """One chunk of the snapshot at `slot`: `data` is bytes `offset` onwards of `total_bytes`;
    `checksum` is the whole file's (the sender's `Snapshot` record), checked once it is here."""

    family: ClassVar[str] = "catchup"
    ballot: Ballot
    slot: int
    offset: int
    total_bytes: int
    checksum: bytes
    data: bytes

    def describe(self) -> str:
        end = self.offset + len(self.data)
        return (
            f"SnapshotInstall(slot {self.slot}, bytes {self.offset}..{end} of {self.total_bytes})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StateQuery:
    """A node rebuilding a lost store asks a peer for its acceptor state."""

    family: ClassVar[str] = "rebuild"

    def describe(self) -> str:
        return "StateQuery()"


@dataclass(frozen=True, slots=True, kw_only=True)
class StateReport:
    """A peer's durable acceptor state: its promise, what it accepted above its snapshot, and
    the snapshot's slot. `whole` is False when the peer is rebuilding too (it then reports
    nothing it could vouch for)."""

    family: ClassVar[str] = "rebuild"
    whole: bool
    promised: Ballot | None
    accepted: tuple[tuple[int, Ballot, Batch], ...]
    snapshot_slot: int

    def describe(self) -> str:
        if not self.whole:
            return "StateReport(rebuilding)"
        return f"StateReport(promised {self.promised}, {len(self.accepted)} accepted)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stale:
    """The answer to a message of an earlier epoch (epochs.py): the epoch this node is in,
    its members and its first slot. A lagging member catches up to the slot before it and
    adopts it; a node that is not among its members learns that it was removed."""

    family: ClassVar[str] = "catchup"
    configuration: Configuration

    def describe(self) -> str:
        c = self.configuration
        return f"Stale(epoch {c.epoch} from slot {c.first_slot}: {c.describe()})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    family: ClassVar[str] = "forward"
    commands: Batch

    def describe(self) -> str:
        return f"Forward({len(self.commands)} cmds)"


Message = (
    Prepare | Promise | Accept | Accepted | Nack | Heartbeat | Commit | Ack | CatchUp | Entries
    | SnapshotInstall | Forward | ReadIndex | ReadIndexReply | PreVote | PreVoteReply
    | StateQuery | StateReport | TimeoutNow | Stale
)  # fmt: skip
