"""The search for a linearization of one partition (one key): Wing & Gong, Lowe, and four
reductions that keep it small.

Theory of operation
-------------------
The operations' call and return events, sorted by time (a call before a return at the same
instant: touching intervals are concurrent), form a doubly linked list. The *window* is the
calls before the first return still in the list: exactly the operations that may take
effect next, since the operation of that first return must take effect before it returns.
The search linearizes one operation of the window at a time, lifting its events out of the
list, and backtracks when none of the window leads anywhere (Wing & Gong). A
*configuration* is (set of linearized operations, model state); the future of the search
depends on nothing else, so each configuration is explored once (Lowe's memoization; the
set is a bitset, a Python int, and states are interned so equal states are stored once).

Four reductions come on top. Each is a theorem about linearizations, not a heuristic, so
none can change a verdict; they only cut the search:

1. **Reads go first and alone.** If a read-only operation in the window is accepted in the
   current state, some linearization from here (if any exists) takes it right now: move it
   to the front of any linearization; nothing that follows can have returned before it was
   called (it is in the window), and it changes no state. So the search takes it without
   branching, and if that leads nowhere, nothing from this configuration does.

2. **Unknown outcomes are optional, and fewer is better.** An operation whose outcome is
   unknown may be linearized or not. Two configurations with the same linearized
   *completed* operations and the same state differ only in which unknown operations they
   used up, and the one that used a subset can do everything the other can. So the cache
   keeps, per (completed set, state), the minimal sets of unknown operations seen, and a
   configuration that used a superset of one of them is not explored again. Completed
   operations are tried before unknown ones, so the small sets tend to come first.

3. **Unknown operations that cannot matter are dropped** before the search, when the
   model can tell (``prune_unknown``): an unknown write of a value no one ever read, say.

4. **Dead ends are seen early.** A completed operation not yet linearized must take effect
   later, in some state the current one can still reach. The model can say which
   operations are able to make a state acceptable to it (``enablers``: the writes of the
   value a read returned, say) and whether, without them, the current state could still
   lead there (``reachable``). Once all its enablers are linearized (or were called too
   late to go before it) and the current state cannot lead there, no linearization exists
   from this configuration. The search keeps, per operation, how many of its enablers are
   left, so only operations whose enablers have run out are looked at.

Budgets: the search runs in slices of steps (so a scheduler can interleave keys and give
up on one without losing the others) and stops with "unknown" when the shared time or
memory `Budget` runs out. It never answers "linearizable" unless it found a linearization.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Hashable, Sequence
from enum import IntEnum

from paxosd.check.budget import Budget
from paxosd.check.history import Operation
from paxosd.check.models import Model, State
from paxosd.check.results import Reason, Verdict, Violation

BUDGET_CHECK_EVERY_STEPS = 1024
"""How often (in search steps) the search looks at the clock and the memory budget."""

CACHE_SLOT_BYTES = 100
"""Estimated bytes a cache entry costs beyond its key: the dict's entry and index slots at
its typical fill, and the share of the table kept free (a conservative round number)."""

STATE_SLOT_BYTES = 100
"""The same for an entry of the table that interns states (state -> id)."""

UNKNOWN_SET_BYTES = 40
"""What one more minimal unknown-set costs in a cache entry's list (reduction 2)."""

STACK_FRAME_BYTES = 80
"""One frame of the search's stack: a 4-tuple and its share of the allocator's overhead."""

STATE_ID_BITS = 32
"""The cache key is (linearized completed set << STATE_ID_BITS) | state id."""


class Phase(IntEnum):
    """Which operations of the window the search is trying at the current configuration."""

    READS = 0  # completed read-only operations, taken greedily (reduction 1)
    KNOWN = 1  # other completed operations
    UNKNOWN = 2  # operations whose outcome is unknown (reduction 2)


