"""The key-value store's multi-key workload in the simulator: ranges, listings page by page,
reads in the past, transactions and compactions, judged by paxosd.check.mvcc against the
reference model. Each planted bug of the store is caught by that checker; the correct store
passes the same seeds; and the workload reaches what it is meant to."""

from __future__ import annotations

from collections import Counter

import pytest

from paxosd.sim.cluster import FAULTS, run
from paxosd.sim.engine_swarm import replay_command, spec_for, swarm

ALL = frozenset(FAULTS)
PLANTED = ("txn-stale-compare", "range-page-drop", "compaction-frees-readable")


@pytest.mark.parametrize(("variant", "seed"), [(name, 1) for name in PLANTED])
def test_a_known_failing_seed_of_each_planted_store_bug_is_caught_by_the_mvcc_checker(
    variant: str, seed: int
) -> None:
    spec = spec_for(3, ALL, variant)
    result = run(spec, seed)
    caught = [problem for problem in result.violations if problem.startswith("mvcc")]
    assert caught, f"not caught; replay: {replay_command(spec, seed)}"


@pytest.mark.parametrize("variant", PLANTED)
def test_each_planted_store_bug_is_caught_within_ten_seeds(variant: str) -> None:
    spec = spec_for(3, ALL, variant)
    _, failing = swarm(spec, range(1, 11), jobs=1, stop_at_violation=True)
    assert failing, f"{variant} survived 10 seeds"


def test_the_correct_store_passes_and_the_workload_reaches_what_it_should() -> None:
    """Every kind of operation answered, and reads in the past both answered and refused as
    compacted (by clients' compactions and the leader's own)."""
    spec = spec_for(3, ALL, "correct")
    _, failing = swarm(spec, range(1, 9), jobs=1)
    assert not failing, [(r.seed, r.violations[:2]) for r in failing]
    outcomes: Counter[tuple[str, str]] = Counter()
    for seed in (1, 2):
        result = run(spec, seed)
        assert result.ok, replay_command(spec, seed)
        for event in result.history:
            if event.f.startswith("mvcc-") and event.type.value != "invoke":
                outcomes[(event.f, event.type.value)] += 1
    for kind in ("put", "delete", "range", "page", "past", "txn", "compact"):
        assert outcomes[(f"mvcc-{kind}", "ok")] > 0, outcomes
    assert outcomes[("mvcc-past", "fail")] > 0, outcomes  # refused: compacted
