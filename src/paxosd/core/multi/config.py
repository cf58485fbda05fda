"""Limits and timers of the Multi-Paxos engine, in logical ticks, slots, commands and bytes.

Every queue and buffer of the engine is bounded here, with the unit last in its name. Past a
bound a proposal is refused (`Proposal.QUEUE_FULL`) rather than held: the client is told at
once and may retry, where an unbounded queue would only turn overload into memory exhaustion.
"""

from __future__ import annotations

from dataclasses import dataclass

# Planted bugs of the engine core (the driver's own are in runtime/variants.py).
CORE_VARIANTS = {
    "correct": "Multi-Paxos as designed",
    "unconfirmed-reads": "the leader answers reads without confirming it still leads",
    "members-unchecked": "a replica runs with the members it is given, not its store's",
    "past-stop": "a leader goes on proposing after its membership change, above the stop",
    "accepted-config": "a follower uses a new configuration as soon as it accepts the change, "
    "before it is chosen",
}


@dataclass(frozen=True, slots=True)
class EngineConfig:
    heartbeat_ticks: int = 3
    election_ticks_min: int = 15
    election_ticks_max: int = 30
    batch_commands_max: int = 2048
    batch_bytes_max: int = 1 << 20
    pipeline_slots_max: int = 64
    # Commands waiting at the leader for a slot, or at a follower for the next Forward.
    queue_commands_max: int = 100_000
    queue_bytes_max: int = 64 << 20
    # One Forward message carries at most this many bytes of commands (more go in the next).
    forward_bytes_max: int = 4 << 20
    catchup_slots_max: int = 256
    catchup_bytes_max: int = 8 << 20
    catchup_timeout_ticks: int = 10
    retransmit_ticks: int = 6
    snapshot_every_slots: int = 1000
    # After a snapshot, the values it covers since the one before are kept in memory for
    # peers catching up (learner.py, `retained`), unless they hold more bytes of commands
    # than this; 0 keeps none (every peer behind the snapshot is sent the snapshot).
    retained_bytes_max: int = 64 << 20
    # ... and sent to a peer only when that many times their bytes is at most the snapshot's:
    # applying a command costs about 8 times what restoring its share of a snapshot does
    # (10^6 single-key puts: about 10 s to apply, 1.2 s of CPU to restore their 40 MB
    # snapshot). 0 sends them whenever they hold what the peer lacks.
    replay_cost: int = 8
    # Snapshots travel in chunks of this size (read from the sender's snapshot file, staged
    # into a file by the receiver: neither holds a whole snapshot in memory). A peer's
    # snapshot larger than the max is refused: a sanity bound on what a peer may make this
    # node write to its disk, far above the states paxosd is meant for (docs/storage.md).
    snapshot_chunk_bytes: int = 1 << 20
    snapshot_bytes_max: int = 64 << 30
    # The leader's Accepts leave while its own fsync runs (they reveal no unsynced vote: see
    # replica.py, "Durability"); False makes them wait for the sync like every other message.
    early_accepts: bool = True
    # The leader promotes a learner to voter by itself once it is caught up (epochs.py);
    # False leaves learners to the operator (`paxosd member promote`).
    auto_promote: bool = True
    variant: str = "correct"

    def __post_init__(self) -> None:
        assert 0 < self.heartbeat_ticks < self.election_ticks_min <= self.election_ticks_max
        assert self.batch_commands_max > 0 and self.batch_bytes_max > 0
        assert self.pipeline_slots_max > 0 and self.snapshot_every_slots > 0
        assert self.queue_commands_max > 0 and self.queue_bytes_max >= self.batch_bytes_max
        assert self.forward_bytes_max >= self.batch_bytes_max
        assert 0 < self.snapshot_chunk_bytes <= self.snapshot_bytes_max
        assert self.catchup_slots_max > 0 and self.catchup_bytes_max > 0
        assert self.retained_bytes_max >= 0 and self.replay_cost >= 0
        assert self.variant in CORE_VARIANTS, f"unknown engine variant {self.variant!r}"
