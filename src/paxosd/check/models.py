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
no-op).

Three optional methods make the search faster; each must be exact, not a guess:

- ``is_read_only(op)``: True if ``op`` never changes the state (in every state where it
  is accepted). The checker drops unknown read-only operations and takes accepted reads
  greedily, without branching.
- ``prune_unknown(ops)``: the operations of one partition without unknown-outcome
  operations that cannot change the verdict (say, an unknown write of a value that no read
  ever returned).
- ``partition(ops)``: split a history into independent objects, as (label, operations)
  pairs. The default is one partition per ``op.key``.

Models here: ``register`` (read/write), ``cas-register`` (read/write/cas), ``kv`` (a
cas-register per key, with get/put/delete/cas: paxosd's kv store), ``append`` (a string per
key with get/put/append), ``set``, ``queue`` (FIFO) and ``txn`` (multi-key transactions
of reads and writes, applied atomically). docs/checker.md shows each one's operations and
how to write a new model.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from paxosd.check.history import HistoryError, Operation, Value, show_value

State = Hashable

READS = frozenset({"read", "get"})
WRITES = frozenset({"write", "put"})


class Model(Protocol):
    """A sequential specification of one object (one key, for most models)."""

    @property
    def name(self) -> str: ...

    def init(self) -> State: ...

    def step(self, state: State, op: Operation) -> tuple[bool, State]: ...


def partition(ops: Sequence[Operation], model: Model) -> list[tuple[Hashable, list[Operation]]]:
    """The model's independent objects, in order of first appearance (default: by key)."""
    split = getattr(model, "partition", None)
    if split is not None:
        return list(split(ops))
    parts: dict[Hashable, list[Operation]] = {}
    for op in ops:
        parts.setdefault(op.key, []).append(op)
    return list(parts.items())


def _cas_args(op: Operation) -> tuple[Value, Value]:
    value = op.input
    if not isinstance(value, tuple) or len(value) != 2:
        raise HistoryError(f"cas needs [old new], got {show_value(value)}", op.invoke_line)
    return value[0], value[1]


def _no_such_op(model: str, op: Operation, hint: str = "") -> HistoryError:
    return HistoryError(f"the {model} model has no operation {op.f!r}{hint}", op.invoke_line)


def _cas_failed(op: Operation) -> bool:
    """A completed cas whose output says it did not swap (``false``). Jepsen and paxosd
    record that as ``fail`` instead, and then it is dropped; other recorders say false."""
    return op.known and op.output is False


# ---------------------------------------------------------------------------- registers


