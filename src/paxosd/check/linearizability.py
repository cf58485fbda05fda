"""Linearizability checking: Wing & Gong's search with Lowe's memoization (as in Porcupine).

Theory of operation
-------------------
A history is linearizable if each operation can be given a single instant inside its
interval [call, ret] such that, taken in the order of those instants, the operations are
a legal run of the sequential model. We search for such an order.

1. **Partition.** Linearizability is compositional (Herlihy & Wing): a history is
   linearizable iff each key's sub-history is. Every key is checked on its own, which turns
   one hopeless search over many keys into many small ones.

2. **Events.** Each operation contributes a call event and a return event, sorted by time
   (a call sorts before a return at the same time, so touching intervals count as
   concurrent, the permissive reading). They form a doubly linked list.

3. **Search** (Wing & Gong). Walk the list from the head. At a call event, try to
   linearize that operation now: if the model accepts it, push (operation, state) on a
   stack, *lift* its call and return events out of the list and restart from the head. At
   a return event, the operation it belongs to was not linearized before its deadline, so
   the current prefix is a dead end: pop the last operation, *unlift* it back into place
   and try the call after it instead. An empty stack at a return event means no order
   exists.

4. **Memoization** (Lowe). The future of the search depends only on *which* operations
   are linearized (a bitset, kept as a Python int) and the model state, not on the order
   that got there. Each (bitset, state) pair is explored once; this is what makes real
   histories tractable.

5. **Unknown outcomes.** An operation that completed ``info`` or never completed may have
   taken effect at any time after its call, or never. Its return is at +infinity, so those
   events sort last. The history is linearizable iff some order exists of all completed
   operations plus any subset of the unknown ones, so the search succeeds as soon as every
   completed operation is linearized: unknown operations still pending then simply never
   happened. Unknown read-only operations are dropped up front (for models that can tell).

6. **Budget.** With ``time_limit_s`` the search stops at the deadline with verdict
   "unknown", never "linearizable".

For a violation, the search remembers the deepest point it reached: the longest
linearizable prefix, the state after it, the operation whose return could not be
honoured, and the pending operations none of which led anywhere. That is usually enough
to see the bug.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from paxosd.check.history import History, Operation, show_value
from paxosd.check.models import Model, ReadOnlyAware, State

DEADLINE_CHECK_EVERY_STEPS = 2048
"""How often (in search steps) the search looks at the clock; a step is ~1 µs."""

PREFIX_SHOWN_OPS = 8
"""How many operations of the longest prefix an explanation prints (the last ones)."""

PENDING_SHOWN_OPS = 12
"""How many unplaceable pending operations an explanation lists."""

STATE_SHOWN_CHARS = 200
"""Longer states (an append log, say) are cut in the middle when printed."""


class Verdict(StrEnum):
    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Violation:
    """Where the search got stuck, at its deepest point.

    ``prefix`` is the longest linearizable prefix found, in linearization order, and
    ``state`` the model state after it. ``stuck`` is the completed operation that had to
    take effect next (its return came) but could not; ``pending`` are all operations that
    could have gone next, each with whether the model accepts it in ``state`` (accepted
    ones failed later on every path).
    """

    key: Hashable
    prefix: tuple[Operation, ...]
    state: State
    stuck: Operation
    pending: tuple[tuple[Operation, bool], ...]
    total: int

    def explain(self) -> str:
        lines = [
            f"key {key_label(self.key)}: not linearizable.",
            f"  The longest linearizable prefix has {len(self.prefix)} of {self.total} "
            f"operations and leaves the state at {_clip(show_value(self.state))}.",
        ]
        shown = self.prefix[-PREFIX_SHOWN_OPS:]
        if len(shown) < len(self.prefix):
            lines.append(f"    ... {len(self.prefix) - len(shown)} earlier operations")
        lines += [f"    {op.describe()}" for op in shown]
        count = len(self.pending)
        lines.append(
            f"  Then {self.stuck.describe()} returned, so it must already have taken effect, "
            f"but no operation that could go next ({count} candidate{'s' * (count != 1)}) "
            f"leads to a linearization:"
        )
        for op, accepted in self.pending[:PENDING_SHOWN_OPS]:
            why = "fits, but every continuation fails" if accepted else "impossible here"
            lines.append(f"    {op.describe()}: {why}")
        if len(self.pending) > PENDING_SHOWN_OPS:
            lines.append(f"    ... and {len(self.pending) - PENDING_SHOWN_OPS} more")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class KeyResult:
    key: Hashable
    verdict: Verdict
    operations: int
    elapsed_s: float
    states_explored: int = 0
    violation: Violation | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    verdict: Verdict
    keys: tuple[KeyResult, ...]
    operations: int
    elapsed_s: float
    model: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.LINEARIZABLE

    @property
    def violations(self) -> list[Violation]:
        return [k.violation for k in self.keys if k.violation is not None]

    def explain(self) -> str:
        """Every violation's explanation, or a one-line summary if there is none."""
        if self.violations:
            return "\n\n".join(v.explain() for v in self.violations)
        return f"{self.verdict} ({self.operations} operations, {len(self.keys)} keys)"

    def to_json(self) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        for k in self.keys:
            entry: dict[str, Any] = {
                "verdict": str(k.verdict),
                "operations": k.operations,
                "elapsed_s": round(k.elapsed_s, 6),
                "states_explored": k.states_explored,
            }
            if k.violation is not None:
                entry["explanation"] = k.violation.explain()
                entry["prefix_length"] = len(k.violation.prefix)
                entry["stuck"] = k.violation.stuck.describe()
            keys[key_label(k.key)] = entry
        return {
            "verdict": str(self.verdict),
            "keys": keys,
            "operations": self.operations,
            "elapsed_s": round(self.elapsed_s, 6),
            "model": self.model,
        }


