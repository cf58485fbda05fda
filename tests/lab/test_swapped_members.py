"""The lab's lesson "why you cannot just swap the member list": Paxos with the member list
edited by hand on some nodes decides two values, and the explorer finds the shortest way,
with no fault at all; the same cluster with one list never does."""

from __future__ import annotations

import pytest

from paxosd.lab.algorithms import get
from paxosd.lab.check import CheckRequest, run_check


def _check(variant: str, explore: bool, **options: object) -> dict[str, object]:
    request = CheckRequest(get("paxos"), nodes=5, variant=variant, explore=explore, **options)  # type: ignore[arg-type]
    return run_check(request).to_json()


def test_two_member_lists_let_two_disjoint_majorities_decide_in_ten_steps() -> None:
    report = _check("swapped-members", True, crashes=0, faults=frozenset())
    assert report["properties"]["agreement"] == "violated"  # type: ignore[index]
    counterexample = report["counterexamples"]["agreement"]  # type: ignore[index]
    assert counterexample["steps"] == 10
    decided = {
        (note["node"], note["text"])
        for step in counterexample["trace"]
        for note in step.get("notes", [])
        if note["text"].startswith("decides")
    }
    assert decided == {(1, "decides red"), (2, "decides blue")}, "majorities {1,3} and {2,4}"
    accepted_by = {
        step["src"] for step in counterexample["trace"] if "Accepted" in step.get("msg", "")
    }
    assert accepted_by == {3, 4}, "each decision needed one peer of its own list only"


def test_with_one_member_list_the_same_runs_agree() -> None:
    report = _check("correct", False, runs=40, seed=1)
    assert report["properties"]["agreement"] == "holds"  # type: ignore[index]
    swapped = _check("swapped-members", False, runs=40, seed=1)
    assert swapped["properties"]["agreement"] == "violated"  # type: ignore[index]


def test_the_story_needs_its_five_nodes() -> None:
    with pytest.raises(ValueError, match="told on 5 nodes"):
        CheckRequest(get("paxos"), nodes=3, variant="swapped-members", explore=True).validate()