@dataclass(frozen=True, slots=True)
class RegisterModel:
    """A register: ``read``/``get`` return the value, ``write``/``put`` set it. With
    ``cas``, also ``cas [old new]`` (sets ``new`` iff the value is ``old``) and ``delete``
    (back to ``initial``).

    A cas that completed ``ok`` must have matched, unless its output is ``false`` (it did
    not swap, so the value was not ``old``); one that ``fail``ed was dropped by the parser
    (it did not happen), exactly as Jepsen's etcd test records a mismatch. The etcd
    register starts as nil (None), and so does a missing key in paxosd's kv store.
    """

    name: str = "cas-register"
    initial: Value = None
    cas: bool = True

    def init(self) -> State:
        return self.initial

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        f = op.f
        if f in READS:
            return (not op.known or op.output == state), state
        if f in WRITES:
            return True, op.input
        if self.cas:
            if f == "cas":
                old, new = _cas_args(op)
                if _cas_failed(op):
                    return state != old, state
                if state == old:
                    return True, new
                return not op.known, state
            if f == "delete":
                return True, self.initial
        hint = " (the cas-register model has cas)" if f == "cas" else ""
        raise _no_such_op(self.name, op, hint)

    def is_read_only(self, op: Operation) -> bool:
        return op.f in READS or (op.f == "cas" and _cas_failed(op))

    def _needed(self, op: Operation) -> tuple[bool, Value]:
        """(True, v) if completed ``op`` is accepted only when the value is v."""
        if op.f in READS:
            return True, op.output
        if op.f == "cas" and self.cas and _is_pair(op.input) and not _cas_failed(op):
            return True, op.input[0]
        return False, None

    def reachable(self, state: State, op: Operation) -> bool:
        """Whether ``op`` could be accepted in a state reached from ``state`` without any of
        its `enablers`: a read of v (or a cas from v) only if the value is v already."""
        needed, value = self._needed(op)
        return not needed or bool(state == value)

    def enablers(self, ops: Sequence[Operation]) -> list[list[int] | None]:
        """Per operation, the operations (indices) that can set the value it needs."""
        setters: dict[Value, list[int]] = {}
        unhashable: list[int] = []
        for j, other in enumerate(ops):
            effect = self._sets(other)
            if effect is _NOTHING:
                continue
            try:
                setters.setdefault(effect, []).append(j)
            except TypeError:
                unhashable.append(j)
        out: list[list[int] | None] = []
        for op in ops:
            needed, value = self._needed(op)
            if not needed or unhashable:
                out.append(None)
                continue
            try:
                out.append(setters.get(value, _NONE))
            except TypeError:
                out.append(None)
        return out

    def _sets(self, op: Operation) -> Value:
        """The value ``op`` may set, or `_NOTHING`."""
        if op.f in WRITES:
            return op.input
        if op.f == "cas" and _is_pair(op.input) and not _cas_failed(op):
            return op.input[1]
        if op.f == "delete":
            return self.initial
        return _NOTHING

    def prune_unknown(self, ops: Sequence[Operation]) -> list[Operation]:
        """Drop unknown writes (and cas, deletes) of values nobody observed.

        Why that is exact: take a linearization that uses such a write of v. Until the next
        operation that sets the value regardless of it (a write or delete), every
        operation sees v; a completed one that accepts v either read v or was a cas from
        v, both of which would have observed v, so there are only unknown no-ops there.
        Drop the write and those no-ops: every other step sees what it saw before.
        A completed cas that says it did not swap observes "anything but old", which
        this argument does not cover, so then nothing is pruned.
        """
        if any(op.f == "cas" and _cas_failed(op) for op in ops):
            return list(ops)
        observed = {op.output for op in ops if op.known and op.f in READS}
        kept = list(ops)
        while True:  # dropping an unknown cas may leave its "old" unobserved: repeat
            cas_old = {op.input[0] for op in kept if op.f == "cas" and _is_pair(op.input)}
            seen = observed | cas_old
            pruned = [op for op in kept if op.known or not self._prunable(op, seen)]
            if len(pruned) == len(kept):
                return kept
            kept = pruned

    def _effect(self, op: Operation) -> Value:
        if op.f in WRITES:
            return op.input
        if op.f == "cas" and _is_pair(op.input):
            return op.input[1]
        return self.initial

    def _prunable(self, op: Operation, seen: set[Value]) -> bool:
        if op.f not in WRITES and op.f not in ("cas", "delete"):
            return False
        try:
            return self._effect(op) not in seen
        except TypeError:  # an unhashable value: keep it
            return False


_NOTHING = object()
_NONE: list[int] = []


def _is_pair(value: Value) -> bool:
    return isinstance(value, tuple) and len(value) == 2


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

    def reachable(self, state: State, op: Operation) -> bool:
        """Appends only extend the string: a read of s can still be met from ``state``
        without a put or delete only if ``state`` is a prefix of s."""
        if op.f not in READS or not isinstance(op.output, str) or not isinstance(state, str):
            return True
        return op.output.startswith(state)

    def enablers(self, ops: Sequence[Operation]) -> list[list[int] | None]:
        """Per read of s, the puts it can start from (a put of a prefix of s) and deletes."""
        resets = [
            (j, other.input if other.f in WRITES else "")
            for j, other in enumerate(ops)
            if other.f == "delete" or other.f in WRITES
        ]
        out: list[list[int] | None] = []
        for op in ops:
            text = op.output
            if op.f not in READS or not isinstance(text, str):
                out.append(None)
                continue
            out.append(
                [j for j, start in resets if isinstance(start, str) and text.startswith(start)]
            )
        return out

    def prune_unknown(self, ops: Sequence[Operation]) -> list[Operation]:
        """Drop unknown appends whose piece no read contains, and unknown puts of a string
        no read starts with. Exact for the same reason as for registers: until the next
        put, every state after the dropped operation contains its piece (or starts with its
        string), so no completed read happened there; appends are accepted anywhere."""
        reads = [op.output for op in ops if op.known and op.f in READS]
        texts = [r for r in reads if isinstance(r, str)]
        if len(texts) != len(reads):
            return list(ops)

        def matters(op: Operation) -> bool:
            piece = op.input
            if not isinstance(piece, str) or not piece:
                return True
            if op.f == "append":
                return any(piece in r for r in texts)
            if op.f in WRITES:
                return any(r.startswith(piece) for r in texts)
            return True

        return [op for op in ops if op.known or matters(op)]


