"""Messages of the Multi-Paxos engine, named as in the papers.

Phase 1 runs once per leadership for every slot from `from_slot` on: Prepare / Promise (with
everything the acceptor accepted from that slot on) or Nack. Phase 2 runs per batch: Accept /
Accepted, or Nack. The leader's Heartbeat carries the commit point; an Ack answers it and, for
linearizable reads, confirms the leader still leads (`read_round`). A node that lacks chosen
values asks with CatchUp and gets Entries, or a SnapshotInstall when the leader has truncated
the slots it needs. A follower forwards client commands to the leader with Forward.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxosd.core.multi.records import Batch
from paxosd.core.types import Ballot


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepare:
    ballot: Ballot
    from_slot: int

    def describe(self) -> str:
        return f"Prepare({self.ballot}, from {self.from_slot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Promise:
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
    ballot: Ballot
    slot: int
    batch: Batch
    commit: int

    def describe(self) -> str:
        return f"Accept({self.ballot}, slot {self.slot}, {len(self.batch)} cmds)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    ballot: Ballot
    slot: int

    def describe(self) -> str:
        return f"Accepted({self.ballot}, slot {self.slot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Nack:
    ballot: Ballot
    promised: Ballot

    def describe(self) -> str:
        return f"Nack({self.ballot}, promised {self.promised})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    ballot: Ballot
    commit: int
    read_round: int

    def describe(self) -> str:
        return f"Heartbeat({self.ballot}, commit {self.commit})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """The chosen point moved and no Accept is going out to say so: tell the followers now,
    so that they apply (and answer their clients) without waiting for the next heartbeat."""

    ballot: Ballot
    commit: int

    def describe(self) -> str:
        return f"Commit({self.ballot}, {self.commit})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    ballot: Ballot
    read_round: int
    applied: int

    def describe(self) -> str:
        return f"Ack({self.ballot}, round {self.read_round})"


@dataclass(frozen=True, slots=True, kw_only=True)
class CatchUp:
    from_slot: int

    def describe(self) -> str:
        return f"CatchUp(from {self.from_slot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Entries:
    ballot: Ballot
    entries: tuple[tuple[int, Batch], ...]  # chosen values, in slot order
    commit: int

    def describe(self) -> str:
        return f"Entries({len(self.entries)} slots, commit {self.commit})"


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotInstall:
    ballot: Ballot
    slot: int
    data: bytes

    def describe(self) -> str:
        return f"SnapshotInstall(slot {self.slot})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    commands: Batch

    def describe(self) -> str:
        return f"Forward({len(self.commands)} cmds)"


Message = (
    Prepare | Promise | Accept | Accepted | Nack | Heartbeat | Commit | Ack | CatchUp | Entries
    | SnapshotInstall | Forward
)  # fmt: skip
