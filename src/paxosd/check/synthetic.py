"""Synthetic histories with known verdicts: many concurrent clients, many unknown outcomes.

A generated history is linearizable by construction: every operation gets a linearization
point inside its interval, outputs are computed by applying the operations in the order of
those points, and an operation with an unknown outcome takes effect (or not) at its point
with even odds. A planted bug then breaks it in a way no linearization can excuse:

- ``stale-read``: one read, chosen among those that follow a completed write of a new
  value, returns the value from before that write (a leader serving a read it should have
  confirmed). The generator checks the read is really impossible: the write returned
  before the read was called, and no other operation could produce the stale value again.

Used by the benchmark (``bench/checker.py``) and the tests; ``paxosd check`` reads the
JSON Lines it writes like any other history.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass

from paxosd.check.history import Event, OpType

KINDS = ("kv", "append")
BUGS = ("stale-read",)


@dataclass(slots=True)
class _Planned:
    process: int
    f: str
    key: str
    value: object
    call: float
    ret: float
    point: float
    outcome: OpType
    applied: bool
    output: object = None


def generate(
    seed: int,
    *,
    clients: int = 50,
    operations: int = 2000,
    keys: int = 10,
    kind: str = "kv",
    unknown: float = 0.1,
    bug: str | None = None,
    values: int = 10,
) -> list[Event]:
    """A history as events (see the module docstring). ``kind`` is ``kv`` (put, get, cas
    on a register per key, values drawn from ``values`` small integers) or ``append``
    (get, put, append of unique pieces); ``unknown`` is the share of operations whose
    outcome is unknown."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (choose from {', '.join(KINDS)})")
    if bug is not None and bug not in BUGS:
        raise ValueError(f"unknown bug {bug!r} (choose from {', '.join(BUGS)})")
    rng = random.Random(seed)
    clock = [rng.uniform(0, 5) for _ in range(clients)]
    plans: list[_Planned] = []
    for counter in range(operations):
        process = min(range(clients), key=clock.__getitem__)  # the client free soonest
        call = clock[process]
        ret = call + rng.expovariate(1 / 10)
        if rng.random() < 0.05:
            ret += rng.uniform(50, 300)  # now and then a slow one, overlapping many others
        key = f"k{rng.randrange(keys)}"
        f, value = _choose(rng, kind, values, f"x{process}.{counter}")
        known = rng.random() >= unknown
        outcome = OpType.OK if known else OpType.INFO
        point = rng.uniform(call, ret)
        applied = known or rng.random() < 0.5
        plans.append(_Planned(process, f, key, value, call, ret, point, outcome, applied))
        clock[process] = ret + rng.uniform(0, 3)
    _compute_outputs(plans, kind)
    if bug == "stale-read":
        if kind != "kv":
            raise ValueError("the stale-read bug is planted in kv histories")
        _plant_stale_read(plans, rng)
    return _events(plans)


def _choose(rng: random.Random, kind: str, values: int, piece: str) -> tuple[str, object]:
    roll = rng.random()
    if kind == "kv":
        if roll < 0.45:
            return "get", None
        if roll < 0.85:
            return "put", rng.randrange(values)
        return "cas", (rng.randrange(values), rng.randrange(values))
    if roll < 0.45:
        return "get", None
    if roll < 0.95:
        return "append", piece
    return "put", piece


def _compute_outputs(plans: list[_Planned], kind: str) -> None:
    """Apply the operations in linearization order; a cas that would not match fails."""
    initial: object = None if kind == "kv" else ""
    state: dict[Hashable, object] = {}
    for plan in sorted(plans, key=lambda p: p.point):
        current = state.get(plan.key, initial)
        if plan.f == "get":
            plan.output = current
            continue
        if not plan.applied:
            continue
        if plan.f == "cas":
            assert isinstance(plan.value, tuple)
            old, new = plan.value
            if current != old:
                # It did not happen: recorded as fail if known (dropped by the parser).
                plan.outcome = OpType.FAIL if plan.outcome is OpType.OK else plan.outcome
                continue
            state[plan.key] = new
        elif plan.f == "append":
            assert isinstance(current, str) and isinstance(plan.value, str)
            state[plan.key] = current + plan.value
        else:
            state[plan.key] = plan.value
        plan.output = plan.value


def _plant_stale_read(plans: list[_Planned], rng: random.Random) -> None:
    """Make one read return what the key held before a write that returned before the read
    began, when nothing could have put that value back (see the module docstring)."""
    by_point = sorted(plans, key=lambda p: p.point)
    candidates = []
    for index, read in enumerate(by_point):
        if read.f != "get" or read.outcome is not OpType.OK:
            continue
        writes = [
            p
            for p in by_point[:index]
            if p.key == read.key and p.f != "get" and p.applied and p.outcome is not OpType.FAIL
        ]
        if not writes or writes[-1].outcome is not OpType.OK or writes[-1].ret >= read.call:
            continue
        last = writes[-1]  # certainly before the read, in every linearization
        stale = writes[-2].output if len(writes) > 1 else None
        if stale == read.output:
            continue
        # Every operation that could set the stale value after `last` rules it out.
        if any(
            p.key == read.key
            and p.f != "get"
            and _produces(p, stale)
            and (p.outcome is not OpType.OK or p.ret >= last.call)
            for p in plans
        ):
            continue
        candidates.append((read, stale))
    if not candidates:
        raise ValueError("no read can be made stale in this history (try another seed)")
    read, stale = rng.choice(candidates)
    read.output = stale


def _produces(plan: _Planned, value: object) -> bool:
    if plan.f == "cas":
        assert isinstance(plan.value, tuple)
        return plan.value[1] == value
    return plan.value == value


def _events(plans: list[_Planned]) -> list[Event]:
    stamped: list[tuple[float, int, Event]] = []
    for n, p in enumerate(plans):
        stamped.append(
            (p.call, 2 * n, Event(f"c{p.process}", OpType.INVOKE, p.f, p.key, p.value, p.call))
        )
        if p.outcome is OpType.INFO:
            stamped.append(
                (p.ret, 2 * n + 1, Event(f"c{p.process}", OpType.INFO, p.f, p.key, None, p.ret))
            )
            continue
        output = p.output if p.f == "get" else p.value
        stamped.append(
            (p.ret, 2 * n + 1, Event(f"c{p.process}", p.outcome, p.f, p.key, output, p.ret))
        )
    stamped.sort(key=lambda item: (item[0], item[1]))
    return [Event(e.process, e.type, e.f, e.key, e.value, round(t, 6), None) for t, _, e in stamped]


__all__ = ["BUGS", "KINDS", "generate"]
