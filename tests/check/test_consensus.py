"""The consensus checkers, fed deliberately broken runs: each one must be able to fail."""

from __future__ import annotations

from paxosd.check.consensus import check_agreement, check_termination, check_validity


def test_agreement_holds_when_all_decide_the_same() -> None:
    assert check_agreement([(1.0, 1, "red"), (2.0, 2, "red")]).status == "holds"


def test_agreement_fails_on_two_values() -> None:
    verdict = check_agreement([(1.0, 1, "red"), (2.0, 2, "blue")])
    assert verdict.status == "violated" and "red" in verdict.detail and "blue" in verdict.detail


def test_agreement_fails_when_a_node_changes_its_mind() -> None:
    verdict = check_agreement([(1.0, 1, "red"), (2.0, 1, "blue")])
    assert verdict.status == "violated" and "changed its mind" in verdict.detail


def test_validity_fails_on_a_value_nobody_proposed() -> None:
    assert check_validity([(1.0, 1, "green")], ["red", "blue"]).status == "violated"
    assert check_validity([(1.0, 1, "red")], ["red", "blue"]).status == "holds"


def test_termination_needs_every_live_node_to_decide() -> None:
    assert check_termination([(1.0, 1, "red")], {1, 2}, {1}).status == "violated"
    assert check_termination([(1.0, 1, "red"), (1.0, 2, "red")], {1, 2}, {1}).status == "holds"


def test_termination_is_not_owed_when_no_proposer_survived() -> None:
    assert check_termination([], {2, 3}, {1}).status == "holds"
