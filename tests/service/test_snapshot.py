"""Snapshots: deterministic bytes, exact round trips, and loud failure on any damage.

The snapshots written are version 3 (a stream); `seal` builds version-2 bodies, which this
code still restores (test_kv_snapshot.py checks how they are converted)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxosd.service import (
    AdvanceTime,
    CorruptSnapshot,
    DecisionPropose,
    LockAcquire,
    NameRegister,
    Put,
    StateMachine,
)
from paxosd.service.snapshot import seal

from .helpers import Log, fuzz, shape
from .strategies import histories


def busy_machine() -> StateMachine:
    """A machine with something in every table."""
    log = Log(clients_max=50)
    log.run(AdvanceTime(now_ms=1000))
    log.request("c1", 1, Put(key="k", value={"nested": [1, 2.5, None, True, "s"]}))
    log.request("c2", 3, LockAcquire(name="L", owner="o1", ttl_ms=500))
    log.request("c1", 2, NameRegister(name="n", owner="o1"))
    log.run(DecisionPropose(id="d", value=[1]))
    log.run(LockAcquire(name="M", owner="o2", ttl_ms=100))
    return log.machine


def run(log: Log, history: list[tuple[str, object]]) -> list[str | None]:
    answers = []
    for kind, item in history:
        if kind == "log":
            answers.append(shape(log.run(item)))
        elif kind == "read":
            answers.append(shape(log.machine.read(item)))
        else:
            answers.append(shape(log.apply_bytes(item)))  # type: ignore[arg-type]
    return answers


def test_empty_machine_round_trips() -> None:
    """A fresh machine restores to a fresh machine."""
    data = StateMachine().snapshot()
    assert StateMachine.restore(data).snapshot() == data


def test_round_trip_preserves_everything() -> None:
    """restore(snapshot()) has the same state: same bytes, slot, time, revision, bound."""
    machine = busy_machine()
    data = machine.snapshot()
    restored = StateMachine.restore(data)
    assert restored.snapshot() == data
    assert restored.applied_slot == machine.applied_slot
    assert restored.log_time_ms == machine.log_time_ms
    assert restored.revision == machine.revision
    assert restored.clients_max == 50
    assert repr(restored) == repr(machine)


def test_equal_states_give_equal_bytes_regardless_of_insertion_order() -> None:
    """Tables are written sorted, so the order things were created in does not show."""
    one, two = Log(), Log()
    for name in ("x", "y", "z"):
        one.run(NameRegister(name=name, owner="o"))
    for name in ("z", "x", "y"):
        two.run(NameRegister(name=name, owner="o"))
    assert one.machine.snapshot() == two.machine.snapshot()


@given(histories, st.data())
@fuzz(150)
def test_restoring_midway_is_invisible(
    history: list[tuple[str, object]], data: st.DataObject
) -> None:
    """Snapshot+restore at any point, then continuing, answers exactly like never stopping."""
    cut = data.draw(st.integers(0, len(history)))
    straight = Log(clients_max=3)
    expected = run(straight, history)

    first = Log(clients_max=3)
    answers = run(first, history[:cut])
    resumed = Log(StateMachine.restore(first.machine.snapshot()))
    assert resumed.machine.snapshot() == first.machine.snapshot()
    answers += run(resumed, history[cut:])
    assert answers == expected
    assert resumed.machine.snapshot() == straight.machine.snapshot()


def test_every_single_byte_flip_is_detected() -> None:
    """Flipping any bit pattern in any byte raises CorruptSnapshot."""
    data = busy_machine().snapshot()
    for index in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(data)
            damaged[index] ^= mask
            with pytest.raises(CorruptSnapshot):
                StateMachine.restore(bytes(damaged))


def test_every_truncation_is_detected() -> None:
    """Any strict prefix (including empty) raises CorruptSnapshot; so does extra trailing data."""
    data = busy_machine().snapshot()
    for length in range(len(data)):
        with pytest.raises(CorruptSnapshot):
            StateMachine.restore(data[:length])
    with pytest.raises(CorruptSnapshot):
        StateMachine.restore(data + b"\x00")


@given(st.binary(max_size=300))
@fuzz(1000)
def test_foreign_bytes_raise_corrupt_snapshot(data: bytes) -> None:
    """Random bytes are never mistaken for a snapshot."""
    with pytest.raises(CorruptSnapshot):
        StateMachine.restore(data)


def test_foreign_magic_and_future_version_are_refused() -> None:
    """Another program's file and a future format are CorruptSnapshot with a clear reason."""
    body = msgpack.packb([-1, 0, 0, 0, 10, [], [], [], [], []])
    assert StateMachine.restore(seal(body)).applied_slot == -1
    with pytest.raises(CorruptSnapshot, match="version 4"):
        StateMachine.restore(seal(body, version=4))
    with pytest.raises(CorruptSnapshot, match="version 1"):  # sessions without digests
        StateMachine.restore(seal(body, version=1))
    with pytest.raises(CorruptSnapshot, match="magic"):
        StateMachine.restore(b"SQLite format 3\x00" + bytes(64))


