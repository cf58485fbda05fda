"""Property tests: the checker passes what is linearizable by construction, fails what
cannot be, and agrees with a brute-force reading of the definition on tiny histories."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxosd.check.history import Operation, Value
from paxosd.check.linearizability import Verdict, check
from paxosd.check.models import APPEND, KV, REGISTER, Model

from ._support import brute_force_linearizable

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

IMPOSSIBLE = {"register": 99, "kv": 99, "append": "!"}
"""A read result no operation in the generated histories can ever produce."""


def _register_call() -> st.SearchStrategy[tuple[str, Value]]:
    small = st.sampled_from([None, 0, 1, 2])
    return st.one_of(
        st.just(("read", None)),
        st.tuples(st.just("write"), st.integers(0, 2)),
        st.tuples(st.just("cas"), st.tuples(small, small)),
    )


def _append_call() -> st.SearchStrategy[tuple[str, Value]]:
    piece = st.sampled_from(["a", "b", "ab"])
    return st.one_of(
        st.just(("get", None)),
        st.tuples(st.just("append"), piece),
        st.tuples(st.just("put"), piece),
    )


CALLS = {"register": _register_call, "kv": _register_call, "append": _append_call}
MODELS: dict[str, Model] = {"register": REGISTER, "kv": KV, "append": APPEND}
READS = {"read", "get"}


@dataclass(frozen=True, slots=True)
class Plan:
    """One operation before outcomes are known: when it runs and when it takes effect."""

    f: str
    arg: Value
    key: Value
    call: float
    ret: float
    point: float  # the linearization point, inside [call, ret]
    fate: str  # "ok", "unknown-applied", "unknown-skipped"


@st.composite
def plans(draw: st.DrawFn, model: str, max_ops: int, sequential: bool = False) -> list[Plan]:
    n = draw(st.integers(1, max_ops))
    keys = ["x", "y"] if model == "kv" else [None]
    out: list[Plan] = []
    for i in range(n):
        f, arg = draw(CALLS[model]())
        if sequential:
            call, ret = 2.0 * i, 2.0 * i + 1
        else:
            call = float(draw(st.integers(0, 12)))
            ret = call + draw(st.integers(0, 6))
        point = call + draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])) * (ret - call)
        fate = draw(st.sampled_from(["ok", "ok", "ok", "unknown-applied", "unknown-skipped"]))
        out.append(Plan(f, arg, draw(st.sampled_from(keys)), call, ret, point, fate))
    return out


def realize(plan: list[Plan], model: Model) -> list[Operation]:
    """Apply the plans in linearization-point order to learn each output. Completed cas
    operations that would not match are left out: a real client would see them fail."""
    return _realize(plan, model)[0]


def _realize(plan: list[Plan], model: Model) -> tuple[list[Operation], dict[Value, Value]]:
    """The operations, and the final state of each key."""
    states: dict[Value, Value] = {}
    ops: dict[int, Operation] = {}
    for i in sorted(range(len(plan)), key=lambda i: (plan[i].point, i)):
        p = plan[i]
        probe = Operation(i, i, p.f, p.key, p.arg, None, p.call, math.inf, False)
        state = states.get(p.key, model.init())
        if p.fate == "unknown-skipped":
            ops[i] = probe
            continue
        if p.f in READS:
            output: Value = state
        elif p.f == "cas":
            if state != p.arg[0] and p.fate == "ok":
                continue  # failed cas: dropped, as the parser drops :fail
            output = p.arg
        else:
            output = p.arg
        _, states[p.key] = model.step(state, probe)
        if p.fate == "ok":
            ops[i] = Operation(i, i, p.f, p.key, p.arg, output, p.call, p.ret, True)
        else:
            ops[i] = probe
    return [ops[i] for i in sorted(ops)], states


def model_and_plans(
    max_ops: int, sequential: bool = False
) -> st.SearchStrategy[tuple[str, list[Plan]]]:
    return st.sampled_from(list(MODELS)).flatmap(
        lambda m: st.tuples(st.just(m), plans(m, max_ops, sequential))
    )


@SETTINGS
@given(model_and_plans(max_ops=8, sequential=True))
def test_sequential_histories_pass(case: tuple[str, list[Plan]]) -> None:
    name, plan = case
    assert check(realize(plan, MODELS[name]), MODELS[name]).verdict is Verdict.LINEARIZABLE


@SETTINGS
@given(model_and_plans(max_ops=14))
def test_concurrent_histories_with_a_linearization_pass(case: tuple[str, list[Plan]]) -> None:
    name, plan = case
    assert check(realize(plan, MODELS[name]), MODELS[name]).verdict is Verdict.LINEARIZABLE


@SETTINGS
@given(model_and_plans(max_ops=14), st.data())
def test_an_impossible_read_fails(case: tuple[str, list[Plan]], data: st.DataObject) -> None:
    name, plan = case
    model = MODELS[name]
    ops, states = _realize(plan, model)
    # One more read, after every linearization point, so there is always a read to break.
    key = data.draw(st.sampled_from(["x", "y"])) if name == "kv" else None
    call = max(p.point for p in plan) + 1
    final = states.get(key, model.init())
    read_f = "read" if name == "register" else "get"
    ops.append(Operation(len(plan), "reader", read_f, key, None, final, call, call + 1, True))
    reads = [o for o in ops if o.known and o.f in READS]
    victim = data.draw(st.sampled_from(reads))
    mutated = [replace(o, output=IMPOSSIBLE[name]) if o is victim else o for o in ops]
    result = check(mutated, model)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    (violation,) = result.violations
    assert violation.key == victim.key
    _assert_prefix_replays(violation.prefix, violation.state, model)


def _assert_prefix_replays(prefix: tuple[Operation, ...], final: Value, model: Model) -> None:
    """The reported prefix is itself a legal run that respects real time."""
    state = model.init()
    for i, o in enumerate(prefix):
        ok, state = model.step(state, o)
        assert ok
        assert all(not (later.ret < o.call) for later in prefix[i + 1 :])
    assert state == final


@st.composite
def random_history(draw: st.DrawFn, model: str) -> list[Operation]:
    """Arbitrary tiny histories: outputs are drawn, not computed, so both verdicts occur.
    Integer times make touching intervals common, to test the tie rule too."""
    n = draw(st.integers(1, 5))
    values = [None, 0, 1] if model == "register" else ["", "a", "ab", "b"]
    ops: list[Operation] = []
    for i in range(n):
        f, arg = draw(CALLS[model]())
        call = float(draw(st.integers(0, 6)))
        known = draw(st.integers(0, 3)) > 0
        ret = call + draw(st.integers(0, 4)) if known else math.inf
        output = draw(st.sampled_from(values)) if f in READS else arg
        ops.append(Operation(i, i, f, None, arg, output if known else None, call, ret, known))
    return ops


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(["register", "append"]).flatmap(
        lambda m: st.tuples(st.just(m), random_history(m))
    )
)
def test_agrees_with_brute_force(case: tuple[str, list[Operation]]) -> None:
    name, ops = case
    model = MODELS[name]
    verdict = check(ops, model).verdict
    assert verdict is not Verdict.UNKNOWN
    assert (verdict is Verdict.LINEARIZABLE) == brute_force_linearizable(ops, model)


def test_brute_force_oracle_can_say_no() -> None:
    """The oracle is only useful if it rejects something."""
    stale = [
        Operation(0, 0, "write", None, 1, 1, 0.0, 1.0, True),
        Operation(1, 1, "read", None, None, None, 2.0, 3.0, True),
    ]
    assert not brute_force_linearizable(stale, REGISTER)
    assert brute_force_linearizable(stale[:1], REGISTER)
