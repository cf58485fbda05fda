"""Linearizability checking: is there one order of the operations, each taking effect at an
instant inside its interval, that the sequential model accepts?

Theory of operation
-------------------
1. **Partition first.** Linearizability is compositional (Herlihy & Wing): a history is
   linearizable iff each independent object's sub-history is. The model says what an
   object is (`partition`): one key for most models, a connected group of keys for
   multi-key transactions. Every partition is searched on its own, which turns one
   hopeless search into many small ones.

2. **Search each partition** (`paxosd.check.search`): Wing & Gong's backtracking with
   Lowe's memoization of (linearized set, state), greedy reads, dominance pruning of
   unknown-outcome operations, and pruning of unknown operations that cannot matter.

3. **Interleave and bound** (`paxosd.check.scheduler`): the partitions' searches share the
   time and memory budgets and run in slices, in this process or in ``jobs`` worker
   processes, so an easy verdict is never stuck behind a hard key.

Unknown outcomes: an operation that completed ``info`` or never completed may have taken
effect at any instant after its call, or never. The history is linearizable iff some order
exists of all completed operations plus any subset of the unknown ones.

The verdict is "not linearizable" if any partition is, else "unknown" if any partition ran
out of budget, else "linearizable". Running out of a budget never gives "linearizable".
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence

from paxosd.check.budget import Budget
from paxosd.check.history import History, Operation
from paxosd.check.models import Model, partition
from paxosd.check.results import (
    CheckResult,
    KeyResult,
    Reason,
    Verdict,
    Violation,
    combine,
    key_label,
)
from paxosd.check.scheduler import run_interleaved, run_parallel


def check(
    history: History | Iterable[Operation],
    model: Model,
    *,
    time_limit_s: float | None = None,
    memory_limit_bytes: int | None = None,
    jobs: int = 1,
    stop_at_violation: bool = False,
) -> CheckResult:
    """Check ``history`` against ``model``, one partition (key) at a time.

    ``time_limit_s`` and ``memory_limit_bytes`` bound the whole check (None: no bound);
    ``jobs`` worker processes share the partitions; ``stop_at_violation`` ends the other
    searches as soon as one key is found not linearizable (their verdicts are then
    "unknown", not finished).
    """
    ops = history.operations if isinstance(history, History) else tuple(history)
    started = time.monotonic()
    budget = Budget(
        deadline=None if time_limit_s is None else started + time_limit_s,
        memory_limit_bytes=memory_limit_bytes,
    )
    parts = partition(ops, model)
    if jobs > 1:
        initial = model.init()
        for op in ops:  # bad input is reported here, not from inside a worker
            model.step(initial, op)
        results = run_parallel(parts, model, budget, jobs, stop_at_violation=stop_at_violation)
    else:
        results = run_interleaved(parts, model, budget, stop_at_violation=stop_at_violation)
    notes: list[str] = []
    stopped = sum(1 for r in results if r.reason is Reason.STOPPED)
    if stopped:
        notes.append(
            f"{stopped} key{'s' * (stopped != 1)} not finished: the history had already failed"
        )
    return CheckResult(
        verdict=combine(results),
        keys=tuple(results),
        operations=len(ops),
        elapsed_s=time.monotonic() - started,
        model=model.name,
        notes=tuple(notes),
    )


def check_operations(
    ops: Sequence[Operation],
    model: Model,
    *,
    key: Hashable = None,
    deadline: float | None = None,
    memory_limit_bytes: int | None = None,
) -> KeyResult:
    """Check one partition as it is (no further split). ``deadline`` is a `time.monotonic`
    instant."""
    budget = Budget(deadline=deadline, memory_limit_bytes=memory_limit_bytes)
    if budget.out_of_time():
        return KeyResult(key, Verdict.UNKNOWN, len(ops), 0.0, reason=Reason.TIME)
    (result,) = run_interleaved([(key, ops)], model, budget)
    return result


def is_linearizable(history: History | Iterable[Operation], model: Model) -> bool:
    """Convenience for tests: True iff the verdict is "linearizable" (no budget)."""
    return check(history, model).verdict is Verdict.LINEARIZABLE


__all__ = [
    "CheckResult",
    "KeyResult",
    "Reason",
    "Verdict",
    "Violation",
    "check",
    "check_operations",
    "is_linearizable",
    "key_label",
]
