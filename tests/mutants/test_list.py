"""The mutation list follows the code: each mutation's text is found exactly once where it
says, each names tests that exist and a swarm (or why none can catch it). A refactoring that
moves the code fails here, in every CI run, not weeks later in `make mutants`."""

from __future__ import annotations

from tests.mutants import load, problems


def test_every_mutation_is_found_once_in_the_code_and_names_what_catches_it() -> None:
    mutants = load()
    assert len(mutants) >= 25
    assert problems(mutants) == []


def test_the_review_table_and_the_rules_added_since_are_all_listed() -> None:
    ids = {mutant.id for mutant in load()}
    review = {"M1", "M2", "M3", "M4", "M5", "M5s", "M7", "N1", "N1b", "N1c", "N2", "N2b"}
    review |= {"N3", "N3b", "N4", "N5", "N6", "N6b", "N7", "N7b", "N8c"}
    ours = {"M5f", "F1", "T1", "E1", "E2", "C1", "C2"}
    assert review | ours <= ids
