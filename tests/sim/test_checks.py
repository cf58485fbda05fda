"""The simulator's own checks can fail: each is shown a planted bug it must catch (a checker
that cannot fail proves nothing). The workload checkers (linearizability, locks, names,
decisions) have theirs in tests/check and in the planted variants of test_cluster.py."""

from __future__ import annotations

from typing import Any

import pytest

from paxosd.core.multi.records import Rebuilding, Record, Snapshot
from paxosd.sim import cluster as sim_cluster
from paxosd.sim.cluster import FAULTS, Cluster, check_answers, run
from paxosd.sim.disk import SimDisk
from paxosd.sim.engine_swarm import replay_command, spec_for, swarm


def test_an_answer_for_another_request_under_the_same_id_is_an_exactly_once_violation() -> None:
    cluster = Cluster(spec_for(3, frozenset(), "correct"), 1)
    cluster.first_applied[("c1", 5)] = b"first body"
    cluster.answered("c1", 5, b"first body")
    assert check_answers(cluster) == []
    cluster.answered("c1", 5, b"another body")
    cluster.answered("c2", 1, b"never applied")
    assert check_answers(cluster) == [
        "exactly-once: c1 seq 5 was answered as applied, but a different request was applied "
        "under that id",
        "exactly-once: c2 seq 1 was answered, but never applied",
    ]


class SlotlessDisk(SimDisk):
    """A store that keeps a snapshot without its slot (a planted bug)."""

    def write(self, records: Any) -> None:
        super().write([_slotless(record) for record in records])


def _slotless(record: Record) -> Record:
    return (
        Snapshot(0, record.size_bytes, record.checksum) if isinstance(record, Snapshot) else record
    )


def test_a_node_that_restarts_below_the_snapshot_it_made_durable_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slotless_disk(self: Cluster, node: int) -> SimDisk:
        self.incarnations[node] = self.draw_incarnation()  # as every new store has one
        return SlotlessDisk(sim_cluster.make_identity("sim", node), self.policy)

    monkeypatch.setattr(Cluster, "_new_disk", slotless_disk)
    spec = spec_for(3, frozenset({"crash"}), "correct")
    _, failing = swarm(spec, range(1, 11), jobs=1, stop_at_violation=True)
    assert failing, "a store that loses its snapshot's slot was not caught in 10 seeds"
    assert any(p.startswith("recovery: node") for p in failing[0].violations), failing[0]


def test_a_run_that_raises_is_a_failing_run_with_its_seed_and_replay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(spec: Any, seed: int) -> Any:
        raise AssertionError("an invariant failed")

    monkeypatch.setattr("paxosd.sim.engine_swarm.run", broken)
    spec = spec_for(3, frozenset(FAULTS), "correct")
    report, failing = swarm(spec, range(4, 6), jobs=1)
    assert [r.seed for r in failing] == [4, 5]
    violation = report.violations[0]
    assert violation["problems"][0].startswith("the run raised AssertionError: an invariant failed")
    assert violation["replay"] == replay_command(spec, 4)


def test_a_stale_leader_answering_reads_is_caught_by_the_stale_leader_fault() -> None:
    """The leader answers without confirming it still leads (the planted variant): a stale
    leader, paused or cut off, with a client reading at it the key it just wrote at the new
    leader, shows it."""
    spec = spec_for(3, frozenset({"stale-leader"}), "unconfirmed-reads")
    # Which seed shows it moves whenever the workload changes; that one of the first ten
    # does is what must hold (about half of them do).
    runs = ((seed, run(spec, seed)) for seed in range(1, 11))
    seed, result = next(((s, r) for s, r in runs if r.violations), (0, None))
    assert result is not None, f"not caught by seeds 1-10; replay: {replay_command(spec, 1)}"
    assert result.mechanisms.get("stale_read_windows"), result.mechanisms
    assert run(spec_for(3, frozenset({"stale-leader"}), "correct"), seed).ok, seed


def test_a_store_is_rebuilding_until_the_end_of_its_rebuild_is_synced() -> None:
    """What a restart would find: the fault model loses at most one store at a time (two
    rebuilding nodes wait for each other forever, an operator's case), so it must see a node
    whose rebuild ended in memory, but not yet on disk, as rebuilding still."""
    disk = SimDisk(sim_cluster.make_identity("sim", 1), None)
    assert not disk.rebuilding_durable
    disk.write([Rebuilding(True)])
    assert not disk.rebuilding_durable  # written, not synced: a crash would lose it
    disk.sync()
    assert disk.rebuilding_durable
    disk.write([Rebuilding(False)])
    assert disk.rebuilding_durable
    disk.crash()
    assert disk.rebuilding_durable  # the end of the rebuild was lost with the crash
    disk.write([Rebuilding(False)])
    disk.sync()
    assert not disk.rebuilding_durable
