"""Leases in the simulator: the mvcc workload grants leases, puts ephemeral keys with them,
keeps some alive and lets others end by log time, and campaigns in an election on etcd's
recipe, under every fault (clock skew and jumps included); the mvcc checker's reference ends
leases where the log's time passes them, so a key that outlives its lease, or vanishes
before it ends, is a mismatch; every leadership a client saw is a grant of the lock
"election" whose token the locks checker holds to growing in real time, used at a fenced
resource. Each planted lease bug is caught within the first seeds; the correct store passes
them at 3 and 5 nodes."""

from __future__ import annotations

import pytest

from paxosd.sim.cluster import FAULTS, run
from paxosd.sim.engine_swarm import replay_command, spec_for, swarm

ALL = frozenset(FAULTS)
PLANTED = ("lease-follower-clock", "lease-reset-on-leader-change", "lease-revoke-leaves-key")


@pytest.mark.parametrize("variant", PLANTED)
def test_each_planted_lease_bug_is_caught_by_the_mvcc_checker_within_ten_seeds(
    variant: str,
) -> None:
    spec = spec_for(3, ALL, variant)
    for seed in range(1, 11):
        result = run(spec, seed)
        if any(problem.startswith("mvcc") for problem in result.violations):
            return
    pytest.fail(f"{variant} survived seeds 1-10; replay: {replay_command(spec, 1)}")


@pytest.mark.parametrize("nodes", [3, 5])
def test_the_correct_store_keeps_every_lease_and_ends_it_on_time(nodes: int) -> None:
    spec = spec_for(nodes, ALL, "correct")
    report, failing = swarm(spec, range(1, 9), jobs=1)
    assert not failing, [(r.seed, r.violations[:2], replay_command(spec, r.seed)) for r in failing]
    for mechanism in (
        "mvcc_ephemeral_keys_put",
        "mvcc_leases_renewed",
        "mvcc_leases_ended_by_time",
    ):
        assert report.reached(mechanism) > 0, mechanism