# The call stack is a cons list (entry, state, forced, rest): O(1) push and pop, and a
# snapshot of the deepest stack is just a reference.
_Stack = tuple[int, State, bool, "_Stack"] | None

# The deepest point reached: (stack, state, linearized bitset, stuck operation, whether it
# was found by reduction 4 rather than at its return).
_Best = tuple[_Stack, State, int, int, bool]


class Search:
    """One Wing & Gong search over one partition, resumable in slices of steps.

    Entries 1..m of the linked list are call and return events in time order (unknown
    operations have no return entry: they may stay pending forever); 0 and m+1 are head and
    tail sentinels, so list surgery needs no checks.
    """

    def __init__(self, ops: Sequence[Operation], model: Model, budget: Budget) -> None:
        initial = model.init()
        for op in ops:  # reject what the model cannot run now, not only if the search gets there
            model.step(initial, op)
        read_only = getattr(model, "is_read_only", None)
        kept = [op for op in ops if op.known or read_only is None or not read_only(op)]
        prune = getattr(model, "prune_unknown", None)
        if prune is not None:
            kept = list(prune(kept))
        self.pruned = len(ops) - len(kept)
        self.ops = kept
        self.model = model
        self.budget = budget
        self.verdict: Verdict | None = None
        self.reason = Reason.NONE
        self.memory_bytes = 0
        self.memory_peak = 0
        self.visited = 0
        self.over_memory = False  # the last slice stopped because the memory budget is spent
        n = len(kept)
        self.known = [op.known for op in kept]
        self.greedy = [op.known and read_only is not None and read_only(op) for op in kept]
        self.has_unknown = not all(self.known)
        events = sorted(
            [(op.call, 0, i) for i, op in enumerate(kept)]
            + [(op.ret, 1, i) for i, op in enumerate(kept) if op.known]
        )
        size = len(events) + 2
        self.tail = size - 1
        self.is_call = [False] * size
        self.op_of = [0] * size
        self.match = [0] * size  # call entry -> its return entry (0: none, unknown outcome)
        self.call_entry = [0] * n
        for rank, (_, kind, i) in enumerate(events, start=1):
            self.op_of[rank] = i
            if kind == 0:
                self.is_call[rank] = True
                self.call_entry[i] = rank
            else:
                self.match[self.call_entry[i]] = rank
        self.nxt = list(range(1, size + 1))
        self.prv = list(range(-1, size - 1))
        # Reduction 4: enablers left per operation, and who enables whom.
        self.reachable = getattr(model, "reachable", None)
        self.left, self.enables = self._enablers(model)
        self.exhausted = {i for i, left in enumerate(self.left) if left == 0}
        self.done = bytearray(n)  # 1 = linearized
        # The search's registers, saved between slices.
        self.bits = [1 << i for i in range(n)]
        self.remaining = sum(self.known)  # completed operations not yet linearized
        self.cache: dict[int, int | list[int]] = {}
        self.state_ids: dict[State, int] = {}
        self.stack: _Stack = None
        self.depth = 0
        self.lin_known = 0
        self.lin_unknown = 0
        self.state = initial
        self._intern(initial)
        # The fixed cost: the lists above, and a stack as deep as there are operations.
        fixed = sum(
            sys.getsizeof(a)
            for a in (self.is_call, self.op_of, self.match, self.nxt, self.prv, self.bits)
        )
        fixed += n * STACK_FRAME_BYTES + sum(sys.getsizeof(b) for b in self.bits)
        self.memory_bytes += fixed
        budget.used_bytes += fixed
        self.entry = self.nxt[0]
        self.phase = Phase.READS
        self.best_depth = -1
        self.best: _Best | None = None
        self.order: tuple[int, ...] = ()
        if self.remaining == 0:
            self._finish(Verdict.LINEARIZABLE)
            return
        dead = self._dead_end(initial)
        if dead >= 0:
            self.best = (None, initial, 0, dead, True)
            self._finish(Verdict.NOT_LINEARIZABLE)

    def _enablers(self, model: Model) -> tuple[list[int], list[list[int]]]:
        """Per operation, how many of its enablers could still go before it (-1: the
        model cannot tell, so reduction 4 skips it), and per operation whom it enables."""
        n = len(self.ops)
        left = [-1] * n
        enables: list[list[int]] = [[] for _ in range(n)]
        find = getattr(model, "enablers", None)
        if find is None or self.reachable is None:
            return left, enables
        found = find(self.ops)
        # Models share one list between operations that need the same thing (say, every
        # read of 3): sort each distinct list by call once, and cut it at each op's return.
        by_call: dict[int, tuple[list[float], list[int]]] = {}
        for i, (op, candidates) in enumerate(zip(self.ops, found, strict=True)):
            if candidates is None or not op.known:
                continue
            sorted_ = by_call.get(id(candidates))
            if sorted_ is None:
                order = sorted(candidates, key=lambda j: self.ops[j].call)
                sorted_ = ([self.ops[j].call for j in order], order)
                by_call[id(candidates)] = sorted_
            calls, order = sorted_
            usable = order[: bisect.bisect_right(calls, op.ret)]
            left[i] = 0
            for j in usable:
                if j != i:
                    left[i] += 1
                    enables[j].append(i)
        return left, enables

    def _dead_end(self, state: State) -> int:
        """Reduction 4: an operation that can no longer take effect from ``state``, or -1."""
        reachable, ops = self.reachable, self.ops
        if reachable is None:
            return -1
        for j in self.exhausted:
            if not reachable(state, ops[j]):
                return j
        return -1

    @property
    def explored(self) -> int:
        """Configurations visited: (linearized set, state) pairs, each counted once per
        minimal set of unknown operations."""
        return self.visited

    def _intern(self, state: State) -> int:
        known = self.state_ids.get(state)
        if known is not None:
            return known
        number = len(self.state_ids)
        self.state_ids[state] = number
        size = sys.getsizeof(state) + STATE_SLOT_BYTES
        self.memory_bytes += size
        self.budget.used_bytes += size
        return number

    def _finish(self, verdict: Verdict, reason: Reason = Reason.NONE) -> Verdict:
        """Record the verdict and give the memory back (the explanation keeps its snapshot)."""
        self.verdict = verdict
        self.reason = reason
        self.memory_peak = self.memory_bytes
        if verdict is Verdict.LINEARIZABLE:
            order = []
            stack = self.stack
            while stack is not None:
                order.append(self.op_of[stack[0]])
                stack = stack[3]
            self.order = tuple(self.ops[i].index for i in reversed(order))
        self.budget.used_bytes -= self.memory_bytes
        self.memory_bytes = 0
        self.cache = {}
        self.state_ids = {}
        return verdict

    def stop(self, reason: Reason) -> None:
        """Give up: the verdict is unknown (the scheduler ran out of a budget, or another key
        already decided the history)."""
        if self.verdict is None:
            self._finish(Verdict.UNKNOWN, reason)

    def run(self, steps: int) -> Verdict | None:
        """Search for up to ``steps`` steps; the verdict, or None if not done yet (then
        `over_memory` says whether it stopped early because the memory budget is spent)."""
        if self.verdict is not None:
            return self.verdict
        self.over_memory = False
        ops, step = self.ops, self.model.step
        nxt, prv, is_call, op_of, match = self.nxt, self.prv, self.is_call, self.op_of, self.match
        bits, known, greedy = self.bits, self.known, self.greedy
        left, enables, exhausted, done = self.left, self.enables, self.exhausted, self.done
        reachable = self.reachable
        cache, state_ids, budget = self.cache, self.state_ids, self.budget
        stack, depth, remaining = self.stack, self.depth, self.remaining
        lin_known, lin_unknown = self.lin_known, self.lin_unknown
        state = self.state
        entry, phase = self.entry, self.phase
        READS, KNOWN, UNKNOWN = Phase.READS, Phase.KNOWN, Phase.UNKNOWN
        key_bytes = sys.getsizeof(1 << (len(ops) + STATE_ID_BITS)) + CACHE_SLOT_BYTES
        added = 0  # bytes added to the cache in this stretch of steps
        flush_bytes = budget.flush_bytes
        countdown = min(steps, BUDGET_CHECK_EVERY_STEPS)
        steps -= countdown
        head, tail = 0, self.tail
        last_phase = UNKNOWN if self.has_unknown else KNOWN
        verdict: Verdict | None = None
        dead = -1  # the operation found impossible by reduction 4, if any
        visited = self.visited
        while True:
            countdown -= 1
            if countdown <= 0:
                self.memory_bytes += added
                budget.used_bytes += added
                added = 0
                if budget.out_of_time():
                    verdict = Verdict.UNKNOWN
                    self.reason = Reason.TIME
                    break
                if budget.out_of_memory():
                    # The scheduler decides which search gives its memory back.
                    self.over_memory = True
                    break
                if steps <= 0:
                    break  # the slice is used up; resume later
                countdown = min(steps, BUDGET_CHECK_EVERY_STEPS)
                steps -= countdown
            if is_call[entry]:
                i = op_of[entry]
                # Each phase tries only its own kind of operation (see `Phase`).
                if phase == READS:
                    if not greedy[i]:
                        entry = nxt[entry]
                        continue
                elif phase == KNOWN:
                    if greedy[i] or not known[i]:
                        entry = nxt[entry]
                        continue
                elif known[i]:
                    entry = nxt[entry]
                    continue
                ok, new_state = step(state, ops[i])
                if not ok:
                    entry = nxt[entry]
                    continue
                if known[i]:
                    new_known, new_unknown = lin_known | bits[i], lin_unknown
                else:
                    new_known, new_unknown = lin_known, lin_unknown | bits[i]
                new_id = state_ids.get(new_state)
                if new_id is None:
                    new_id = len(state_ids)
                    state_ids[new_state] = new_id
                    added += sys.getsizeof(new_state) + STATE_SLOT_BYTES
                key = (new_known << STATE_ID_BITS) | new_id
                seen = cache.get(key)
                if seen is None:
                    cache[key] = new_unknown
                    added += key_bytes
                    fresh = True
                    if added > flush_bytes:
                        countdown = 1  # look at the memory budget at the next step
                else:
                    fresh = _admit(cache, key, seen, new_unknown)
                    if fresh:
                        added += UNKNOWN_SET_BYTES
                if fresh:
                    visited += 1
                    forced = phase == READS
                    stack = (entry, state, forced, stack)
                    depth += 1
                    state = new_state
                    lin_known, lin_unknown = new_known, new_unknown
                    if known[i]:
                        remaining -= 1
                        if remaining == 0:
                            verdict = Verdict.LINEARIZABLE
                            break
                    # lift the call and its return out of the list
                    nxt[prv[entry]] = nxt[entry]
                    prv[nxt[entry]] = prv[entry]
                    ret = match[entry]
                    if ret:
                        nxt[prv[ret]] = nxt[ret]
                        prv[nxt[ret]] = prv[ret]
                    done[i] = 1
                    exhausted.discard(i)
                    for j in enables[i]:
                        left[j] -= 1
                        if left[j] == 0 and not done[j]:
                            exhausted.add(j)
                    if forced:
                        # Same state: reads skipped so far are still impossible, so the
                        # scan for reads goes on after this one (the window may grow).
                        entry = nxt[prv[entry]]
                        continue
                    entry = nxt[head]
                    phase = READS
                    if exhausted and reachable is not None:
                        # Reduction 4: an operation that can no longer take effect?
                        for j in exhausted:
                            if not reachable(state, ops[j]):
                                dead = j
                                entry = tail
                                break
                    if entry != tail:
                        continue
                elif phase != READS:
                    # Explored before, with at most these unknown operations: nothing new.
                    entry = nxt[entry]
                    continue
                else:
                    # The read had to go now (reduction 1), and where it leads was explored
                    # before: this configuration is dead.
                    dead = -1
                    entry = tail
            # The end of the window, or a dead configuration (entry is the tail).
            if entry != tail and phase != last_phase:
                # Next phase, from the start of the window again.
                phase = KNOWN if phase == READS else UNKNOWN
                entry = nxt[head]
                continue
            if depth > self.best_depth and (entry != tail or dead >= 0):
                self.best_depth = depth
                stuck = op_of[entry] if entry != tail else dead
                self.best = (stack, state, lin_known | lin_unknown, stuck, entry == tail)
            # Backtrack: undo the last operation and try the next one after it; an operation
            # that was forced (a read) leaves no alternative, so undo the one before it too.
            while True:
                if stack is None:
                    verdict = Verdict.NOT_LINEARIZABLE
                    break
                entry, state, forced, stack = stack
                depth -= 1
                i = op_of[entry]
                if known[i]:
                    lin_known ^= bits[i]
                    remaining += 1
                else:
                    lin_unknown ^= bits[i]
                # unlift: the return back, then the call
                ret = match[entry]
                if ret:
                    nxt[prv[ret]] = ret
                    prv[nxt[ret]] = ret
                nxt[prv[entry]] = entry
                prv[nxt[entry]] = entry
                done[i] = 0
                for j in enables[i]:
                    if left[j] == 0:
                        exhausted.discard(j)
                    left[j] += 1
                if left[i] == 0:
                    exhausted.add(i)
                if not forced:
                    break
            if verdict is not None:
                break
            phase = KNOWN if known[i] else UNKNOWN
            entry = nxt[entry]
        self.memory_bytes += added
        budget.used_bytes += added
        self.stack, self.depth, self.remaining = stack, depth, remaining
        self.lin_known, self.lin_unknown = lin_known, lin_unknown
        self.state = state
        self.entry, self.phase = entry, phase
        self.visited = visited
        if verdict is None:
            return None
        return self._finish(verdict, self.reason)

    def violation(self, key: Hashable) -> Violation:
        assert self.best is not None, "a failed search always records its deepest point"
        stack, state, linearized, stuck, unreachable = self.best
        prefix: list[Operation] = []
        while stack is not None:
            prefix.append(self.ops[self.op_of[stack[0]]])
            stack = stack[3]
        prefix.reverse()
        # The window at that point: calls before the first return of a pending operation.
        first_return = min(
            self.match[self.call_entry[i]]
            for i in range(len(self.ops))
            if self.known[i] and not linearized >> i & 1
        )
        pending = []
        for i, op in enumerate(self.ops):
            if linearized >> i & 1 or self.call_entry[i] > first_return:
                continue
            accepted, _ = self.model.step(state, op)
            pending.append((op, accepted))
        return Violation(
            key=key,
            prefix=tuple(prefix),
            state=state,
            stuck=self.ops[stuck],
            pending=tuple(pending),
            total=len(self.ops),
            unreachable=unreachable,
        )


def _admit(cache: dict[int, int | list[int]], key: int, seen: int | list[int], new: int) -> bool:
    """Reduction 2: add the unknown-set ``new`` to the minimal sets kept for ``key``, unless
    one of them is a subset of it (then the configuration was explored already, with more
    options left, and False is returned)."""
    if isinstance(seen, int):
        if seen & ~new == 0:
            return False
        if new & ~seen == 0:
            cache[key] = new  # the new set is smaller: it replaces the old one
        else:
            cache[key] = [seen, new]
        return True
    for old in seen:
        if old & ~new == 0:
            return False
    kept = [old for old in seen if new & ~old != 0]
    kept.append(new)
    cache[key] = kept
    return True


__all__ = ["Phase", "Search"]
