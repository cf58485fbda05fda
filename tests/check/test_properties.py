"""Property tests: the checker passes what is linearizable by construction, fails what
cannot be, and agrees with a brute-force reading of the definition on tiny histories."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxosd.check.history import Operation, Value
from paxosd.check.linearizability import Verdict, check
from paxosd.check.models import APPEND, CAS_REGISTER, KV, QUEUE, REGISTER, SET, TXN, Model

from ._support import brute_force_linearizable

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

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
MODELS: dict[str, Model] = {"register": CAS_REGISTER, "kv": KV, "append": APPEND}
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


# ---------------------------------------------------------------------------- brute force

BRUTE_FORCE_HISTORIES = 3000
"""Random tiny histories per run, spread over the models, each compared with the oracle."""

BRUTE_FORCE_SEED = 20_260_101


def _random_call(rng: random.Random, model: str) -> tuple[str, Value, Value]:
    """(function, input, a plausible output) for each model, from tiny value sets so that
    both verdicts are common."""
    small: list[Value] = [None, 0, 1]
    roll = rng.random()
    if model == "cas-register":
        if roll < 0.4:
            return "read", None, rng.choice(small)
        if roll < 0.7:
            v = rng.randrange(2)
            return "write", v, v
        pair = (rng.choice(small), rng.choice(small))
        return "cas", pair, pair if rng.random() < 0.7 else False
    if model == "append":
        piece = rng.choice(["a", "b"])
        if roll < 0.4:
            return "get", None, rng.choice(["", "a", "ab", "b", "ba"])
        return ("append" if roll < 0.8 else "put"), piece, piece
    if model == "kv":
        if roll < 0.4:
            return "get", None, rng.choice(small)
        if roll < 0.7:
            v = rng.randrange(2)
            return "put", v, v
        if roll < 0.8:
            return "delete", None, None
        pair = (rng.choice(small), rng.randrange(2))
        return "cas", pair, pair
    if model == "set":
        x = rng.randrange(2)
        if roll < 0.3:
            return "add", x, x
        if roll < 0.5:
            return "remove", x, rng.choice([None, True, False])
        if roll < 0.8:
            return "contains", x, rng.random() < 0.5
        return "read", None, rng.choice([(), (0,), (1,), (0, 1)])
    if model == "queue":
        if roll < 0.5:
            v = rng.randrange(2)
            return "enqueue", v, v
        return "dequeue", None, rng.choice(small)
    assert model == "txn"
    steps = [
        (rng.choice("rw"), rng.choice("xy"), rng.randrange(2)) for _ in range(rng.randint(1, 2))
    ]
    planned = tuple((f, k, None if f == "r" else v) for f, k, v in steps)
    seen = tuple((f, k, rng.choice(small) if f == "r" else v) for f, k, v in steps)
    return "txn", planned, seen


BRUTE_MODELS: dict[str, Model] = {
    "cas-register": CAS_REGISTER,
    "append": APPEND,
    "kv": KV,
    "set": SET,
    "queue": QUEUE,
    "txn": TXN,
}
KEYED = {"kv", "append", "set", "queue"}


def random_history(rng: random.Random, model: str) -> list[Operation]:
    """An arbitrary tiny history: outputs are drawn, not computed, so both verdicts occur.
    Integer times make touching intervals common, to test the tie rule too."""
    keys: list[Value] = ["x", "y"] if model in KEYED else [None]
    ops: list[Operation] = []
    for i in range(rng.randint(1, 5)):
        f, arg, output = _random_call(rng, model)
        call = float(rng.randint(0, 6))
        known = rng.random() < 0.75
        ret = call + rng.randint(0, 4) if known else math.inf
        key = rng.choice(keys)
        ops.append(Operation(i, i, f, key, arg, output if known else None, call, ret, known))
    return ops


def test_agrees_with_brute_force_on_thousands_of_histories() -> None:
    """Every model, every reduction: the verdict is the definition's. Half the histories
    go to the registers, which have every reduction (greedy reads, pruning, enablers)."""
    rng = random.Random(BRUTE_FORCE_SEED)
    names = list(BRUTE_MODELS)
    counts = dict.fromkeys(names, 0)
    verdicts = {True: 0, False: 0}
    for number in range(BRUTE_FORCE_HISTORIES):
        name = rng.choice(["cas-register", "append"] if number % 2 else names)
        model = BRUTE_MODELS[name]
        ops = random_history(rng, name)
        expected = brute_force_linearizable(ops, model, keyed=name in KEYED)
        verdict = check(ops, model).verdict
        assert verdict is not Verdict.UNKNOWN
        assert (verdict is Verdict.LINEARIZABLE) == expected, (
            f"history {number} (seed {BRUTE_FORCE_SEED}, model {name}): checker says "
            f"{verdict}, the definition says {expected}: {ops}"
        )
        counts[name] += 1
        verdicts[expected] += 1
    assert min(counts.values()) > 100 and min(verdicts.values()) > 500  # a real spread


def test_brute_force_oracle_can_say_no() -> None:
    """The oracle is only useful if it rejects something."""
    stale = [
        Operation(0, 0, "write", None, 1, 1, 0.0, 1.0, True),
        Operation(1, 1, "read", None, None, None, 2.0, 3.0, True),
    ]
    assert not brute_force_linearizable(stale, REGISTER)
    assert brute_force_linearizable(stale[:1], REGISTER)
