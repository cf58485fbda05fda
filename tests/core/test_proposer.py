"""The proposer's value rule and ballot choice, and a node's round trip."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from paxosd.core.protocol import CoreConfig
from paxosd.core.synod.messages import Nack, Prepare, Promise
from paxosd.core.synod.node import SynodDurable, SynodNode
from paxosd.core.synod.proposer import pick_value
from paxosd.core.types import Ballot, Envelope


def test_pick_value_takes_the_highest_accepted_ballot() -> None:
    """Of the values reported in promises, the one accepted in the highest ballot wins."""
    promises = [(Ballot(1, 1), "red"), (None, None), (Ballot(2, 3), "blue")]
    assert pick_value(promises) == "blue"


def test_pick_value_is_free_when_nothing_was_accepted() -> None:
    """With no value reported, the proposer may offer its own (None means free)."""
    assert pick_value([(None, None), (None, None)]) is None


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.builds(Ballot, st.integers(1, 5), st.integers(1, 3))),
            st.sampled_from(["red", "blue", "green"]),
        ),
        max_size=5,
    )
)
def test_pick_value_agrees_with_a_plain_max(promises: list) -> None:
    reported = [(b, v) for b, v in promises if b is not None]
    expected = max(reported, key=lambda p: p[0])[1] if reported else None
    assert pick_value([(b, v if b else None) for b, v in promises]) == expected


def node(node_id: int = 1, variant: str = "correct", durable: list | None = None) -> SynodNode:
    config = CoreConfig(variant=variant, backoff_ticks_max=3, retry_after_ticks=5)
    return SynodNode(node_id, (1, 2, 3), random.Random(0), config, durable)


def test_propose_persists_the_ballot_before_sending_prepare() -> None:
    """The round is durable before any Prepare leaves, so a restart never reuses it."""
    n = node()
    effects = n.propose("red")
    assert effects.persist, "nothing persisted before sending"
    assert isinstance(effects.persist[0], SynodDurable)
    assert effects.persist[0].last_ballot == Ballot(1, 1)
    assert {e.dst for e in effects.send if isinstance(e.msg, Prepare)} == {2, 3}


def test_a_quorum_of_promises_reporting_a_value_forces_it() -> None:
    """A proposer must carry forward the value of the highest accepted ballot it hears of."""
    n = node()
    n.propose("red")
    reply = Promise(ballot=Ballot(1, 1), accepted_ballot=Ballot(0, 2), accepted_value="blue")
    effects = n.step(Envelope(2, 1, reply))
    accepts = [e.msg for e in effects.send]
    assert accepts and all(m.value == "blue" for m in accepts)


def test_the_planted_bug_ignores_reported_values() -> None:
    """The `ignore-promised-values` variant offers its own value regardless."""
    n = node(variant="ignore-promised-values")
    n.propose("red")
    reply = Promise(ballot=Ballot(1, 1), accepted_ballot=Ballot(0, 2), accepted_value="blue")
    effects = n.step(Envelope(2, 1, reply))
    assert all(e.msg.value == "red" for e in effects.send)


def test_a_nack_makes_the_proposer_back_off_then_retry_higher() -> None:
    """Pre-empted, a proposer waits and retries with a ballot above the one that beat it."""
    n = node()
    n.propose("red")
    n.step(Envelope(2, 1, Nack(ballot=Ballot(1, 1), promised=Ballot(4, 2))))
    prepares = []
    for _ in range(5):
        prepares += [e.msg for e in n.tick().send if isinstance(e.msg, Prepare)]
    assert prepares and prepares[0].ballot == Ballot(5, 1)


def test_a_restarted_node_remembers_promises_and_decision() -> None:
    """Restored from its durable record, a node keeps its promise, its round and its decision."""
    first = node()
    record = first.propose("red").persist[-1]
    restored = node(durable=[record])
    assert restored.acceptor.promised == Ballot(1, 1)
    assert restored.proposer.next_round() == 2


def test_forget_promise_variant_loses_the_promise_on_restart() -> None:
    """The planted bug: after a restart the promise is gone (only accepted state survives)."""
    first = node()
    record = first.propose("red").persist[-1]
    restored = node(variant="forget-promise", durable=[record])
    assert restored.acceptor.promised is None
