"""The Multi-Paxos engine in the simulator: safe under every fault, live once faults stop, and
the planted bugs are caught. Failures print the seed and the command that replays them."""

from __future__ import annotations

import pytest

from paxosd.sim.cluster import FAULTS, run
from paxosd.sim.engine_swarm import replay_command, spec_for, swarm

ALL = frozenset(FAULTS)


@pytest.mark.parametrize(("nodes", "seeds"), [(3, range(1, 25)), (5, range(1, 9))])
def test_no_violation_under_every_fault(nodes: int, seeds: range) -> None:
    spec = spec_for(nodes, ALL, "correct")
    report, failing = swarm(spec, seeds, jobs=1)
    assert not failing, "\n".join(
        f"seed {r.seed}: {r.violations[:2]}\n  replay: {replay_command(spec, r.seed)}"
        for r in failing
    )
    assert report.operations["ok"] > 100 * len(seeds)
    assert {"crash", "restart", "partition", "disk_loss", "clock_skew"} <= set(report.faults)


def test_the_same_seed_gives_the_same_history() -> None:
    spec = spec_for(3, ALL, "correct")
    first, second = run(spec, 7), run(spec, 7)
    assert [e.to_json() for e in first.history] == [e.to_json() for e in second.history]
    assert first.faults == second.faults


PLANTED = ("unconfirmed-reads", "reply-before-fsync", "amnesia", "wall-clock-leases")


@pytest.mark.parametrize(
    ("variant", "seed"),
    [
        ("unconfirmed-reads", 1),
        ("reply-before-fsync", 1),
        ("amnesia", 2),
        ("wall-clock-leases", 3),
    ],
)
def test_a_known_failing_seed_of_each_planted_bug_is_still_caught(variant: str, seed: int) -> None:
    """Seeds that once exposed a planted bug stay in the suite."""
    spec = spec_for(3, ALL, variant)
    result = run(spec, seed)
    assert result.violations, f"not caught; replay: {replay_command(spec, seed)}"


@pytest.mark.parametrize("variant", PLANTED)
def test_each_planted_bug_is_caught_within_the_default_budget(variant: str) -> None:
    spec = spec_for(3, ALL, variant)
    _, failing = swarm(spec, range(1, 101), jobs=2, stop_at_violation=True)
    assert failing, f"{variant} survived 100 seeds"


def test_the_correct_engine_survives_the_seeds_that_catch_the_bugs() -> None:
    spec = spec_for(3, ALL, "correct")
    for seed in (1, 2, 3):
        assert run(spec, seed).ok, replay_command(spec, seed)
