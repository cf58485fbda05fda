"""Limits and timers of the Multi-Paxos engine, in logical ticks, slots, commands and bytes."""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = {
    "correct": "Multi-Paxos as designed",
    "unconfirmed-reads": "the leader answers reads without confirming it still leads",
    "reply-before-fsync": "acceptors answer before their records are durable",
}


@dataclass(frozen=True, slots=True)
class EngineConfig:
    heartbeat_ticks: int = 3
    election_ticks_min: int = 15
    election_ticks_max: int = 30
    batch_commands_max: int = 2048
    batch_bytes_max: int = 1 << 20
    pipeline_slots_max: int = 64
    catchup_slots_max: int = 256
    catchup_timeout_ticks: int = 10
    retransmit_ticks: int = 6
    snapshot_every_slots: int = 1000
    read_through_log: bool = False
    variant: str = "correct"

    def __post_init__(self) -> None:
        assert 0 < self.heartbeat_ticks < self.election_ticks_min <= self.election_ticks_max
        assert self.batch_commands_max > 0 and self.batch_bytes_max > 0
        assert self.pipeline_slots_max > 0 and self.snapshot_every_slots > 0
        assert self.variant in VARIANTS, f"unknown engine variant {self.variant!r}"