def _clip(text: str) -> str:
    if len(text) <= STATE_SHOWN_CHARS:
        return text
    half = STATE_SHOWN_CHARS // 2
    return f"{text[:half]} … {text[-half:]} ({len(text)} chars)"


def key_label(key: Hashable) -> str:
    """How reports name a key; the key of a single-register history is ``(register)``."""
    return "(register)" if key is None else str(key)


# ---------------------------------------------------------------------------- entry points


def check(
    history: History | Iterable[Operation],
    model: Model,
    *,
    time_limit_s: float | None = None,
) -> CheckResult:
    """Check ``history`` against ``model``, one key at a time.

    The verdict is "not linearizable" if any key is, else "unknown" if any key ran out of
    time, else "linearizable". The time budget is shared by all keys; keys not reached
    before the deadline are "unknown".
    """
    ops = history.operations if isinstance(history, History) else tuple(history)
    started = time.monotonic()
    deadline = None if time_limit_s is None else started + time_limit_s
    parts: dict[Hashable, list[Operation]] = {}
    for op in ops:
        parts.setdefault(op.key, []).append(op)
    results = [
        check_operations(part, model, key=key, deadline=deadline) for key, part in parts.items()
    ]
    verdicts = {r.verdict for r in results}
    if Verdict.NOT_LINEARIZABLE in verdicts:
        verdict = Verdict.NOT_LINEARIZABLE
    elif Verdict.UNKNOWN in verdicts:
        verdict = Verdict.UNKNOWN
    else:
        verdict = Verdict.LINEARIZABLE
    return CheckResult(
        verdict=verdict,
        keys=tuple(results),
        operations=len(ops),
        elapsed_s=time.monotonic() - started,
        model=model.name,
    )


def check_operations(
    ops: Sequence[Operation],
    model: Model,
    *,
    key: Hashable = None,
    deadline: float | None = None,
) -> KeyResult:
    """Check one partition (all operations on one key). ``deadline`` is a
    `time.monotonic` instant."""
    started = time.monotonic()
    if deadline is not None and started >= deadline:
        return KeyResult(key, Verdict.UNKNOWN, len(ops), 0.0)
    search = _Search(ops, model, deadline)
    verdict = search.run()
    violation = search.violation(key) if verdict is Verdict.NOT_LINEARIZABLE else None
    return KeyResult(
        key=key,
        verdict=verdict,
        operations=len(ops),
        elapsed_s=time.monotonic() - started,
        states_explored=search.explored,
        violation=violation,
    )


def is_linearizable(history: History | Iterable[Operation], model: Model) -> bool:
    """Convenience for tests: True iff the verdict is "linearizable" (no time limit)."""
    return check(history, model).verdict is Verdict.LINEARIZABLE


# ---------------------------------------------------------------------------- the search

_Stack = tuple[int, State, "_Stack"] | None
"""The call stack as a cons list (entry, state before it, rest): pushing and popping are
O(1) and a snapshot of the deepest stack is just a reference."""