# ---------------------------------------------------------------------------- set and queue


@dataclass(frozen=True, slots=True)
class SetModel:
    """A set per key: ``add x``, ``remove x``, ``contains x`` (output true/false) and
    ``read`` (output: every element, in any order). ``remove`` with a true/false output
    also says whether x was there."""

    name: str = "set"

    def init(self) -> State:
        return frozenset()

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        assert isinstance(state, frozenset)
        f, x = op.f, op.input
        if f == "add":
            return True, state | {x}
        if f == "remove":
            if op.known and isinstance(op.output, bool):
                return op.output == (x in state), state - {x}
            return True, state - {x}
        if f == "contains":
            return (not op.known or op.output == (x in state)), state
        if f == "read":
            if not op.known:
                return True, state
            if not isinstance(op.output, tuple | frozenset):
                raise HistoryError(
                    f"a set read returns a list, got {show_value(op.output)}", op.invoke_line
                )
            return frozenset(op.output) == state, state
        raise _no_such_op(self.name, op)

    def is_read_only(self, op: Operation) -> bool:
        return op.f in ("contains", "read")

    @staticmethod
    def _presence(op: Operation) -> bool | None:
        """Whether completed ``op`` needs its element present (True) or absent (False)."""
        if op.known and op.f in ("contains", "remove") and isinstance(op.output, bool):
            return op.output
        return None

    def reachable(self, state: State, op: Operation) -> bool:
        """Without an add (or remove) of x left, x stays absent (or present)."""
        needed = self._presence(op)
        return needed is None or (op.input in state) == needed  # type: ignore[operator]

    def enablers(self, ops: Sequence[Operation]) -> list[list[int] | None]:
        """Per contains/remove that says whether x was there: the adds (or removes) of x."""
        changes: dict[tuple[str, Value], list[int]] = {}
        for j, other in enumerate(ops):
            if other.f in ("add", "remove"):
                with contextlib.suppress(TypeError):
                    changes.setdefault((other.f, other.input), []).append(j)
        out: list[list[int] | None] = []
        for op in ops:
            needed = self._presence(op)
            try:
                found = (
                    None
                    if needed is None
                    else changes.get(("add" if needed else "remove", op.input), _NONE)
                )
            except TypeError:
                found = None
            out.append(found)
        return out

    def prune_unknown(self, ops: Sequence[Operation]) -> list[Operation]:
        """Drop unknown adds of an element no completed operation ever saw present."""
        present: set[Value] = set()
        for op in ops:
            if not op.known:
                continue
            if op.f == "read" and isinstance(op.output, tuple | frozenset):
                present.update(op.output)
            elif op.f in ("contains", "remove") and op.output is True:
                present.add(op.input)
            elif op.f == "remove" and not isinstance(op.output, bool):
                present.add(op.input)  # a remove that does not say: keep every add of it
        return [op for op in ops if op.known or op.f != "add" or op.input in present]


