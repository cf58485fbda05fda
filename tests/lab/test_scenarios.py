"""The book's scenarios, with golden transcripts.

Each scenario's run at seed 1 is compared line by line with tests/lab/golden/NAME.txt. When a
change to an algorithm or the simulator alters a transcript on purpose, regenerate them with
`PAXOSD_REWRITE_GOLDEN=1 pytest tests/lab/test_scenarios.py` and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paxosd.lab import scenarios
from paxosd.sim.trace import render

GOLDEN = Path(__file__).parent / "golden"


def transcript(result: scenarios.ScenarioResult) -> str:
    lines = [f"# {result.title}"]
    lines += [f"t={e['t']:>9.3f}  {render(e)}" for e in result.trace if e["ev"] != "send"]
    lines += [f"# {p}: {v.status} {v.detail}".rstrip() for p, v in result.verdicts.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_scenario_matches_its_golden_transcript(name: str) -> None:
    result = scenarios.SCENARIOS[name][0](1)
    path = GOLDEN / f"{name}.txt"
    text = transcript(result)
    if os.environ.get("PAXOSD_REWRITE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden transcript; run with PAXOSD_REWRITE_GOLDEN=1 ({path})"
    assert text == path.read_text(), f"{name} changed; replay: paxosd lab scenario {name}"


def test_leader_crash_leaves_everyone_undecided() -> None:
    result = scenarios.leader_crash(1)
    assert result.verdicts["termination"].status == "violated"


def test_split_brain_breaks_agreement() -> None:
    result = scenarios.split_brain(1)
    assert result.verdicts["agreement"].status == "violated"


def test_split_vote_is_three_to_three_and_stuck() -> None:
    result = scenarios.split_vote(1)
    assert result.facts["votes"] == {"blue": [2, 5, 6], "red": [1, 3, 4]}
    assert result.verdicts["termination"].status == "violated"
    assert result.verdicts["agreement"].status == "holds"


def test_the_tiebreak_changes_its_mind_when_the_silent_node_was_slow() -> None:
    result = scenarios.tiebreak(1)
    decided = [(e["node"], e["value"]) for e in result.trace if e["ev"] == "decide"]
    assert ("red" in {v for _, v in decided}) and ("blue" in {v for _, v in decided})
    assert result.verdicts["agreement"].status == "violated"


def test_fixed_backoff_livelocks_and_randomized_backoff_decides() -> None:
    fixed = scenarios.dueling_proposers(1)
    assert not fixed.facts["decided"] and fixed.facts["rounds"] >= 20
    randomized = scenarios.dueling_proposers(1, randomized=True)
    assert randomized.facts["decided"]


def test_randomized_backoff_always_decides_over_many_seeds() -> None:
    sweep = scenarios.dueling_sweep(200, seed=1)
    assert sweep.decided == 200
    assert sweep.median <= 3


def test_paxos_holds_and_names_the_witness() -> None:
    result = scenarios.paxos_holds(1)
    assert all(v.status == "holds" for v in result.verdicts.values())
    decided = {e["value"] for e in result.trace if e["ev"] == "decide"}
    assert decided == {"red"}, "the value chosen before the crash is the one decided"
    witness = result.witness
    assert witness is not None and witness.witness == 2
    assert witness.accepting_quorum == (1, 2) and witness.promising_quorum == (2, 3)


def test_multi_leader_replication_ends_with_two_rows_and_consensus_with_one() -> None:
    """The book's Example 2: the same two sign-ups, two outcomes."""
    lazy = scenarios.replication_conflict(1)
    assert lazy.verdicts["agreement"].status == "violated"
    assert lazy.fault_tolerance.status == "violated"
    assert set(lazy.facts["rows"].values()) == {"paxos_expert -> alice", "paxos_expert -> bob"}
    backed = scenarios.replication_consensus(1)
    assert all(v.status == "holds" for v in backed.verdicts.values())
    assert len(set(backed.facts["rows"].values())) == 1, backed.facts["rows"]
    assert backed.fault_tolerance.status == "unknown", "one run cannot show it holds everywhere"
