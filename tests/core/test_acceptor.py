"""The acceptor's rules, one test per rule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paxosd.core.synod.acceptor import AcceptorState
from paxosd.core.synod.messages import Accept, Accepted, Nack, Prepare, Promise
from paxosd.core.types import Ballot

B1, B2, B3 = Ballot(1, 1), Ballot(1, 2), Ballot(2, 1)


def test_promises_a_higher_ballot_and_reports_nothing_accepted() -> None:
    """A fresh acceptor promises any ballot and reports that it accepted nothing."""
    state, reply = AcceptorState().on_prepare(Prepare(ballot=B1))
    assert state.promised == B1
    assert reply == Promise(ballot=B1, accepted_ballot=None, accepted_value=None)


def test_rejects_a_lower_ballot_naming_its_promise() -> None:
    """A Prepare below the promise gets a Nack that names the ballot promised."""
    state, _ = AcceptorState().on_prepare(Prepare(ballot=B2))
    again, reply = state.on_prepare(Prepare(ballot=B1))
    assert again == state
    assert reply == Nack(ballot=B1, promised=B2)


def test_a_repeated_prepare_changes_nothing_and_needs_no_answer() -> None:
    """The same Prepare twice (a duplicate) leaves the state alone; the first answer stands."""
    state, _ = AcceptorState().on_prepare(Prepare(ballot=B1))
    again, reply = state.on_prepare(Prepare(ballot=B1))
    assert again == state and reply is None


def test_promise_reports_the_highest_accepted_value() -> None:
    """A promise carries what was accepted, so the new proposer can carry it forward."""
    state, _ = AcceptorState().on_prepare(Prepare(ballot=B1))
    state, _ = state.on_accept(Accept(ballot=B1, value="red"))
    state, reply = state.on_prepare(Prepare(ballot=B3))
    assert reply == Promise(ballot=B3, accepted_ballot=B1, accepted_value="red")


def test_accepts_at_or_above_the_promise_only() -> None:
    """Accept is refused below the promise, granted at or above it."""
    state, _ = AcceptorState().on_prepare(Prepare(ballot=B2))
    refused, reply = state.on_accept(Accept(ballot=B1, value="red"))
    assert refused == state and reply == Nack(ballot=B1, promised=B2)
    granted, reply = state.on_accept(Accept(ballot=B2, value="blue"))
    assert reply == Accepted(ballot=B2, value="blue")
    assert (granted.accepted_ballot, granted.accepted_value) == (B2, "blue")


ballots = st.builds(Ballot, st.integers(1, 4), st.integers(1, 3))
messages = st.one_of(
    st.builds(lambda b: Prepare(ballot=b), ballots),
    st.builds(lambda b, v: Accept(ballot=b, value=v), ballots, st.sampled_from(["red", "blue"])),
)


@given(st.lists(messages, max_size=30))
def test_promises_never_go_down_and_accepts_stay_below_them(inputs: list) -> None:
    """Whatever arrives, the promise only grows and nothing is accepted above it."""
    state = AcceptorState()
    for msg in inputs:
        before = state.promised
        state, _ = state.on_prepare(msg) if isinstance(msg, Prepare) else state.on_accept(msg)
        state.invariants()
        if before is not None:
            assert state.promised is not None and state.promised >= before