@dataclass(frozen=True, slots=True)
class QueueModel:
    """A FIFO queue per key: ``enqueue v``; ``dequeue`` returns the oldest element, or null
    when the queue is empty. An unknown dequeue takes the oldest element, if any."""

    name: str = "queue"

    def init(self) -> State:
        return ()

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        assert isinstance(state, tuple)
        if op.f == "enqueue":
            return True, (*state, op.input)
        if op.f == "dequeue":
            if not op.known:
                return True, state[1:]
            if op.output is None:
                return not state, state
            return bool(state) and state[0] == op.output, state[1:]
        raise _no_such_op(self.name, op)

    def prune_unknown(self, ops: Sequence[Operation]) -> list[Operation]:
        """Drop unknown enqueues of a value no completed dequeue returned: while it waits in
        the queue, no completed dequeue reached it (it would have returned it) and none
        found the queue empty, so dropping it (and an unknown dequeue that took it)
        changes no completed answer."""
        dequeued = {op.output for op in ops if op.known and op.f == "dequeue"}
        return [op for op in ops if op.known or op.f != "enqueue" or op.input in dequeued]


# ---------------------------------------------------------------------------- transactions


def _micro_ops(op: Operation, value: Value) -> tuple[tuple[str, Value, Value], ...]:
    """A transaction's reads and writes: ``[["r", k, v], ["w", k, v], ...]``."""
    if not isinstance(value, tuple):
        raise HistoryError(
            f"a txn is a list of [r key value] / [w key value], got {show_value(value)}",
            op.invoke_line,
        )
    out = []
    for micro in value:
        if not isinstance(micro, tuple) or len(micro) != 3:
            raise HistoryError(
                f"each step of a txn is [r key value] or [w key value], got {show_value(micro)}",
                op.invoke_line,
            )
        f = str(micro[0]).removeprefix(":")
        if f not in ("r", "w"):
            raise HistoryError(f"a txn step is r or w, not {micro[0]!r}", op.invoke_line)
        out.append((f, micro[1], micro[2]))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TxnModel:
    """Multi-key transactions of reads and writes, applied atomically.

    ``txn`` input: ``[["r", "x", null], ["w", "y", 2]]``; ok output: the same list with
    every read's value filled in (``["r", "x", 1]``). Inside a transaction a read sees
    the transaction's own earlier writes. Single-key ``read``/``get`` (output: the value)
    and ``write``/``put`` (input: the value) with a ``key`` are one-step transactions. A
    missing key reads as null. Partitions are the connected groups of keys that
    transactions touch together.
    """

    name: str = "txn"

    def init(self) -> State:
        return ()

    def steps(self, op: Operation) -> tuple[tuple[str, Value, Value], ...]:
        if op.f == "txn":
            return _micro_ops(op, op.input)
        if op.f in READS:
            return (("r", op.key, op.output),)
        if op.f in WRITES:
            return (("w", op.key, op.input),)
        raise _no_such_op(self.name, op)

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        assert isinstance(state, tuple)
        values = dict(state)
        if op.f == "txn":
            planned = _micro_ops(op, op.input)
            seen = _micro_ops(op, op.output) if op.known else planned
            if len(seen) != len(planned):
                raise HistoryError("a txn's output must list the same steps", op.invoke_line)
        else:
            planned = seen = self.steps(op)
        for (f, key, value), (_, _, observed) in zip(planned, seen, strict=True):
            if f == "w":
                values[key] = value
            elif op.known and values.get(key) != observed:
                return False, state
        return True, tuple(sorted(values.items(), key=lambda item: repr(item[0])))

    def is_read_only(self, op: Operation) -> bool:
        try:
            return all(f == "r" for f, _, _ in self.steps(op))
        except HistoryError:
            return False

    def keys(self, op: Operation) -> list[Value]:
        return [key for _, key, _ in self.steps(op)]

    def partition(self, ops: Sequence[Operation]) -> list[tuple[Hashable, list[Operation]]]:
        """Connected groups of keys (union-find over the keys each operation touches)."""
        parent: dict[Value, Value] = {}

        def find(k: Value) -> Value:
            while parent.setdefault(k, k) != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        touched = [self.keys(op) for op in ops]
        for keys in touched:
            for other in keys[1:]:
                parent[find(other)] = find(keys[0])
        groups: dict[Value, list[Operation]] = {}
        members: dict[Value, list[Value]] = {}
        for op, keys in zip(ops, touched, strict=True):
            root = find(keys[0]) if keys else None
            groups.setdefault(root, []).append(op)
        for k in parent:
            members.setdefault(find(k), []).append(k)
        out: list[tuple[Hashable, list[Operation]]] = []
        for root, group in groups.items():
            keys = members.get(root, [])
            label = keys[0] if len(keys) == 1 else tuple(sorted(keys, key=repr))
            out.append((label, group))
        return out