GOOD = [5, 0, 2, 1, 10]
BAD_BODIES = [
    {"not": "a list"},
    [*GOOD, [], [], [], []],  # a table missing
    [-2, 0, 0, 0, 10, [], [], [], [], []],  # applied_slot below -1
    [5, 0, 2, 1, 0, [], [], [], [], []],  # clients_max 0
    [*GOOD, [["b", 1, 1, 1], ["a", 1, 2, 2]], [], [], [], []],  # unsorted keys
    [*GOOD, [["a", 1, 1, 1], ["a", 1, 2, 2]], [], [], [], []],  # duplicate keys
    [*GOOD, [["a", 1, 2, 1]], [], [], [], []],  # mod before create
    [*GOOD, [["a", 1, 1, 3]], [], [], [], []],  # mod beyond the store revision
    [*GOOD, [["a", b"bytes", 1, 1]], [], [], [], []],  # not a JSON value
    [*GOOD, [], [["L", "o", 2, 100, True]], [], [], []],  # token beyond the counter
    [*GOOD, [], [["L", "o", 1, 100, 1]], [], [], []],  # held flag not a bool
    [*GOOD, [], [], [["n", ""]], [], []],  # empty owner
    [*GOOD, [], [], [], [["d", None]], []],  # null decision
    [*GOOD, [], [], [], [], [["c", 1, 6, None]]],  # session slot beyond applied_slot
    [*GOOD, [], [], [], [], [["c", 1, 3, None], ["d", 1, 2, None]]],  # LRU order broken
    [*GOOD, [], [], [], [], [["c", 1, 3, None], ["c", 2, 4, None]]],  # duplicate session
    [*GOOD, [], [], [], [], [["c", 1, 3, [99, "x"]]]],  # unknown cached result
    [*GOOD, [], [], [], [], [["c", 1, 3, [3, "k", "1"]]]],  # cached Written bad revision
    [5, 0, 2, 1, 1, [], [], [], [], [["c", 1, 3, None], ["d", 1, 4, None]]],  # over the bound
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_well_framed_but_invalid_bodies_are_refused(body: object) -> None:
    """A correct checksum is not enough: every invariant of the state is checked on restore."""
    with pytest.raises(CorruptSnapshot):
        StateMachine.restore(seal(msgpack.packb(body)))


def test_non_msgpack_body_is_refused() -> None:
    """A framed body that is not msgpack is CorruptSnapshot."""
    with pytest.raises(CorruptSnapshot, match="msgpack"):
        StateMachine.restore(seal(b"\xc1"))


@given(st.recursive(st.integers(-2, 5) | st.text(max_size=2) | st.none(), st.lists, max_leaves=30))
@fuzz(500)
def test_random_framed_bodies_never_restore_garbage(body: object) -> None:
    """Framed random documents are refused, or restore to a state that re-snapshots stably."""
    try:
        machine = StateMachine.restore(seal(msgpack.packb(body)))
    except CorruptSnapshot:
        return
    data = machine.snapshot()
    assert StateMachine.restore(data).snapshot() == data
