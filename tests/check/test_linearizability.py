"""The linearizability checker against recorded Jepsen histories and hand-made cases."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import pytest

from paxosd.check.history import HistoryError, Operation, load_history, parse_jsonl
from paxosd.check.linearizability import (
    Reason,
    Verdict,
    check,
    check_operations,
    is_linearizable,
)
from paxosd.check.models import (
    APPEND,
    CAS_REGISTER,
    KV,
    REGISTER,
    SET,
    TXN,
    get_model,
    guess_model,
)

from ._support import op, vector_cases

VECTOR_TIME_LIMIT_S = 30.0
"""Generous per history: the slowest takes well under a second; "unknown" fails the test."""


@pytest.mark.parametrize(("path", "expected"), vector_cases("jepsen-etcd"))
def test_jepsen_etcd_vectors(path: Path, expected: bool) -> None:
    history = load_history(path)
    assert guess_model(history.operations) is CAS_REGISTER
    result = check(history, CAS_REGISTER, time_limit_s=VECTOR_TIME_LIMIT_S)
    assert result.verdict is (Verdict.LINEARIZABLE if expected else Verdict.NOT_LINEARIZABLE)
    if not expected:
        (violation,) = result.violations
        assert violation.stuck.known
        assert violation.stuck not in violation.prefix
        if not violation.unreachable:  # found at its return: it was one of the candidates
            assert violation.stuck in [o for o, _ in violation.pending]
        _assert_prefix_replays(violation.prefix, CAS_REGISTER)


@pytest.mark.parametrize(("path", "expected"), vector_cases("kv"))
def test_kv_vectors(path: Path, expected: bool) -> None:
    history = load_history(path)
    assert guess_model(history.operations) is APPEND
    result = check(history, APPEND, time_limit_s=VECTOR_TIME_LIMIT_S)
    assert result.verdict is (Verdict.LINEARIZABLE if expected else Verdict.NOT_LINEARIZABLE)
    assert len(result.keys) == len(history.keys())  # partitioned by key
    assert sum(k.operations for k in result.keys) == len(history.operations)
    assert Verdict.UNKNOWN not in {k.verdict for k in result.keys}  # every key decided


def _assert_prefix_replays(prefix: tuple[Operation, ...], model: object) -> None:
    """A reported prefix is a legal run that respects real time."""
    state = model.init()  # type: ignore[attr-defined]
    for i, o in enumerate(prefix):
        ok, state = model.step(state, o)  # type: ignore[attr-defined]
        assert ok
        assert all(not (later.ret < o.call) for later in prefix[i + 1 :])


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
    assert is_linearizable(ok, CAS_REGISTER)
    wrong_old = [op(0, "write", 1, 1, call=0, ret=1), op(1, "cas", (2, 3), (2, 3), call=2, ret=3)]
    assert not is_linearizable(wrong_old, CAS_REGISTER)
    unknown_cas = [
        op(0, "write", 1, 1, call=0, ret=1),
        op(1, "cas", (2, 3), call=2),  # unknown and cannot match: a no-op at worst
        op(2, "read", None, 1, call=5, ret=6),
    ]
    assert is_linearizable(unknown_cas, CAS_REGISTER)
    # A cas that says it did not swap observes "not old".
    said_no = [op(0, "write", 1, 1, call=0, ret=1), op(1, "cas", (1, 3), False, call=2, ret=3)]
    assert not is_linearizable(said_no, CAS_REGISTER)
    said_no_rightly = [said_no[0], op(1, "cas", (2, 3), False, call=2, ret=3)]
    assert is_linearizable(said_no_rightly, CAS_REGISTER)


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


def _exponential_history(adders: int = 40) -> list[Operation]:
    """Concurrent adds to a set, then a read of the empty set: refuting it means visiting
    every subset of the adds (the set model has no reduction for this), which no budget in
    a test allows."""
    ops = [op(i, "add", i, i, call=0, ret=1) for i in range(adders)]
    ops.append(op(adders, "read", None, (), call=2, ret=3, process=-1))
    return ops


def test_time_budget_ends_in_unknown_never_pass() -> None:
    result = check(_exponential_history(), SET, time_limit_s=0.05)
    assert result.verdict is Verdict.UNKNOWN
    assert result.keys[0].reason is Reason.TIME
    assert result.elapsed_s < 5
    assert not result.ok
    assert result.violations == []


def test_memory_budget_ends_in_unknown_within_the_budget() -> None:
    """A tiny memory budget: the search stops with "unknown" before it holds more than
    the budget (measured by the allocator, not by the search's own estimate)."""
    budget_bytes = 1_000_000
    history = _exponential_history()
    tracemalloc.start()
    try:
        result = check(history, SET, memory_limit_bytes=budget_bytes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.verdict is Verdict.UNKNOWN
    assert result.keys[0].reason is Reason.MEMORY
    assert result.keys[0].states_explored > 0  # it did explore, up to the budget
    assert peak <= budget_bytes, f"the search held {peak} bytes with a {budget_bytes} budget"


def test_out_of_memory_key_gives_way_and_the_others_are_decided() -> None:
    """When memory runs out, the search holding the most gives up; the others go on."""
    hard = [o for o in _exponential_history()]
    hard = [Operation(o.index, o.process, o.f, "hard", o.input, o.output, o.call, o.ret, o.known)
            for o in hard]  # fmt: skip
    easy = [op(100, "add", 1, 1, call=0, ret=1, key="easy")]
    easy.append(op(101, "contains", 1, True, call=2, ret=3, key="easy"))
    result = check([*hard, *easy], SET, memory_limit_bytes=2_000_000)
    verdicts = {k.key: (k.verdict, k.reason) for k in result.keys}
    assert verdicts == {
        "hard": (Verdict.UNKNOWN, Reason.MEMORY),
        "easy": (Verdict.LINEARIZABLE, Reason.NONE),
    }
    assert result.verdict is Verdict.UNKNOWN


@pytest.mark.parametrize("dead_from_the_start", [False, True])
def test_an_easy_failing_key_is_not_stuck_behind_a_hard_one(dead_from_the_start: bool) -> None:
    """Keys are interleaved: the easy violation is found although the hard key comes first
    and could never finish; with stop_at_violation the hard key is then not finished. The
    easy key is refuted by the search, or (reduction 4) before it starts."""
    hard = [
        Operation(o.index, o.process, o.f, "a-hard", o.input, o.output, o.call, o.ret, o.known)
        for o in _exponential_history()
    ]
    bad = [op(100, "add", 2, 2, call=0, ret=1, key="b-bad")]
    if dead_from_the_start:  # nobody ever adds 1
        bad.append(op(101, "contains", 1, True, call=2, ret=3, key="b-bad"))
    else:
        bad += [
            op(101, "add", 1, 1, call=0, ret=1, key="b-bad"),
            op(102, "contains", 1, False, call=2, ret=3, key="b-bad"),
        ]
    result = check([*hard, *bad], SET, time_limit_s=30, stop_at_violation=True)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.elapsed_s < 10
    reasons = {k.key: k.reason for k in result.keys}
    assert reasons == {"a-hard": Reason.STOPPED, "b-bad": Reason.NONE}
    assert "not finished" in result.notes[0]


def test_keys_after_the_deadline_are_unknown() -> None:
    result = check_operations([op(0, "read", None, None, call=0, ret=1)], REGISTER, deadline=0.0)
    assert result.verdict is Verdict.UNKNOWN


def test_unknown_reads_are_dropped_up_front() -> None:
    ops = [op(i, "read", None, call=float(i)) for i in range(200)]  # 200 unknown reads
    ops.append(op(200, "write", 1, 1, call=300, ret=301))
    result = check(ops, REGISTER, time_limit_s=5)
    assert result.verdict is Verdict.LINEARIZABLE
    assert result.keys[0].states_explored == 1
    assert result.keys[0].pruned == 200


def test_unknown_writes_nobody_saw_are_pruned_and_the_verdict_stands() -> None:
    """Reduction 3: 40 concurrent unknown writes of values no read returned cannot explain a
    read of -1; they are dropped before the search, which then needs one step."""
    ops = [op(i, "write", i, call=float(i)) for i in range(40)]
    ops.append(op(40, "read", None, -1, call=40.0, ret=41.0))
    result = check(ops, REGISTER, time_limit_s=5)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.keys[0].pruned == 40
    # One of them read back is kept, and it explains the read.
    seen = [*ops[:40], op(40, "read", None, 7, call=40.0, ret=41.0)]
    result = check(seen, REGISTER, time_limit_s=5)
    assert result.verdict is Verdict.LINEARIZABLE
    assert result.keys[0].pruned == 39


def test_unknown_outcomes_that_were_seen_do_not_blow_up() -> None:
    """Reduction 2: many concurrent unknown writes, each read by someone, then an impossible
    read. Without dominance pruning every subset of the writes would be a configuration."""
    writers = 30
    ops = [op(i, "write", i, call=0.0) for i in range(writers)]
    ops += [op(writers + i, "read", None, i, call=1.0, ret=2.0) for i in range(writers)]
    ops.append(op(2 * writers, "read", None, -1, call=3.0, ret=4.0))
    result = check(ops, REGISTER, time_limit_s=10)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.keys[0].states_explored < 20_000


def test_a_read_that_can_never_be_met_fails_at_once() -> None:
    """Reduction 4: a read of 1 after the only write of 1 was overwritten is dead as soon as
    the search passes the overwrite, whatever else is concurrent."""
    ops = [op(0, "write", 1, 1, call=0, ret=1), op(1, "write", 2, 2, call=2, ret=3)]
    ops += [op(2 + i, "write", 10 + i, 10 + i, call=4, ret=100) for i in range(12)]
    ops.append(op(20, "read", None, 1, call=200, ret=201))
    result = check(ops, REGISTER, time_limit_s=10)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    (violation,) = result.violations
    assert violation.stuck.index == 20 and violation.unreachable
    assert "can never take effect" in violation.explain()
    assert result.keys[0].states_explored < 100


def test_parallel_jobs_agree_with_one_process() -> None:
    ops = []
    for k in range(4):
        ops += [
            op(10 * k, "put", 1, call=0, ret=1, key=f"k{k}"),
            op(10 * k + 1, "get", None, 1 if k != 2 else 3, call=2, ret=3, key=f"k{k}"),
        ]
    serial = check(ops, KV)
    parallel = check(ops, KV, jobs=2)
    assert parallel.verdict is serial.verdict is Verdict.NOT_LINEARIZABLE
    assert [(k.key, k.verdict) for k in parallel.keys] == [(k.key, k.verdict) for k in serial.keys]
    assert parallel.violations[0].explain() == serial.violations[0].explain()


def test_parallel_jobs_report_bad_input_as_such() -> None:
    ops = [op(0, "put", 1, call=0, ret=1, key="a"), op(1, "frob", 1, 1, call=0, ret=1, key="b")]
    with pytest.raises(HistoryError, match="line 2: the kv model has no operation 'frob'"):
        check(ops, KV, jobs=2)


def test_transactions_partition_by_connected_keys() -> None:
    def txn(i: int, steps: list[tuple[str, str, object]], *, call: float, ret: float) -> Operation:
        value = tuple(steps)
        return op(i, "txn", tuple((f, k, None if f == "r" else v) for f, k, v in value), value,
                  call=call, ret=ret)  # fmt: skip

    ops = [
        txn(0, [("w", "x", 1), ("w", "y", 1)], call=0, ret=1),
        txn(1, [("r", "x", 1), ("r", "y", 1)], call=2, ret=3),
        txn(2, [("w", "z", 5)], call=0, ret=1),
        op(3, "get", None, 5, call=2, ret=3, key="z"),
    ]
    result = check(ops, TXN)
    assert result.verdict is Verdict.LINEARIZABLE
    assert sorted(str(k.key) for k in result.keys) == ["('x', 'y')", "z"]
    # A torn read: x from after the transaction, y from before it.
    torn = [ops[0], txn(1, [("r", "x", 1), ("r", "y", None)], call=2, ret=3)]
    assert not is_linearizable(torn, TXN)


def test_model_rejects_unknown_operations_with_the_line() -> None:
    with pytest.raises(HistoryError, match="line 1: the register model has no operation 'frob'"):
        check([op(0, "frob", 1, 1, call=0, ret=1)], REGISTER)
    with pytest.raises(HistoryError, match=r"line 1: cas needs \[old new\]"):
        check([op(0, "cas", 5, 5, call=0, ret=1)], CAS_REGISTER)
    with pytest.raises(HistoryError, match="the cas-register model has cas"):
        check([op(0, "cas", (1, 2), (1, 2), call=0, ret=1)], REGISTER)


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
        get_model("stack")


def test_ret_infinity_for_unknown() -> None:
    assert op(0, "write", 1, call=0).ret == math.inf
