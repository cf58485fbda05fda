"""Write-once rules: names keep their first owner, decisions keep their first value."""

from __future__ import annotations

import pytest

from paxosd.service import (
    BadCommand,
    DecisionGet,
    DecisionPropose,
    DecisionResult,
    NameLookup,
    NameRegister,
    NameResult,
    encode,
)

from .helpers import Log


def test_first_registration_wins() -> None:
    """A new name is registered to its first claimant."""
    log = Log()
    result = log.run(NameRegister(name="svc", owner="o1"))
    assert result == NameResult(registered=True, name="svc", owner="o1")
    assert result.to_json() == {"registered": True, "name": "svc", "owner": "o1"}


def test_registration_by_another_owner_fails_and_names_the_owner() -> None:
    """Later claimants get registered=False with the existing owner; the name never moves."""
    log = Log()
    log.run(NameRegister(name="svc", owner="o1"))
    assert log.run(NameRegister(name="svc", owner="o2")) == NameResult(
        registered=False, name="svc", owner="o1"
    )
    assert log.run(NameLookup(name="svc")) == NameResult(registered=True, name="svc", owner="o1")


def test_repeat_registration_by_the_owner_is_idempotent() -> None:
    """The owner re-registering (e.g. a retry) answers registered=True."""
    log = Log()
    log.run(NameRegister(name="svc", owner="o1"))
    assert log.run(NameRegister(name="svc", owner="o1")) == NameResult(
        registered=True, name="svc", owner="o1"
    )


def test_lookup_of_unknown_name() -> None:
    """An unregistered name looks up as registered=False, owner None."""
    assert Log().run(NameLookup(name="x")) == NameResult(registered=False, name="x", owner=None)


def test_first_proposal_is_chosen_and_every_proposal_answers_it() -> None:
    """Propose-then-query: the first value wins; later proposers learn it from their answer."""
    log = Log()
    assert log.run(DecisionPropose(id="d", value={"leader": "n1"})) == DecisionResult(
        id="d", chosen={"leader": "n1"}
    )
    later = log.run(DecisionPropose(id="d", value={"leader": "n2"}))
    assert later == DecisionResult(id="d", chosen={"leader": "n1"})
    assert later.to_json() == {"id": "d", "chosen": {"leader": "n1"}}


def test_decision_get_before_and_after() -> None:
    """DecisionGet answers None until a value is chosen, then the chosen value forever."""
    log = Log()
    assert log.run(DecisionGet(id="d")) == DecisionResult(id="d", chosen=None)
    log.run(DecisionPropose(id="d", value=0))
    log.run(DecisionPropose(id="d", value=1))
    assert log.run(DecisionGet(id="d")) == DecisionResult(id="d", chosen=0)


def test_null_cannot_be_proposed() -> None:
    """null means "undecided" in answers, so it is refused as a proposal."""
    with pytest.raises(BadCommand, match=r"DecisionPropose\.value"):
        encode(DecisionPropose(id="d", value=None))


def test_decisions_are_independent_per_id() -> None:
    """Each id is its own single-decree decision."""
    log = Log()
    log.run(DecisionPropose(id="a", value=1))
    log.run(DecisionPropose(id="b", value=2))
    assert log.run(DecisionGet(id="a")) == DecisionResult(id="a", chosen=1)
    assert log.run(DecisionGet(id="b")) == DecisionResult(id="b", chosen=2)
