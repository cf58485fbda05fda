"""What a simulated run reached: the engine's mechanisms it exercised, and what it drew.

Theory of operation. A swarm that never takes a snapshot tests nothing behind one, however many
seeds it runs. So each run draws, from its own seed, limits small enough that every run
snapshots, installs snapshots in chunks, catches up in small steps and compacts its store
(`draw_limits`). It also draws which of the allowed faults strike (`draw_faults`, swarm
testing): a run with every fault at once is rarely healthy enough for a targeted fault to find
its moment (a stale leader needs peers that can elect another; a rebuild behind a snapshot
needs peers that snapshot), so runs with fewer faults reach deeper.

Each run counts what it exercised (`MECHANISMS`): from the engine's own notes
(`NOTE_MECHANISMS`), from the simulated disks, and from the clients and faults. `paxosd sim`
prints the totals and how many runs reached each, so a reader sees what a swarm covered, and a
test demands that the runs reached the ones that matter.
"""

from __future__ import annotations

import random
from dataclasses import replace

from paxosd.core.multi.config import EngineConfig
from paxosd.storage.framed import CompactionPolicy

MECHANISMS: dict[str, str] = {
    "elections_won": "a node won an election and led",
    "snapshots_taken": "a node snapshotted its state machine and truncated its log",
    "snapshots_installed": "a lagging node installed a peer's snapshot",
    "snapshot_chunks_sent": "snapshot chunks sent to lagging nodes",
    "store_compactions": "a store rewrote its file as its live state (superseded records dropped)",
    "restarts_from_snapshot": "a node restarted from its own snapshot",
    "catch_ups": "a node caught up on chosen slots from a peer",
    "rebuilds_started": "a node with a lost store restarted, rebuilding from every peer",
    "rebuilds_behind_a_snapshot": "a rebuild had to reach its peers' snapshot before voting",
    "rebuilds_finished": "a rebuilding node caught up and voted again",
    "transfers_told": "a leader handed over: its target caught up and was told to campaign",
    "transfer_campaigns": "... and the target campaigned at once, its Prepare marked handed over",
    "stale_read_windows": "a new leader was elected while the old one still believed it led",
    "reads_at_deposed_leader": "reads that reached a leader a newer leader had replaced",
    "reads_confirmed": "reads answered, each once a quorum confirmed its leader still led",
    "seq_reuses": "a client reused a sequence number for a different write",
    "seq_twins": "a client sent a second write under the seq of one still in flight",
    "seq_reuses_refused": "... and the reuse (or twin) was refused (exactly-once)",
    "mvcc_txns_answered": "multi-key transactions answered (judged by the mvcc checker)",
    "mvcc_nested_txns_answered": "... with a nested transaction on the branch that ran",
    "mvcc_past_reads_answered": "reads of a past revision answered (a listing's later pages too)",
    "mvcc_compacted_reads_refused": "reads of a past revision refused as compacted",
    "mvcc_ephemeral_keys_put": "keys put with a lease (deleted when it ends)",
    "mvcc_leases_renewed": "leases kept alive by their client",
    "mvcc_leases_ended_by_time": "a keep-alive found its lease ended by log time",
    "mvcc_leaderships": "a campaigner saw it led an election (and used its fencing token)",
    "sql_commits_applied": "interactive SQL transactions committed (sim/sql_workload.py)",
    "sql_commits_conflicted": "... refused at their commit: a table they read had changed",
    "sql_unique_refused": "SQL sign-ups refused by the UNIQUE username",
    "watches_created": "a watcher watched keys on a node (sim/watchers.py)",
    "watches_from_the_past": "... from a revision the node had passed: replayed from history",
    "watches_resumed": "a watcher watched again from the revision after the last one it had",
    "watch_connections_lost": "a watcher's node crashed or restarted under it",
    "watches_hopped": "a watcher left its node for another",
    "watches_cancelled_slow": "a watcher that read too slowly was cancelled by the hub",
    "watches_cancelled_compacted": "a watcher needed compacted history and was cancelled",
    "watches_relisted": "... and listed its keys again, then watched from the next revision",
    "epochs_adopted": "a node entered a new membership epoch (sim/membership.py)",
    "removals_learned": "... one in which it is no member: it stops campaigning",
    "stale_epochs_told": "a node of an earlier epoch was told of a later one (Stale)",
}