class _Search:
    """One Wing & Gong search over one partition. Entries 1..2n are call/return events in
    time order; 0 and 2n+1 are head and tail sentinels, so list surgery needs no checks."""

    def __init__(self, ops: Sequence[Operation], model: Model, deadline: float | None) -> None:
        initial = model.init()
        for op in ops:  # reject what the model cannot run now, not only if the search gets there
            model.step(initial, op)
        if isinstance(model, ReadOnlyAware):
            ops = [op for op in ops if op.known or not model.is_read_only(op)]
        self.ops = list(ops)
        self.model = model
        self.deadline = deadline
        self.explored = 0
        n = len(self.ops)
        events = sorted(
            [(op.call, 0, i) for i, op in enumerate(self.ops)]
            + [(op.ret, 1, i) for i, op in enumerate(self.ops)]
        )
        size = 2 * n + 2
        self.tail = size - 1
        self.is_call = [False] * size
        self.op_of = [0] * size
        self.match = [0] * size
        call_entry = [0] * n
        for rank, (_, kind, i) in enumerate(events, start=1):
            self.op_of[rank] = i
            if kind == 0:
                self.is_call[rank] = True
                call_entry[i] = rank
            else:
                self.match[call_entry[i]] = rank
        self.call_entry = call_entry  # entries are ranks: "called before R" is a comparison
        self.nxt = list(range(1, size + 1))
        self.prv = list(range(-1, size - 1))
        # Deepest point reached, for the explanation.
        self.best_depth = -1
        self.best: tuple[_Stack, State, int, int] | None = None

    def run(self) -> Verdict:
        ops, step = self.ops, self.model.step
        nxt, prv, is_call, op_of, match = self.nxt, self.prv, self.is_call, self.op_of, self.match
        bits = [1 << i for i in range(len(ops))]
        remaining = sum(1 for op in ops if op.known)  # completed ops not yet linearized
        known = [op.known for op in ops]
        cache: set[tuple[int, State]] = set()
        stack: _Stack = None
        depth = 0
        linearized = 0
        state = self.model.init()
        head, tail = 0, self.tail
        entry = nxt[head]
        deadline = self.deadline
        countdown = DEADLINE_CHECK_EVERY_STEPS
        try:
            while remaining:
                countdown -= 1
                if countdown == 0:
                    countdown = DEADLINE_CHECK_EVERY_STEPS
                    if deadline is not None and time.monotonic() >= deadline:
                        return Verdict.UNKNOWN
                if entry == tail:
                    # Unreachable: a completed op still pending has its return in the list,
                    # before the tail, and backtracking resumes before that return. Were it
                    # reached, passing would be a lie, so fail loudly.
                    raise AssertionError("linearizability search ran off the end of the history")
                if is_call[entry]:
                    i = op_of[entry]
                    ok, new_state = step(state, ops[i])
                    if ok:
                        new_linearized = linearized | bits[i]
                        memo = (new_linearized, new_state)
                        if memo not in cache:
                            cache.add(memo)
                            stack = (entry, state, stack)
                            depth += 1
                            state, linearized = new_state, new_linearized
                            if known[i]:
                                remaining -= 1
                            # lift the call and its return out of the list
                            ret = match[entry]
                            nxt[prv[entry]] = nxt[entry]
                            prv[nxt[entry]] = prv[entry]
                            nxt[prv[ret]] = nxt[ret]
                            prv[nxt[ret]] = prv[ret]
                            entry = nxt[head]
                            continue
                    entry = nxt[entry]
                    continue
                # A return: its op had to be linearized by now. Backtrack. (Returns of
                # unknown ops sort last, at +inf; `remaining` ends the loop before them.)
                if depth > self.best_depth:
                    self.best_depth = depth
                    self.best = (stack, state, linearized, entry)
                if stack is None:
                    return Verdict.NOT_LINEARIZABLE
                entry, state, stack = stack
                depth -= 1
                i = op_of[entry]
                linearized ^= bits[i]
                if known[i]:
                    remaining += 1
                # unlift: put the return back, then the call
                ret = match[entry]
                nxt[prv[ret]] = ret
                prv[nxt[ret]] = ret
                nxt[prv[entry]] = entry
                prv[nxt[entry]] = entry
                entry = nxt[entry]
            return Verdict.LINEARIZABLE
        finally:
            self.explored = len(cache)

    def violation(self, key: Hashable) -> Violation:
        assert self.best is not None, "a failed search always records its deepest point"
        stack, state, linearized, stuck_entry = self.best
        prefix: list[Operation] = []
        while stack is not None:
            entry, _, stack = stack
            prefix.append(self.ops[self.op_of[entry]])
        prefix.reverse()
        pending = []
        for i, op in enumerate(self.ops):
            if linearized >> i & 1 or self.call_entry[i] > stuck_entry:
                continue
            accepted, _ = self.model.step(state, op)
            pending.append((op, accepted))
        return Violation(
            key=key,
            prefix=tuple(prefix),
            state=state,
            stuck=self.ops[self.op_of[stuck_entry]],
            pending=tuple(pending),
            total=len(self.ops),
        )
