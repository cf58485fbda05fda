"""Sequential specifications that the linearizability checker tests histories against.

Theory of operation
-------------------
A model is the object as it would behave on one machine with no concurrency: a start
state and a transition ``step(state, op) -> (ok, new_state)``. ``ok`` says whether ``op``,
applied in ``state``, could have produced the output the client saw. The checker searches
for an order of the operations in which every step is ok, so a model never needs to know
about time or processes.

States must be hashable and compare by value: the checker memoizes (set of linearized
operations, state) pairs, and two equal states reached in different ways must collide.

Operations with an unknown outcome (``op.known`` is False) have no output, so a model must
accept them in any state and only apply their effect (a cas that does not match is then a
no-op). Checkers also drop unknown operations that are read-only, since they can neither
constrain nor change anything; a model opts in by implementing ``is_read_only``.

Every model here describes *one* key: the checker partitions a history by key and checks
each part on its own (linearizability is compositional), which is what keeps many-key
histories fast. So the "kv" model is the register model, applied per key.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from paxosd.check.history import HistoryError, Operation, Value, show_value

State = Hashable

READS = frozenset({"read", "get"})
WRITES = frozenset({"write", "put"})


class Model(Protocol):
    """A sequential specification of one key."""

    @property
    def name(self) -> str: ...

    def init(self) -> State: ...

    def step(self, state: State, op: Operation) -> tuple[bool, State]: ...


@runtime_checkable
class ReadOnlyAware(Protocol):
    """Optional: lets the checker drop unknown-outcome operations that change nothing."""

    def is_read_only(self, op: Operation) -> bool: ...


def _cas_args(op: Operation) -> tuple[Value, Value]:
    value = op.input
    if not isinstance(value, tuple) or len(value) != 2:
        raise HistoryError(f"cas needs [old new], got {show_value(value)}", op.invoke_line)
    return value[0], value[1]


def _no_such_op(model: str, op: Operation) -> HistoryError:
    return HistoryError(f"the {model} model has no operation {op.f!r}", op.invoke_line)


@dataclass(frozen=True, slots=True)
class RegisterModel:
    """A register: ``read``/``get`` return the value, ``write``/``put`` set it, ``delete``
    resets it to ``initial``, ``cas [old new]`` sets ``new`` iff the value is ``old``.

    A cas that completed ``ok`` must have matched; one that ``fail``ed was dropped by the
    parser (it did not happen), exactly as Jepsen's etcd test records a mismatch. The etcd
    register starts as nil (None), and so does a missing key in paxosd's kv store.
    """

    name: str = "register"
    initial: Value = None

    def init(self) -> State:
        return self.initial

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        f = op.f
        if f in READS:
            return (not op.known or op.output == state), state
        if f in WRITES:
            return True, op.input
        if f == "cas":
            old, new = _cas_args(op)
            if state == old:
                return True, new
            return not op.known, state
        if f == "delete":
            return True, self.initial
        raise _no_such_op(self.name, op)

    def is_read_only(self, op: Operation) -> bool:
        return op.f in READS


@dataclass(frozen=True, slots=True)
class AppendModel:
    """A string per key: ``get`` returns it, ``put`` replaces it, ``append`` concatenates.

    This is the model of the ``kv`` test vectors: a key starts as the empty string and a
    ``get`` returns every appended piece, in order, with no separator.
    """

    name: str = "append"
    initial: str = ""

    def init(self) -> State:
        return self.initial

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        f = op.f
        if f in READS:
            return (not op.known or op.output == state), state
        if f in WRITES:
            return True, op.input
        if f == "append":
            if not isinstance(op.input, str) or not isinstance(state, str):
                raise HistoryError(
                    f"append needs a string, got {show_value(op.input)}", op.invoke_line
                )
            return True, state + op.input
        if f == "delete":
            return True, self.initial
        raise _no_such_op(self.name, op)

    def is_read_only(self, op: Operation) -> bool:
        return op.f in READS


REGISTER = RegisterModel("register")
KV = RegisterModel("kv")
APPEND = AppendModel("append")

MODELS: dict[str, Model] = {"register": REGISTER, "kv": KV, "append": APPEND}


def get_model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (choose from {', '.join(MODELS)})") from None


def guess_model(ops: Sequence[Operation]) -> Model:
    """The model a history most likely means: ``append`` if anything appends, ``kv`` if
    it uses keys or kv verbs, else the single ``register``."""
    fs = {op.f for op in ops}
    if "append" in fs:
        return APPEND
    if any(op.key is not None for op in ops) or fs & {"get", "put", "delete"}:
        return KV
    return REGISTER
