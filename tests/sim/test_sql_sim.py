"""The SQL database in the simulator: bank transfers as interactive transactions, unique
sign-ups and writes of randomness and the clock, under every fault, judged by
paxosd.check.sql (replicas agree; the bank keeps its money; committed transactions are
serializable; a username is given once; reads are linearizable). Each planted bug of the SQL
database is caught within the first seeds; the correct database passes the same seeds."""

from __future__ import annotations

import pytest

from paxosd.sim.cluster import FAULTS, run
from paxosd.sim.engine_swarm import replay_command, spec_for, swarm

ALL = frozenset(FAULTS)
SQL_ONLY = ("sql",)


@pytest.mark.parametrize(("nodes", "seeds"), [(3, range(1, 5)), (5, range(1, 3))])
def test_the_correct_database_passes_under_every_fault(nodes: int, seeds: range) -> None:
    spec = spec_for(nodes, ALL, "correct", workloads=SQL_ONLY)
    report, failing = swarm(spec, seeds, jobs=1)
    assert not failing, "\n".join(
        f"{r.violations[:3]} replay: {replay_command(spec, r.seed)}" for r in failing
    )
    reached = report.to_json()["mechanisms"]
    for mechanism in ("sql_commits_applied", "sql_commits_conflicted", "sql_unique_refused"):
        assert mechanism in reached, f"the workload never reached {mechanism}"


def test_the_sql_workload_beside_the_others_passes() -> None:
    spec = spec_for(3, ALL, "correct", workloads=("kv", "locks", "mvcc", "sql"))
    result = run(spec, 1)
    assert result.ok, f"{result.violations[:3]} replay: {replay_command(spec, 1)}"


@pytest.mark.parametrize(
    ("variant", "symptom"),
    [
        ("sql-random-unrewritten", "replicas diverge"),
        ("sql-commit-unchecked", "not serializable"),
    ],
)
def test_each_planted_sql_bug_is_caught_within_five_seeds(variant: str, symptom: str) -> None:
    spec = spec_for(3, ALL, variant)
    assert "sql" in spec.workloads  # a planted SQL bug brings its workload
    _, failing = swarm(spec, range(1, 6), jobs=1, stop_at_violation=True)
    assert failing, f"{variant} survived 5 seeds"
    found = [v for r in failing for v in r.violations if symptom in v]
    assert found, f"{variant} caught, but not as {symptom!r}: {failing[0].violations[:3]}"


@pytest.mark.parametrize("seed", [141, 16])
def test_a_leader_catching_up_a_snapshot_of_many_chunks_finishes(seed: int) -> None:
    """Seeds that once stalled for good at 5 nodes, a new leader behind its peers' snapshots
    (the SQL database's image makes them 25 KB, 50 chunks of the run's 512 bytes). 141: it
    asked two peers whose snapshots differed (slots 82 and 83) and each answer restarted the
    other's transfer; a chunk is now taken only from the peer asked last. 16: two peers'
    snapshots of one slot differed in bytes (the database header's change counter), so the
    chunks did not make one snapshot and the transfer asked for the same chunk forever; the
    header's counters are now written as zeros, and a chunk of another snapshot starts the
    transfer over."""
    spec = spec_for(5, ALL, "correct", workloads=SQL_ONLY)
    result = run(spec, seed)
    assert result.ok, f"{result.violations[:3]} replay: {replay_command(spec, seed)}"


def test_list_append_through_interactive_transactions_passes() -> None:
    spec = spec_for(3, ALL, "correct", workloads=("sql-append",))
    _, failing = swarm(spec, range(1, 4), jobs=1)
    assert not failing, "\n".join(
        f"{r.violations[:3]} replay: {replay_command(spec, r.seed)}" for r in failing
    )


def test_list_append_shows_a_commit_that_skips_its_check_as_lists_written_over() -> None:
    """The list checker on its own (beside the commit's log-order check): a commit on a stale
    read writes over another's append, so some read or committed list is no prefix of the
    final list."""
    spec = spec_for(3, ALL, "sql-commit-unchecked", workloads=("sql-append",))
    _, failing = swarm(spec, range(1, 6), jobs=1, stop_at_violation=True)
    found = [v for r in failing for v in r.violations if "final value" in v]
    assert found, f"not caught by the list checker within 5 seeds: {failing[:1]}"
