"""The teaching algorithms do what the book says, flaws included."""

from __future__ import annotations

import random

from paxosd.core.lessons.failover import FailoverNode, Heartbeat
from paxosd.core.lessons.leader import GetRequest, LeaderNode, SetRequest, Value
from paxosd.core.lessons.majority import MajorityNode, Propose, Vote
from paxosd.core.protocol import CoreConfig
from paxosd.core.types import Envelope

MEMBERS = (1, 2, 3)


def make(cls: type, node_id: int, **config: object) -> object:
    return cls(node_id, MEMBERS, random.Random(0), CoreConfig(**config), None)  # type: ignore


def test_leader_takes_the_first_proposal_and_never_changes() -> None:
    """The leader decides the first value it is offered; later proposals get that value back."""
    leader = make(LeaderNode, 1)
    leader.step(Envelope(2, 1, SetRequest(value="red")))
    effects = leader.step(Envelope(3, 1, SetRequest(value="blue")))
    assert leader.query() == "red"
    assert [e.msg for e in effects.send] == [Value(value="red")]


def test_a_follower_asks_the_leader_until_it_knows() -> None:
    """A follower sends its proposal, and keeps asking (the book's query) until answered."""
    follower = make(LeaderNode, 2)
    sent = follower.propose("red").send
    assert [(e.dst, e.msg) for e in sent] == [(1, SetRequest(value="red"))]
    assert [e.msg for e in follower.tick().send] == [SetRequest(value="red")]
    follower.step(Envelope(1, 2, Value(value="red")))
    assert follower.query() == "red" and not follower.tick().send
    idle = make(LeaderNode, 3)
    assert [e.msg for e in idle.tick().send] == [GetRequest()]


def test_failover_promotes_the_lowest_id_still_heard() -> None:
    """A follower that stops hearing the leader follows the next lowest id it hears."""
    node = make(FailoverNode, 3, suspect_after_ticks=2)
    assert node.leader == 1
    for _ in range(3):
        node.tick()
        node.step(Envelope(2, 3, Heartbeat()))
    assert node.leader == 2


def test_failover_followers_copy_the_leaders_value_from_heartbeats() -> None:
    node = make(FailoverNode, 2)
    node.step(Envelope(1, 2, Heartbeat(value="red")))
    assert node.query() == "red"


def test_majority_votes_for_the_first_value_heard_and_never_changes() -> None:
    """A voter votes once, for whatever it heard of first."""
    node = make(MajorityNode, 3)
    node.step(Envelope(1, 3, Propose(value="red")))
    effects = node.step(Envelope(2, 3, Propose(value="blue")))
    assert node.vote == "red" and not effects.send


def test_majority_decides_on_a_majority_of_votes() -> None:
    """One vote each is no decision; a second vote for red out of three is."""
    node = make(MajorityNode, 3)
    node.propose("blue")
    node.step(Envelope(1, 3, Vote(value="red")))
    assert node.query() is None
    node.step(Envelope(2, 3, Vote(value="red")))
    assert node.query() == "red"


def test_the_tiebreak_decides_red_and_then_changes_its_mind() -> None:
    """`tiebreak`: a 1-1 tie with the third voter silent goes to red; the late vote flips it."""
    node = make(MajorityNode, 1, variant="tiebreak", suspect_after_ticks=2)
    node.propose("red")
    node.step(Envelope(2, 1, Vote(value="blue")))
    for _ in range(3):
        node.tick()
    assert node.query() == "red"
    effects = node.step(Envelope(3, 1, Vote(value="blue")))
    assert node.query() == "blue" and effects.decided == ["blue"]
