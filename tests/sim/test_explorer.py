"""The explorer's verdicts on the book's algorithms, with state counts pinned.

A pinned count changes only if the algorithms or the explorer change; when that is intended,
update the number here and say why in the commit."""

from __future__ import annotations

import pytest

from paxosd.lab.algorithms import get
from paxosd.lab.check import CheckRequest, explore_budget, run_check
from paxosd.lab.flp import valences
from paxosd.lab.values import values
from paxosd.sim.explorer import Control, Exploration, Explorer, ExState
from paxosd.sim.search import Store, search
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


# -- the coach's search: remembered, time-boxed, with symmetry -------------------------------


def explorer_for(algorithm: str, nodes: int = 3, count: int = 2, **options: object) -> Explorer:
    request = CheckRequest(get(algorithm), explore=True, nodes=nodes, values=count, **options)  # type: ignore[arg-type]
    budget, config = explore_budget(request)
    return Explorer(get(algorithm).factory, budget, config, values(count))


def after(explorer: Explorer, *steps: str) -> ExState:
    """The state after the steps whose text starts with these words, in order."""
    state = explorer.initial()
    for words in steps:
        state = next(s for step, s in explorer.successors(state) if step.render().startswith(words))
    return state


def outcome(result: Exploration, masks: list[int]) -> tuple[object, ...]:
    return (
        {p: v.status for p, v in result.verdicts.items()},
        {p: len(steps) for p, steps in result.counterexamples.items()},
        masks[0],
        result.complete,
    )


@pytest.mark.parametrize(
    ("algorithm", "options"),
    [
        ("leader", {}),
        ("majority", {}),
        ("failover", {"crashes": 0, "faults": frozenset({"partition"})}),
        ("paxos", {"crashes": 0, "faults": frozenset(), "variant": "ignore-promised-values"}),
    ],
)
def test_the_remembering_search_finds_what_the_exhaustive_explorer_finds(
    algorithm: str, options: dict[str, object]
) -> None:
    """From the initial state, `sim.search` without symmetry visits the same states in the
    same order as `Explorer.explore`: the same count and verdicts where the exhaustive search
    completes, the same shortest counterexample where it stops at the first violation."""
    explorer = explorer_for(algorithm, **options)
    unsafe = frozenset({"agreement", "validity"})
    exhaustive = explorer.explore(livelock=False, stop_on=unsafe)
    store = Store(explorer_for(algorithm, **options))
    found = search(store, store.explorer.initial(), states_max=len(exhaustive.graph) + 1)
    if exhaustive.complete:
        assert found.exploration.complete and len(found.graph) == len(exhaustive.graph)
        assert {p: v.status for p, v in found.exploration.verdicts.items()} == {
            p: v.status for p, v in exhaustive.verdicts.items()
        }
    else:
        assert exhaustive.stopped == "violation"
    assert exhaustive.counterexamples, "each of these configurations breaks something"
    for prop, steps in exhaustive.counterexamples.items():
        shown = found.exploration.counterexamples[prop]
        assert [s.render() for s in shown] == [s.render() for s in steps]


def test_asking_again_walks_what_was_remembered() -> None:
    explorer = explorer_for("majority")
    store = Store(explorer)
    first = search(store, explorer.initial())
    assert first.exploration.complete and first.new_states == len(first.graph)
    later = after(explorer, "client at 1", "client at 2")
    again = search(store, later)
    assert again.exploration.complete and again.new_states == 0, "all of it was met before"
    assert [s.render() for s in again.exploration.counterexamples["termination"]] == [
        "1 crashes"  # split vote already: the shortest way to get stuck is one crash
    ] or len(again.exploration.counterexamples["termination"]) == 1


@pytest.mark.parametrize(
    ("algorithm", "nodes", "count", "steps", "options"),
    [
        ("majority", 3, 2, ("client at 1",), {"faults": frozenset({"crash"})}),
        ("majority", 3, 1, (), {"faults": frozenset({"crash"})}),
        ("paxos", 3, 1, (), {"faults": frozenset({"crash"})}),
        ("paxos", 3, 1, ("client at 1",), {"faults": frozenset({"crash", "restart"})}),
        ("paxos", 4, 1, ("client at 1",), {"faults": frozenset(), "crashes": 0}),
        ("paxos", 3, 1, (), {"faults": frozenset({"restart"}), "variant": "forget-promise"}),
    ],
)
def test_symmetry_loses_nothing_against_the_unreduced_search(
    algorithm: str,
    nodes: int,
    count: int,
    steps: tuple[str, ...],
    options: dict[str, object],
) -> None:
    """Interchangeable nodes (those that never propose) and, for majority voting, proposers
    swapped together with their values: the reduced search keeps fewer states and finds the
    same verdicts, the same shortest counterexample lengths and the same valence. (How many
    fewer depends on which renaming each state's key happens to hash lowest under, which
    varies between processes, so the reduced count is not pinned.)"""
    results = []
    for symmetric in (False, True):
        explorer = explorer_for(algorithm, nodes, count, **options)
        proposers = [explorer.proposer_of(i) for i in range(count)]
        variant = str(options.get("variant", "correct"))
        symmetry = get(algorithm).symmetry(variant, nodes, values(count), proposers)
        assert symmetry is not None
        result = search(Store(explorer, symmetry if symmetric else None), after(explorer, *steps))
        masks = valences(result.graph, values(count), result.edge_maps, result.value_maps)
        results.append((outcome(result.exploration, masks), len(result.graph)))
    (plain, everything), (reduced_outcome, kept) = results
    assert reduced_outcome == plain
    assert kept < everything


def test_a_search_cut_short_claims_nothing_beyond_the_depth_it_checked() -> None:
    """ignore-promised-values breaks Agreement in 8 steps from here. Cut off before that
    depth, the search says "unknown" with the depth it did check; given room, it finds the
    same 8-step run as the exhaustive explorer."""
    explorer = explorer_for(
        "paxos", crashes=0, faults=frozenset(), variant="ignore-promised-values"
    )
    start = after(explorer, "client at 1", "client at 2")
    short = search(Store(explorer), start, states_max=300).exploration
    assert short.stopped == "state limit" and short.depth_checked < 8
    assert short.verdicts["agreement"].status == "unknown"
    assert f"every run of up to {short.depth_checked} steps" in short.verdicts["agreement"].detail
    assert "termination" not in short.counterexamples
    full = search(Store(explorer), start).exploration
    assert full.verdicts["agreement"].status == "violated"
    assert len(full.counterexamples["agreement"]) == 8


def test_a_deadline_or_a_cancel_stops_the_search_at_once() -> None:
    import threading
    import time

    explorer = explorer_for("paxos", faults=frozenset({"crash"}))
    began = time.monotonic()
    timed = search(Store(explorer), explorer.initial(), Control(deadline=began + 0.5))
    assert timed.exploration.stopped == "time limit" and time.monotonic() - began < 5
    cancel = threading.Event()
    cancel.set()
    stopped = search(Store(explorer), explorer.initial(), Control(cancel=cancel))
    assert stopped.exploration.stopped == "cancelled" and len(stopped.graph) == 1
    assert stopped.exploration.verdicts["agreement"].status == "unknown"
