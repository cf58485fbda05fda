"""The engine contract: slot order, no-ops, time, undecodable payloads, side-effect-free reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxosd.service import (
    AdvanceTime,
    BadCommand,
    DecisionGet,
    Error,
    Get,
    LockAcquire,
    LockStatus,
    NameLookup,
    Noop,
    Put,
    SlotOrderError,
    StateMachine,
    encode,
)

from .helpers import Log, fuzz
from .strategies import histories, read_ops


def test_empty_payload_is_a_noop() -> None:
    """Slots with payload b"" are accepted, change nothing but applied_slot, and answer None."""
    machine = StateMachine()
    before = machine.snapshot()
    assert machine.apply(0, b"") == (None, None)
    assert machine.applied_slot == 0
    assert machine.apply(1, encode(Noop())) == (None, None)
    assert StateMachine.restore(before).snapshot() != machine.snapshot()  # only the slot moved
    fresh = StateMachine()
    fresh.apply(1, b"x" * 0)
    assert fresh.snapshot() == machine.snapshot()


def test_applied_slot_tracks_the_last_slot() -> None:
    """applied_slot starts at -1 and follows every apply, including gaps in numbering."""
    machine = StateMachine()
    assert machine.applied_slot == -1
    machine.apply(1, encode(Put(key="k", value=1)))
    machine.apply(7, b"")
    assert machine.applied_slot == 7


@pytest.mark.parametrize("slot", [4, 5])
def test_slots_must_strictly_increase(slot: int) -> None:
    """Re-applying or going back is an engine bug: SlotOrderError, and nothing changes."""
    machine = StateMachine()
    machine.apply(5, encode(Put(key="k", value=1)))
    before = machine.snapshot()
    with pytest.raises(SlotOrderError):
        machine.apply(slot, encode(Put(key="k", value=2)))
    assert machine.snapshot() == before


def test_undecodable_payload_answers_bad_command_and_changes_nothing_else() -> None:
    """A chosen payload that does not decode is a deterministic Error, never an exception."""
    machine = StateMachine()
    result, request = machine.apply(3, b"\xc1garbage")
    assert request is None
    assert isinstance(result, Error) and result.code == "bad_command"
    assert result.to_json()["error"] == "bad_command"
    assert machine.applied_slot == 3
    fresh = StateMachine()
    fresh.apply(3, b"")
    assert fresh.snapshot() == machine.snapshot()


@given(st.binary(max_size=64))
@fuzz(500)
def test_apply_never_raises_for_any_payload(payload: bytes) -> None:
    """Whatever bytes the log chose, apply answers (possibly an Error) and advances the slot."""
    machine = StateMachine()
    machine.apply(0, payload)
    assert machine.applied_slot == 0


def test_advance_time_answers_none_and_is_monotone() -> None:
    """AdvanceTime has no client (answers None); smaller timestamps are ignored."""
    log = Log()
    assert log.run(AdvanceTime(now_ms=100)) is None
    log.run(AdvanceTime(now_ms=50))
    assert log.machine.log_time_ms == 100


def test_read_answers_queries_from_current_state() -> None:
    """read() answers the same as the query would through the log."""
    log = Log()
    log.run(Put(key="k", value=1))
    log.run(LockAcquire(name="L", owner="o", ttl_ms=100))
    for query in (Get(key="k"), LockStatus(name="L"), NameLookup(name="n"), DecisionGet(id="d")):
        assert log.machine.read(query) == log.run(query)


@pytest.mark.parametrize(
    "query",
    [Put(key="k", value=1), AdvanceTime(now_ms=1), Noop(), "Get k", None, Get(key="")],
    ids=repr,
)
def test_read_refuses_anything_but_valid_queries(query: object) -> None:
    """Writes, engine commands and malformed queries are BadCommand in read()."""
    with pytest.raises(BadCommand):
        StateMachine().read(query)


@given(histories, st.lists(read_ops, max_size=10))
@fuzz(100)
def test_reads_never_mutate(history: list[tuple[str, object]], queries: list[object]) -> None:
    """After any history, any number of reads leaves the state byte-for-byte unchanged."""
    log = Log()
    for kind, item in history:
        if kind == "log":
            log.run(item)
    before = log.machine.snapshot()
    for query in queries:
        log.machine.read(query)
    assert log.machine.snapshot() == before


def test_clients_max_must_be_positive() -> None:
    """The session bound is validated at construction."""
    with pytest.raises(ValueError, match="clients_max"):
        StateMachine(clients_max=0)
