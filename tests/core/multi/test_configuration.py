"""The Configuration value: what a quorum is, who is a peer, and which values are refused."""

from __future__ import annotations

import pytest

from paxosd.core.multi.configuration import Configuration


def test_quorums_are_majorities_of_the_voters_only() -> None:
    config = Configuration((1, 2, 3), learners=(4, 5))
    assert config.quorum.is_phase2_quorum({1, 2})
    assert not config.quorum.is_phase2_quorum({1, 4, 5})
    assert config.members == (1, 2, 3, 4, 5)


def test_peers_include_learners_but_voting_peers_do_not() -> None:
    config = Configuration((1, 2, 3), learners=(4,))
    assert config.peers_of(2) == (1, 3, 4)
    assert config.voting_peers_of(2) == (1, 3)
    assert config.is_voter(3) and not config.is_voter(4)


def test_of_sorts_and_deduplicates() -> None:
    assert Configuration.of([3, 1, 2, 1]) == Configuration((1, 2, 3))
    assert Configuration.of([2, 1], [5]).describe() == "voters 1,2; learners 5"


@pytest.mark.parametrize(
    ("voters", "learners", "epoch"),
    [
        ((), (), 0),
        ((2, 1), (), 0),
        ((1, 1), (), 0),
        ((1, 2), (2,), 0),
        ((1,), (), -1),
        ((256,), (), 0),
    ],
)
def test_malformed_configurations_are_refused(
    voters: tuple[int, ...], learners: tuple[int, ...], epoch: int
) -> None:
    with pytest.raises(ValueError):
        Configuration(voters, learners, epoch)
