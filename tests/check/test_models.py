"""The sequential models: what each accepts, how a model of your own is loaded, and that
the optional reductions a model offers are exact on histories built to tempt them."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxosd.check.history import HistoryError, Operation
from paxosd.check.linearizability import Verdict, check, is_linearizable
from paxosd.check.models import (
    APPEND,
    CAS_REGISTER,
    DESCRIPTIONS,
    KV,
    MODELS,
    QUEUE,
    REGISTER,
    SET,
    TXN,
    guess_model,
    load_model,
)

from ._support import op


def test_every_model_is_described() -> None:
    assert set(DESCRIPTIONS) == set(MODELS)
    assert all(MODELS[name].name == name for name in MODELS)


def test_set_model() -> None:
    ops = [
        op(0, "add", 1, 1, call=0, ret=1),
        op(1, "contains", 1, True, call=2, ret=3),
        op(2, "remove", 1, True, call=4, ret=5),
        op(3, "read", None, (), call=6, ret=7),
    ]
    assert is_linearizable(ops, SET)
    assert not is_linearizable([*ops[:3], op(3, "contains", 1, True, call=6, ret=7)], SET)
    assert not is_linearizable([ops[0], op(1, "remove", 1, False, call=2, ret=3)], SET)


def test_queue_model() -> None:
    ops = [
        op(0, "enqueue", "a", call=0, ret=1),
        op(1, "enqueue", "b", call=2, ret=3),
        op(2, "dequeue", None, "a", call=4, ret=5),
        op(3, "dequeue", None, "b", call=6, ret=7),
        op(4, "dequeue", None, None, call=8, ret=9),  # empty
    ]
    assert is_linearizable(ops, QUEUE)
    out_of_order = [ops[0], ops[1], op(2, "dequeue", None, "b", call=4, ret=5)]
    assert not is_linearizable(out_of_order, QUEUE)
    # An unknown dequeue may have taken "a": then "b" comes first.
    lost = [
        ops[0],
        ops[1],
        op(2, "dequeue", None, call=3.5),
        op(3, "dequeue", None, "b", call=6, ret=7),
    ]
    assert is_linearizable(lost, QUEUE)


def test_queue_drops_unknown_enqueues_nobody_dequeued() -> None:
    ops = [op(i, "enqueue", i, call=0) for i in range(30)]  # 30 unknown enqueues
    ops.append(op(30, "dequeue", None, 99, call=1, ret=2))
    result = check(ops, QUEUE, time_limit_s=5)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.keys[0].pruned == 30


def test_txn_model_reads_its_own_writes_and_needs_the_same_steps() -> None:
    write_then_read = (("w", "x", 1), ("r", "x", None))
    ok = op(0, "txn", write_then_read, (("w", "x", 1), ("r", "x", 1)), call=0, ret=1)
    assert is_linearizable([ok], TXN)
    wrong = op(0, "txn", write_then_read, (("w", "x", 1), ("r", "x", 0)), call=0, ret=1)
    assert not is_linearizable([wrong], TXN)
    with pytest.raises(HistoryError, match="same steps"):
        check([op(0, "txn", write_then_read, (("w", "x", 1),), call=0, ret=1)], TXN)
    with pytest.raises(HistoryError, match="a txn step is r or w"):
        check([op(0, "txn", (("cas", "x", 1),), call=0, ret=1)], TXN)


def test_register_has_no_cas_but_says_where_to_find_it() -> None:
    with pytest.raises(HistoryError, match=r"has no operation 'cas' \(the cas-register"):
        check([op(0, "cas", (1, 2), (1, 2), call=0, ret=1)], REGISTER)


@pytest.mark.parametrize(
    ("fs", "key", "expected"),
    [
        ({"read", "write"}, None, REGISTER),
        ({"read", "cas"}, None, CAS_REGISTER),
        ({"get", "put"}, "x", KV),
        ({"get", "append"}, "x", APPEND),
        ({"add", "contains"}, "s", SET),
        ({"enqueue", "dequeue"}, "q", QUEUE),
        ({"txn"}, None, TXN),
    ],
)
def test_guess_model(fs: set[str], key: object, expected: object) -> None:
    ops = [op(i, f, 1, 1, call=i, ret=i + 0.5, key=key) for i, f in enumerate(sorted(fs))]
    assert guess_model(ops) is expected


def test_dead_end_detection_knows_a_later_write_can_help() -> None:
    """Reduction 4 must not fire while an enabler is left: here the read of 1 is refused at
    first, but a concurrent write of 1 can still go before it."""
    ops = [
        op(0, "write", 2, 2, call=0, ret=1),
        op(1, "write", 1, 1, call=2, ret=10),
        op(2, "read", None, 1, call=3, ret=4),
    ]
    assert is_linearizable(ops, REGISTER)
    too_late = [ops[0], op(1, "write", 1, 1, call=5, ret=10), ops[2]]  # called after the read
    assert not is_linearizable(too_late, REGISTER)


def test_append_dead_ends_respect_puts() -> None:
    ops = [
        op(0, "append", "a", call=0, ret=1, key="k"),
        op(1, "put", "x", call=2, ret=8, key="k"),
        op(2, "get", None, "xb", call=9, ret=10, key="k"),
        op(3, "append", "b", call=2, ret=8, key="k"),
    ]
    assert is_linearizable(ops, APPEND)  # put x, then append b
    assert not is_linearizable([ops[0], ops[2], ops[3]], APPEND)  # no put: "xb" is impossible


COUNTER = """
class Counter:
    def init(self):
        return 0

    def step(self, state, op):
        if op.f == "add":
            return True, state + op.input
        return (not op.known or op.output == state), state
"""


def test_a_model_of_your_own_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "counter.py"
    path.write_text(COUNTER)
    model = load_model(f"{path}:Counter")
    assert model.name == "counter"  # from the class name
    ops = [
        Operation(0, 0, "add", None, 2, 2, 0, 1, True),
        Operation(1, 1, "read", None, None, 2, 2, 3, True),
    ]
    assert is_linearizable(ops, model)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-colon", "FILE.py:CLASS"),
        ("missing.py:X", "no such model file"),
        ("paxosd.check.models:Nothing", "has no Nothing"),
        ("no.such.module:X", "cannot load no.such.module"),
        ("paxosd.check.models:Path", r"no init\(\) method"),
    ],
)
def test_load_model_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_model(spec)