# Mechanisms only a workload outside the default set reaches (`paxosd sim --workloads`).
WORKLOAD_MECHANISMS: dict[str, tuple[str, ...]] = {
    "sql": ("sql_commits_applied", "sql_commits_conflicted", "sql_unique_refused"),
}


def mechanisms_for(workloads: tuple[str, ...]) -> list[str]:
    """The mechanisms a swarm running `workloads` can reach."""
    other = {m for w, ms in WORKLOAD_MECHANISMS.items() if w not in workloads for m in ms}
    return [name for name in MECHANISMS if name not in other]


# The engine's notes (core/multi), by the mechanism each one shows.
NOTE_MECHANISMS = {
    "leader_elected": "elections_won",
    "transfer_told": "transfers_told",
    "transfer_campaign": "transfer_campaigns",
    "snapshot_taken": "snapshots_taken",
    "snapshot_installed": "snapshots_installed",
    "catchup_started": "catch_ups",
    "rebuild_finished": "rebuilds_finished",
    "epoch_adopted": "epochs_adopted",
    "removed": "removals_learned",
    "epoch_behind": "stale_epochs_told",
}
# Notes that make a node's snapshot (at the note's `slot`) durable with the turn's sync.
SNAPSHOT_NOTES = frozenset({"snapshot_taken", "snapshot_installed"})

# Per-seed limits, drawn between these (runs reach a few hundred slots).
snapshot_every_slots_range = (8, 64)
catchup_slots_max_choices = (1, 2, 4, 16, 64)
catchup_bytes_max_choices = (256, 4096, 1 << 20)
snapshot_chunk_bytes_choices = (64, 512, 4096)
compaction_garbage_bytes_choices = (2_048, 8_192, 32_768)
fault_odds = 0.5  # each allowed fault strikes in a run with these odds


def draw_limits(
    config: EngineConfig, rng: random.Random, seed: int
) -> tuple[EngineConfig, CompactionPolicy]:
    """The engine's snapshot and catch-up limits and the stores' compaction policy for one
    run, drawn from its generator; the planted variant and timers stay as given."""
    drawn = replace(
        config,
        snapshot_every_slots=rng.randint(*snapshot_every_slots_range),
        catchup_slots_max=rng.choice(catchup_slots_max_choices),
        catchup_bytes_max=rng.choice(catchup_bytes_max_choices),
        snapshot_chunk_bytes=rng.choice(snapshot_chunk_bytes_choices),
    )
    # Half the runs keep no values behind a snapshot, so that peers behind one need it; the
    # others send kept values whenever they hold what a peer lacks (the simulator's states are
    # too small for the real cost rule to prefer them) or by that rule. From a generator of
    # their own, so that the run's other draws stay as they were.
    own = random.Random(f"{seed}/draw/retained")
    if own.random() < 0.5:
        drawn = replace(drawn, retained_bytes_max=0)
    else:
        drawn = replace(drawn, replay_cost=own.choice((0, 0, config.replay_cost)))
    policy = CompactionPolicy(
        garbage_ratio=rng.uniform(1.0, 2.0),
        garbage_bytes_min=rng.choice(compaction_garbage_bytes_choices),
    )
    return drawn, policy


def draw_faults(
    faults: frozenset[str], rng: random.Random, own: frozenset[str] = frozenset(), seed: int = 0
) -> frozenset[str]:
    """The faults one run uses: each allowed one with even odds (one of them if none was).
    The faults in `own` are drawn from a generator of their own (a function of `seed`), so
    that adding one changed no other fault's draw."""
    older = faults - own
    drawn = frozenset(fault for fault in sorted(older) if rng.random() < fault_odds)
    if older:
        drawn = drawn or frozenset(rng.sample(sorted(older), min(1, len(older))))
    for fault in sorted(faults & own):
        if random.Random(f"{seed}/draw/{fault}").random() < fault_odds:
            drawn |= {fault}
    return drawn or frozenset(faults & own)


def limits_summary(config: EngineConfig, policy: CompactionPolicy) -> dict[str, int]:
    """The drawn limits, as a run reports them."""
    return {
        "snapshot_every_slots": config.snapshot_every_slots,
        "catchup_slots_max": config.catchup_slots_max,
        "catchup_bytes_max": config.catchup_bytes_max,
        "snapshot_chunk_bytes": config.snapshot_chunk_bytes,
        "retained_bytes_max": config.retained_bytes_max,
        "replay_cost": config.replay_cost,
        "compaction_garbage_bytes_min": policy.garbage_bytes_min,
    }
