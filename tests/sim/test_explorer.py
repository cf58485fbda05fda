"""The explorer's verdicts on the book's algorithms, with state counts pinned.

A pinned count changes only if the algorithms or the explorer change; when that is intended,
update the number here and say why in the commit."""

from __future__ import annotations

import pytest

from paxosd.lab.algorithms import get
from paxosd.lab.check import CheckRequest, explore_budget, run_check
from paxosd.lab.values import values
from paxosd.sim.explorer import Explorer
from paxosd.sim.spec import PaxosSpec

ALL_PAXOS_FAULTS = frozenset({"restart", "loss", "duplicate", "reorder"})


def explore(algorithm: str, **options: object) -> object:
    return run_check(CheckRequest(get(algorithm), explore=True, **options))  # type: ignore


def test_lamports_spec_has_the_same_3921_states_as_tlc_finds() -> None:
    """Paxos.tla with 3 acceptors, 2 values, ballots 0..1: TLC reports 3,921 distinct states
    (depth 17). Our acceptor and value rule, under the spec's abstraction, must agree."""
    result = PaxosSpec(acceptors=3, values=("v1", "v2"), ballots=2).explore()
    assert result.distinct_states == 3921
    assert result.depth == 17
    assert result.agreement_holds and result.chosen_values == {"v1", "v2"}


def test_the_fixed_leader_cannot_survive_one_crash() -> None:
    report = explore("leader", crashes=1)
    assert report.verdicts["termination"].status == "violated"
    assert report.verdicts["agreement"].status == "holds"
    assert report.states_explored == 388
    steps = report.counterexamples["termination"]["trace"]
    assert [s["kind"] for s in steps] == ["crash"] and steps[0]["node"] == 1


def test_majority_is_safe_but_one_crash_can_leave_it_stuck() -> None:
    report = explore("majority", crashes=1)
    assert report.verdicts["agreement"].status == "holds"
    assert report.verdicts["validity"].status == "holds"
    assert report.verdicts["termination"].status == "violated"
    assert report.states_explored == 13066
    kinds = [s["kind"] for s in report.counterexamples["termination"]["trace"]]
    assert kinds == ["propose", "propose", "crash"], "split vote, then the third voter crashes"


def test_failover_is_fine_without_faults_and_splits_its_brain_in_a_partition() -> None:
    calm = explore("failover", crashes=0, faults=frozenset())
    assert calm.verdicts["agreement"].status == "holds"
    # Stopping at the first violation, as the CLI does by default (48,592 states in all).
    report = explore("failover", crashes=0, faults=frozenset({"partition"}), keep_going=False)
    assert report.verdicts["agreement"].status == "violated"
    assert report.states_explored == 1656 and report.stopped == "violation"
    kinds = [s["kind"] for s in report.counterexamples["agreement"]["trace"]]
    assert "partition" in kinds and len(kinds) == 7


def test_paxos_is_safe_under_loss_duplication_and_reordering() -> None:
    """The fast version of the next test: every reachable state without crashes, under
    Lamport's growing-set network (loss, duplication and reordering at once)."""
    request = CheckRequest(get("paxos"), explore=True, crashes=0,
                           faults=frozenset({"loss", "duplicate", "reorder"}))  # fmt: skip
    budget, config = explore_budget(request)
    result = Explorer(get("paxos").factory, budget, config, values(2)).explore(livelock=False)
    assert result.complete and len(result.graph) == 21701
    assert result.verdicts["agreement"].status == "holds"
    assert result.verdicts["validity"].status == "holds"


@pytest.mark.slow
def test_paxos_is_safe_under_crash_restart_loss_duplication_and_reordering() -> None:
    """Every reachable state, 3 nodes, 2 values, one ballot per proposer (2 ballots), and the
    livelock search. Minutes on a shared machine: marked slow."""
    report = explore("paxos", crashes=1, faults=ALL_PAXOS_FAULTS)
    assert report.verdicts["agreement"].status == "holds"
    assert report.verdicts["validity"].status == "holds"
    assert report.states_explored == 212729
    # Termination is possible from every state, but not guaranteed: a livelock exists.
    assert report.verdicts["termination"].status == "violated"
    assert "livelock" in report.verdicts["termination"].detail


@pytest.mark.parametrize(
    ("variant", "faults", "steps_max"),
    [
        ("forget-promise", ALL_PAXOS_FAULTS, 12),
        ("ignore-promised-values", frozenset(), 10),
    ],
)
def test_each_planted_paxos_bug_is_caught_with_a_short_counterexample(
    variant: str, faults: frozenset[str], steps_max: int
) -> None:
    request = CheckRequest(get("paxos"), explore=True, faults=faults, variant=variant)
    budget, config = explore_budget(request)
    explorer = Explorer(get("paxos").factory, budget, config, values(2))
    result = explorer.explore(stop_on=frozenset({"agreement"}))
    assert result.verdicts["agreement"].status == "violated"
    steps = result.counterexamples["agreement"]
    assert len(steps) <= steps_max
    if variant == "forget-promise":
        assert any(s.kind == "restart" for s in steps), "the bug needs a restart to show"


def test_the_forget_promise_bug_is_harmless_without_restarts() -> None:
    """Without restarts the forgotten promise is never forgotten: Paxos stays safe. This is
    why the explorer must model crash-restart, not only crash-stop."""
    request = CheckRequest(get("paxos"), explore=True, faults=frozenset(), crashes=0,
                           variant="forget-promise")  # fmt: skip
    budget, config = explore_budget(request)
    result = Explorer(get("paxos").factory, budget, config, values(2)).explore(
        stop_on=frozenset({"agreement"}), livelock=False
    )
    assert result.complete
    assert result.verdicts["agreement"].status == "holds"
