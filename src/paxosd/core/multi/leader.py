"""What a Multi-Paxos replica holds only while it campaigns or leads.

Theory of operation. A node is a follower unless one of these objects exists: a `Campaign`
while it runs phase 1 (Prepare / Promise) for a ballot, a `Leadership` once a quorum promised
it. Each is created when its role begins and dropped when it ends, so no field of a role
outlives the role and none needs an "am I the leader?" guard: code that runs only while
leading takes a `Leadership`, whose ballot is never missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.messages import Promise
from paxosd.core.multi.queue import CommandQueue
from paxosd.core.multi.read_index import ReadIndex
from paxosd.core.multi.records import Batch
from paxosd.core.types import Ballot, NodeId


@dataclass(slots=True)
class PreVote:
    """Asking first whether a quorum would follow this node, before raising its promise."""

    ballot: Ballot
    granted: set[NodeId]


@dataclass(slots=True)
class Campaign:
    """Phase 1 for `ballot`: the promises gathered so far (this node's own included)."""

    ballot: Ballot
    promises: dict[NodeId, Promise]


@dataclass(slots=True)
class Inflight:
    """A slot this leader proposed and has not seen chosen yet."""

    batch: Batch
    acks: set[NodeId]
    age_ticks: int = 0


@dataclass(slots=True)
class Leadership:
    """This node leads in `ballot`: phase 2 for each batch, heartbeats, read confirmation."""

    ballot: Ballot
    next_slot: int
    read_index: ReadIndex
    queue: CommandQueue  # client commands waiting for a slot
    # Voting peer -> ticks since its last reply: a leader that hears from no quorum steps down.
    heard: dict[NodeId, int]
    # Reads wait until every slot a predecessor may have chosen (up to here) is chosen again.
    recovered_upto: int = 0
    inflight: dict[int, Inflight] = field(default_factory=dict)
    heartbeat_ticks_left: int = 0
    commit_sent: int = 0  # the chosen point followers were last told of
    # Voting peer -> the applied slot its last Ack reported (how far it is, for a handover).
    applied: dict[NodeId, int] = field(default_factory=dict)
    # A handover in progress (transfer.py): while it lasts, no new batch is proposed.
    transfer: Transfer | None = None
    # A membership change asked for and not proposed yet: it waits for the pipeline to
    # drain (epochs.py); meanwhile no new batch is proposed.
    change: Configuration | None = None
    # The slot of this epoch's stop, once this leader proposed (or found and re-proposed) a
    # change there: it proposes nothing above it (docs/engine.md, "The brick wall").
    stop: int | None = None

    @property
    def holding(self) -> bool:
        """Whether client commands wait in the queue instead of forming batches: during a
        handover, a membership change, and after this epoch's stop."""
        return self.transfer is not None or self.change is not None or self.stop is not None


@dataclass(slots=True)
class Transfer:
    """Leadership being handed to `target`: once nothing is in flight and `target` has
    applied everything chosen, it is told to campaign (`told`); after `ticks_left` ticks the
    handover is abandoned and the leader goes on."""

    target: NodeId
    ticks_left: int
    told: bool = False
