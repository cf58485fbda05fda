"""Running the per-key searches: interleaved in one process, or spread over worker processes.

Theory of operation
-------------------
Keys are independent (linearizability is compositional), but their searches are not
equally hard: in a failing history one key may be refuted in a millisecond while another
would need minutes. Running them one after the other lets the hard one eat the budget
before the easy verdict is found. So searches run *interleaved*: each key in turn gets a
slice of steps, and slices double every round (from `SLICE_STEPS_FIRST` up to
`SLICE_STEPS_MAX`), so easy keys finish within the first rounds and the hard ones share
what is left. A search is resumable, so no work is repeated.

Budgets (`Budget`) are shared by the searches of a process. When the time runs out every
undecided key is "unknown". When the memory runs out, the search holding the most memory
gives up ("unknown", memory) and frees it, and the others go on.

With ``stop_at_violation`` the first key found not linearizable ends the others
("unknown": not finished) after one more short slice each, since the history's verdict
is then known.

With ``jobs > 1`` the keys are dealt to that many worker processes (largest first, to the
least loaded), each interleaving its own keys with ``1/jobs`` of the memory budget; results
come back over a queue as they are decided, and an event tells the workers to stop.
Workers are forked, so the operations and the model are inherited, not pickled.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import time
import traceback
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from paxosd.check.budget import Budget
from paxosd.check.history import HistoryError, Operation
from paxosd.check.models import Model
from paxosd.check.results import KeyResult, Reason, Verdict
from paxosd.check.search import Search

SLICE_STEPS_FIRST = 2_000
SLICE_STEPS_MAX = 500_000
WORKER_POLL_S = 0.05
"""How often the parent looks for results and dead workers."""

Partition = tuple[Hashable, Sequence[Operation]]


@dataclass(slots=True)
class _Running:
    key: Hashable
    operations: int
    search: Search
    elapsed_s: float = 0.0


def _result(item: _Running) -> KeyResult:
    search = item.search
    verdict = search.verdict
    assert verdict is not None
    violation = search.violation(item.key) if verdict is Verdict.NOT_LINEARIZABLE else None
    return KeyResult(
        key=item.key,
        verdict=verdict,
        operations=item.operations,
        elapsed_s=item.elapsed_s,
        states_explored=search.explored,
        violation=violation,
        reason=search.reason,
        memory_bytes=search.memory_peak,
        pruned=search.pruned,
        order=search.order,
    )


def run_interleaved(
    parts: Sequence[Partition],
    model: Model,
    budget: Budget,
    *,
    stop_at_violation: bool = False,
    should_stop: Callable[[], bool] | None = None,
    report: Callable[[int, KeyResult], None] | None = None,
) -> list[KeyResult]:
    """Decide every partition in this process, interleaving the searches.

    ``should_stop`` (polled between slices) ends all searches as not finished;
    ``report(index, result)`` is called as each partition is decided.
    """
    results: list[KeyResult | None] = [None] * len(parts)
    running: dict[int, _Running] = {}
    for index, (key, ops) in enumerate(parts):
        started = time.monotonic()
        item = _Running(key, len(ops), Search(ops, model, budget))
        item.elapsed_s = time.monotonic() - started
        running[index] = item

    def done(index: int) -> None:
        result = _result(running.pop(index))
        results[index] = result
        if report is not None:
            report(index, result)

    def stop_all(reason: Reason) -> None:
        for index in list(running):
            running[index].search.stop(reason)
            done(index)

    decided = [i for i, item in running.items() if item.search.verdict is not None]
    for index in decided:
        done(index)  # decided while being set up (a dead end from the start, say)
    # Once a key failed (and stop_at_violation), the others get one short slice more, so
    # small keys still get their verdicts, and then stop.
    violated = stop_at_violation and any(
        result is not None and result.verdict is Verdict.NOT_LINEARIZABLE for result in results
    )
    steps = SLICE_STEPS_FIRST
    while running:
        for index in list(running):
            turn = running.get(index)
            if turn is None:
                continue
            started = time.monotonic()
            try:
                verdict = turn.search.run(SLICE_STEPS_FIRST if violated else steps)
            except MemoryError:
                # The allocator said no before the budget did (a ulimit, say): this key is
                # unknown, its memory goes back, and the others go on.
                turn.search.stop(Reason.MEMORY)
                verdict = turn.search.verdict
            turn.elapsed_s += time.monotonic() - started
            if verdict is not None:
                done(index)
                if verdict is Verdict.NOT_LINEARIZABLE and stop_at_violation:
                    violated = True
                elif verdict is Verdict.UNKNOWN and turn.search.reason is Reason.TIME:
                    stop_all(Reason.TIME)  # the time is up, for every key
                continue
            if turn.search.over_memory:
                biggest = max(running, key=lambda i: running[i].search.memory_bytes)
                running[biggest].search.stop(Reason.MEMORY)
                done(biggest)
            if should_stop is not None and should_stop():
                stop_all(Reason.STOPPED)
        if violated:
            stop_all(Reason.STOPPED)
        steps = min(steps * 2, SLICE_STEPS_MAX)
    return [r for r in results if r is not None]


def run_parallel(
    parts: Sequence[Partition],
    model: Model,
    budget: Budget,
    jobs: int,
    *,
    stop_at_violation: bool = False,
) -> list[KeyResult]:
    """Decide every partition in ``jobs`` forked worker processes (see the module docstring).

    Falls back to `run_interleaved` where processes cannot be forked.
    """
    if jobs <= 1 or len(parts) <= 1 or "fork" not in mp.get_all_start_methods():
        return run_interleaved(parts, model, budget, stop_at_violation=stop_at_violation)
    jobs = min(jobs, len(parts))
    shares: list[list[int]] = [[] for _ in range(jobs)]
    load = [0] * jobs
    for index in sorted(range(len(parts)), key=lambda i: -len(parts[i][1])):
        least = load.index(min(load))
        shares[least].append(index)
        load[least] += len(parts[index][1])
    context = mp.get_context("fork")
    results_queue: Any = context.Queue()
    stop = context.Event()
    per_worker = None if budget.memory_limit_bytes is None else budget.memory_limit_bytes // jobs
    workers = [
        context.Process(
            target=_worker,
            args=(parts, share, model, budget.deadline, per_worker, stop, results_queue),
            daemon=True,
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    results: dict[int, KeyResult] = {}
    failure: tuple[str, str, int | None] | None = None
    try:
        while len(results) < len(parts) and failure is None:
            try:
                message = results_queue.get(timeout=WORKER_POLL_S)
            except queue.Empty:
                if not any(w.is_alive() for w in workers) and results_queue.empty():
                    break
                continue
            if message[0] == "result":
                _, index, result = message
                results[index] = result
                if result.verdict is Verdict.NOT_LINEARIZABLE and stop_at_violation:
                    stop.set()
            else:
                failure = message
    finally:
        stop.set()
        # A worker exits only once what it queued is read: keep reading while they stop.
        while any(worker.is_alive() for worker in workers):
            with contextlib.suppress(queue.Empty):
                while True:
                    late = results_queue.get_nowait()
                    if late[0] == "result" and late[1] not in results:
                        results[late[1]] = late[2]
            for worker in workers:
                worker.join(timeout=WORKER_POLL_S)
    if failure is not None:
        kind, text, line = failure
        if kind == "history":
            raise HistoryError(text, line)
        raise RuntimeError(f"a checker worker process failed:\n{text}")
    for index, (key, ops) in enumerate(parts):
        if index not in results:  # a worker died (killed by the OS, say): nothing decided
            results[index] = KeyResult(key, Verdict.UNKNOWN, len(ops), 0.0, reason=Reason.MEMORY)
    return [results[i] for i in range(len(parts))]


def _worker(
    parts: Sequence[Partition],
    share: list[int],
    model: Model,
    deadline: float | None,
    memory_limit_bytes: int | None,
    stop: Any,
    results_queue: Any,
) -> None:
    budget = Budget(deadline=deadline, memory_limit_bytes=memory_limit_bytes)
    mine = [parts[i] for i in share]
    try:
        run_interleaved(
            mine,
            model,
            budget,
            should_stop=stop.is_set,
            report=lambda i, result: results_queue.put(("result", share[i], result)),
        )
    except HistoryError as exc:
        message = str(exc)
        if exc.line is not None:
            message = message.removeprefix(f"line {exc.line}: ")
        results_queue.put(("history", message, exc.line))
    except Exception:
        results_queue.put(("crash", traceback.format_exc(), None))


__all__ = ["Partition", "run_interleaved", "run_parallel"]