# ---------------------------------------------------------------------------- registry

REGISTER = RegisterModel("register", cas=False)
CAS_REGISTER = RegisterModel("cas-register")
KV = RegisterModel("kv")
APPEND = AppendModel("append")
SET = SetModel()
QUEUE = QueueModel()
TXN = TxnModel()

MODELS: dict[str, Model] = {
    "register": REGISTER,
    "cas-register": CAS_REGISTER,
    "kv": KV,
    "append": APPEND,
    "set": SET,
    "queue": QUEUE,
    "txn": TXN,
}

DESCRIPTIONS = {
    "register": "one register: read, write",
    "cas-register": "one register: read, write, cas [old new], delete",
    "kv": "a cas-register per key: get, put, cas, delete (paxosd's kv store)",
    "append": 'a string per key, from "": get, put, append',
    "set": "a set per key: add, remove, contains, read",
    "queue": "a FIFO queue per key: enqueue, dequeue",
    "txn": "multi-key transactions: txn [[r k v] [w k v] ...], applied atomically",
}


def get_model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (choose from {', '.join(MODELS)})") from None


def guess_model(ops: Sequence[Operation]) -> Model:
    """The model a history most likely means, from the operations' names (and keys)."""
    fs = {op.f for op in ops}
    if "txn" in fs:
        return TXN
    if fs & {"enqueue", "dequeue"}:
        return QUEUE
    if fs & {"add", "remove", "contains"}:
        return SET
    if "append" in fs:
        return APPEND
    if any(op.key is not None for op in ops) or fs & {"get", "put", "delete"}:
        return KV
    if "cas" in fs:
        return CAS_REGISTER
    return REGISTER


def load_model(spec: str) -> Model:
    """A model of your own: ``path/to/file.py:ClassName`` or ``package.module:ClassName``.

    The class is instantiated with no arguments; it needs ``init()`` and ``step(state,
    op)``, and its ``name`` defaults to the class name.
    """
    where, _, class_name = spec.rpartition(":")
    if not where or not class_name:
        raise ValueError(f"a model is a name or FILE.py:CLASS, not {spec!r}")
    module: Any
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise ValueError(f"no such model file: {where}")
            module_name = f"paxosd_user_model_{abs(hash(str(path.resolve())))}"
            loader = importlib.util.spec_from_file_location(module_name, path)
            if loader is None or loader.loader is None:
                raise ValueError(f"cannot load {where} as Python")
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot load {where}: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"{where} has no {class_name}")
    try:
        model = cls()
    except Exception as exc:
        raise ValueError(f"cannot create {class_name}(): {type(exc).__name__}: {exc}") from None
    for method in ("init", "step"):
        if not callable(getattr(model, method, None)):
            raise ValueError(f"{class_name} has no {method}() method; a model needs init and step")
    if not isinstance(getattr(model, "name", None), str):
        try:
            model.name = class_name.lower()
        except AttributeError:
            raise ValueError(f"{class_name} needs a name (a string attribute)") from None
    return model


__all__ = [
    "APPEND",
    "CAS_REGISTER",
    "DESCRIPTIONS",
    "KV",
    "MODELS",
    "QUEUE",
    "REGISTER",
    "SET",
    "TXN",
    "AppendModel",
    "Model",
    "QueueModel",
    "RegisterModel",
    "SetModel",
    "State",
    "TxnModel",
    "get_model",
    "guess_model",
    "load_model",
    "partition",
]
