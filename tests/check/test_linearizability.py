"""The linearizability checker against recorded Jepsen histories and hand-made cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from paxosd.check.history import HistoryError, load_history, parse_jsonl
from paxosd.check.linearizability import Verdict, check, check_operations, is_linearizable
from paxosd.check.models import APPEND, KV, REGISTER, get_model, guess_model

from ._support import op, vector_cases

VECTOR_TIME_LIMIT_S = 30.0
"""Generous per history: the slowest takes well under a second; "unknown" fails the test."""


@pytest.mark.parametrize(("path", "expected"), vector_cases("jepsen-etcd"))
def test_jepsen_etcd_vectors(path: Path, expected: bool) -> None:
    result = check(load_history(path), REGISTER, time_limit_s=VECTOR_TIME_LIMIT_S)
    assert result.verdict is (Verdict.LINEARIZABLE if expected else Verdict.NOT_LINEARIZABLE)
    if not expected:
        (violation,) = result.violations
        assert violation.stuck.known
        assert violation.stuck not in violation.prefix
        assert violation.stuck in [o for o, _ in violation.pending]


@pytest.mark.parametrize(("path", "expected"), vector_cases("kv"))
def test_kv_vectors(path: Path, expected: bool) -> None:
    history = load_history(path)
    assert guess_model(history.operations) is APPEND
    result = check(history, APPEND, time_limit_s=VECTOR_TIME_LIMIT_S)
    assert result.verdict is (Verdict.LINEARIZABLE if expected else Verdict.NOT_LINEARIZABLE)
    assert len(result.keys) == len(history.keys())  # partitioned by key
    assert sum(k.operations for k in result.keys) == len(history.operations)


def test_stale_read_is_caught_and_explained() -> None:
    ops = [
        op(0, "write", 1, 1, call=0, ret=1),
        op(1, "write", 2, 2, call=2, ret=3),
        op(2, "read", None, 1, call=4, ret=5),  # 2 was written before this began
    ]
    result = check(ops, REGISTER)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    (v,) = result.violations
    assert [o.index for o in v.prefix] == [0, 1]
    assert v.state == 2
    assert v.stuck.index == 2
    text = v.explain()
    assert "(register)" in text and "2 of 3 operations" in text and "#2 p2 read -> 1" in text


def test_concurrent_read_may_see_either_value() -> None:
    ops = [
        op(0, "write", 1, 1, call=0, ret=1),
        op(1, "write", 2, 2, call=2, ret=6),
        op(2, "read", None, 1, call=3, ret=4),
        op(3, "read", None, 2, call=4.5, ret=5),
    ]
    assert is_linearizable(ops, REGISTER)
    # but once a read saw 2, a later read may not go back to 1
    ops.append(op(4, "read", None, 1, call=5.5, ret=5.8))
    assert not is_linearizable(ops, REGISTER)


def test_touching_intervals_count_as_concurrent() -> None:
    ops = [op(0, "write", 1, 1, call=0, ret=2), op(1, "read", None, None, call=2, ret=3)]
    assert is_linearizable(ops, REGISTER)  # the read may go first: ret == call is not "before"


def test_unknown_write_may_take_effect_late_or_never() -> None:
    late = [
        op(0, "write", 1, call=0),  # unknown outcome
        op(1, "read", None, None, call=1, ret=2),
        op(2, "read", None, 1, call=10, ret=11),
    ]
    assert is_linearizable(late, REGISTER)
    never = [op(0, "write", 1, call=0), op(1, "read", None, None, call=10, ret=11)]
    assert is_linearizable(never, REGISTER)
    flip_back = [*late, op(3, "read", None, None, call=12, ret=13)]
    assert not is_linearizable(flip_back, REGISTER)


def test_unknown_op_cannot_act_before_its_invocation() -> None:
    ops = [op(0, "read", None, 5, call=0, ret=1), op(1, "write", 5, call=2)]
    assert not is_linearizable(ops, REGISTER)


def test_cas_semantics() -> None:
    ok = [op(0, "cas", (None, 3), (None, 3), call=0, ret=1), op(1, "read", None, 3, call=2, ret=3)]
    assert is_linearizable(ok, REGISTER)
    wrong_old = [op(0, "write", 1, 1, call=0, ret=1), op(1, "cas", (2, 3), (2, 3), call=2, ret=3)]
    assert not is_linearizable(wrong_old, REGISTER)
    unknown_cas = [
        op(0, "write", 1, 1, call=0, ret=1),
        op(1, "cas", (2, 3), call=2),  # unknown and cannot match: a no-op at worst
        op(2, "read", None, 1, call=5, ret=6),
    ]
    assert is_linearizable(unknown_cas, REGISTER)


def test_kv_model_is_per_key_with_delete() -> None:
    ops = [
        op(0, "put", 1, call=0, ret=1, key="a"),
        op(1, "put", 9, call=0, ret=1, key="b"),
        op(2, "delete", None, call=2, ret=3, key="a"),
        op(3, "get", None, None, call=4, ret=5, key="a"),
        op(4, "get", None, 9, call=4, ret=5, key="b"),
    ]
    result = check(ops, KV)
    assert result.verdict is Verdict.LINEARIZABLE
    assert [k.key for k in result.keys] == ["a", "b"]


def test_append_model() -> None:
    ops = [
        op(0, "append", "x", call=0, ret=1, key="k"),
        op(1, "append", "y", call=0, ret=1, key="k"),
        op(2, "get", None, "yx", call=2, ret=3, key="k"),
        op(3, "put", "z", call=4, ret=5, key="k"),
        op(4, "get", None, "z", call=6, ret=7, key="k"),
    ]
    assert is_linearizable(ops, APPEND)
    bad = [*ops[:2], op(2, "get", None, "x", call=2, ret=3, key="k")]
    assert not is_linearizable(bad, APPEND)


def test_one_bad_key_fails_the_history_and_others_still_report() -> None:
    ops = [
        op(0, "put", 1, call=0, ret=1, key="good"),
        op(1, "get", None, 1, call=2, ret=3, key="good"),
        op(2, "put", 1, call=0, ret=1, key="bad"),
        op(3, "get", None, 2, call=2, ret=3, key="bad"),
    ]
    result = check(ops, KV)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert {k.key: k.verdict for k in result.keys} == {
        "good": Verdict.LINEARIZABLE,
        "bad": Verdict.NOT_LINEARIZABLE,
    }
    assert result.to_json()["keys"]["bad"]["verdict"] == "not linearizable"


def _hard_history(writers: int) -> list:
    """Many concurrent unknown writes and a read of a value none wrote: refuting it means
    visiting every subset of the writes, which no time budget in a test allows."""
    ops = [op(i, "write", i, call=float(i)) for i in range(writers)]
    ops.append(op(writers, "read", None, -1, call=float(writers), ret=float(writers + 1)))
    return ops


def test_time_budget_ends_in_unknown_never_pass() -> None:
    result = check(_hard_history(40), REGISTER, time_limit_s=0.05)
    assert result.verdict is Verdict.UNKNOWN
    assert result.elapsed_s < 5
    assert not result.ok
    assert result.violations == []


def test_keys_after_the_deadline_are_unknown() -> None:
    result = check_operations([op(0, "read", None, None, call=0, ret=1)], REGISTER, deadline=0.0)
    assert result.verdict is Verdict.UNKNOWN


def test_unknown_reads_are_dropped_up_front() -> None:
    ops = [op(i, "read", None, call=float(i)) for i in range(200)]  # 200 unknown reads
    ops.append(op(200, "write", 1, 1, call=300, ret=301))
    result = check(ops, REGISTER, time_limit_s=5)
    assert result.verdict is Verdict.LINEARIZABLE
    assert result.keys[0].states_explored == 1


def test_model_rejects_unknown_operations_with_the_line() -> None:
    with pytest.raises(HistoryError, match="line 1: the register model has no operation 'frob'"):
        check([op(0, "frob", 1, 1, call=0, ret=1)], REGISTER)
    with pytest.raises(HistoryError, match=r"line 1: cas needs \[old new\]"):
        check([op(0, "cas", 5, 5, call=0, ret=1)], REGISTER)


def test_jsonl_history_end_to_end() -> None:
    text = "\n".join(
        [
            '{"process": 0, "type": "invoke", "f": "put", "key": "x", "value": 1, "time": 0.0}',
            '{"process": 1, "type": "invoke", "f": "put", "key": "x", "value": 2, "time": 0.1}',
            '{"process": 0, "type": "ok", "f": "put", "key": "x", "value": 1, "time": 0.2}',
            '{"process": 1, "type": "info", "f": "put", "key": "x", "time": 0.3}',
            '{"process": 0, "type": "invoke", "f": "get", "key": "x", "time": 5.0}',
            '{"process": 0, "type": "ok", "f": "get", "key": "x", "value": 2, "time": 5.1}',
        ]
    )
    history = parse_jsonl(text)
    assert guess_model(history.operations) is KV
    assert check(history, KV).verdict is Verdict.LINEARIZABLE


def test_get_model() -> None:
    assert get_model("register") is REGISTER
    with pytest.raises(ValueError, match="unknown model"):
        get_model("queue")


def test_ret_infinity_for_unknown() -> None:
    assert op(0, "write", 1, call=0).ret == math.inf
