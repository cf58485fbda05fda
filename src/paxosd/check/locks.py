"""Safety checkers for the coordination recipes: locks with fencing tokens, names, decisions.

Theory of operation
-------------------
These properties are simpler than linearizability and are checked directly, in
O(n log n) or so, over the same `History` the parsers produce (usually paxosd JSON Lines).
Every check compares operations only when real time orders them: operation A *precedes*
B when A returned before B was invoked (``A.ret < B.call``). Concurrent operations may
have taken effect in either order, so they are never held against each other. Failed
operations are dropped by the parser; operations with an unknown outcome count only
where they can excuse something (a value may come from an unknown proposal), never as
evidence of a violation.

Locks (`check_locks`). A lock service hands out *fencing tokens*; a holder passes its token
to the resource it protects, and the resource refuses tokens older than one it has already
accepted. Then a holder that paused past its lease cannot corrupt the resource, even though
two clients briefly both believe they hold the lock. So the key property is the
resource-side one, and the checks are:

1. Tokens: every grant carries an integer token; per lock, tokens are distinct and grow in
   real time (a grant that precedes another has the smaller token). With
   ``global_tokens=True`` (one counter for all locks) the same holds across locks. One
   exception: a holder that acquires again while it holds the lock (its release failed, say)
   is answered with the token it holds, so the same owner may get a token again when no
   release of it by that owner completed in between; such a repeat must still not be below
   a token granted before it.
2. Fencing at the resource: every accepted use carries a token >= the token of every use
   the resource accepted before it (in real time). A use must carry a token that some grant
   of that lock returned, to the same process, not after the use returned. With
   ``strict_fencing=True`` a use must also not carry a token older than a grant that
   completed before the use began (a resource that learns of new grants at once).
3. Mutual exclusion, where it can be confirmed: A's ownership is certain from its grant's
   return until the earliest of its release's invocation and its lease's end, measured
   (conservatively) from the acquire's invocation. A grant to another owner that lies
   entirely inside that window is a violation. Lease renewals are not modelled; without a
   recorded lease or a release, ownership is never "certain" after the grant, and this
   check stays silent (the fencing check still applies).

Lock operations (``key`` is the lock's name)::

    acquire  input: null | owner | {"owner": o, "lease_s": s}
             ok output: token | {"token": t, "owner": o, "lease_s": s}
    release  input: null | token | {"token": t}      (null: the caller's latest grant)
    use      input: token | {"token": t, "resource": r}  (resource defaults to the lock)
             ok: the resource accepted it; a rejection is recorded as fail

Names (`check_names`): a name, once registered, has one owner forever. ``register`` (input:
the candidate, null meaning the calling process; ok output: the owner now holding the
name, null meaning the candidate got it) and ``lookup`` (ok output: the owner, or null if
nobody holds it yet). All answers agree; the owner is someone who tried to register; and
once an answer named the owner, no later lookup answers null.

Decisions (`check_decisions`): one chosen value per decision id. ``propose`` (input: the
value; ok output: the chosen value, null meaning no answer) and ``get`` (also ``read``,
``learn``, ``decide``; ok output: the chosen value, or null if undecided). The same three
rules: agreement, validity (the value was proposed, by a proposal invoked before the answer
returned), and stability (no null after a decision was reported).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from paxosd.check.history import (
    History,
    Operation,
    Value,
    as_mapping,
    process_label,
    show_value,
)


@dataclass(frozen=True, slots=True)
class SafetyResult:
    """What a safety checker found: ``ok`` iff ``problems`` is empty."""

    name: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    def explain(self) -> str:
        if self.ok:
            return f"{self.name}: ok ({self.checked} operations)"
        return "\n".join([f"{self.name}: {len(self.problems)} problem(s)", *self.problems])


def _result(name: str, problems: list[str], checked: int) -> SafetyResult:
    return SafetyResult(name=name, ok=not problems, problems=problems, checked=checked)


def _ops(history: History | Iterable[Operation]) -> list[Operation]:
    return list(history.operations if isinstance(history, History) else history)


def _field(value: Value, name: str, default: Value = None) -> Value:
    """``value[name]`` if ``value`` is a (frozen) map, else ``default``."""
    mapping = as_mapping(value)
    return default if mapping is None else mapping.get(name, default)


def _is_token(value: Value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _where(op: Operation) -> str:
    return op.describe()


# ---------------------------------------------------------------------------- locks


@dataclass(frozen=True, slots=True)
class Grant:
    """An ``acquire`` that completed ok: who got which lock, with which token, when."""

    lock: Hashable
    owner: Hashable
    token: int
    op: Operation
    lease_s: float | None


@dataclass(frozen=True, slots=True)
class _Use:
    resource: Hashable
    token: int
    op: Operation


def _later_than_all_earlier(
    items: list[tuple[Operation, int]],
    describe: Callable[[Operation, int, Operation, int], str],
    strict: bool,
) -> list[str]:
    """For (operation, number) pairs: every item's number must be greater (``strict``) or
    not smaller than the number of every item that precedes it in real time.

    Sort by return time, then walk items in call order, keeping the maximum number among
    items that returned before the current call: O(n log n).
    """
    by_ret = sorted(items, key=lambda item: item[0].ret)
    problems: list[str] = []
    best: tuple[Operation, int] | None = None
    j = 0
    for op, number in sorted(items, key=lambda item: item[0].call):
        while j < len(by_ret) and by_ret[j][0].ret < op.call:
            if best is None or by_ret[j][1] > best[1]:
                best = by_ret[j]
            j += 1
        if best is not None and (number <= best[1] if strict else number < best[1]):
            problems.append(describe(op, number, best[0], best[1]))
    return problems


def _grants(ops: list[Operation], problems: list[str]) -> list[Grant]:
    grants: list[Grant] = []
    for op in ops:
        if op.f != "acquire" or not op.known:
            continue
        token = _field(op.output, "token", op.output)
        if not _is_token(token):
            problems.append(f"grant without an integer token: {_where(op)}")
            continue
        owner = _field(op.output, "owner") or _field(op.input, "owner")
        if owner is None:
            owner = (
                op.input if op.input is not None and as_mapping(op.input) is None else op.process
            )
        lease = _field(op.output, "lease_s") or _field(op.input, "lease_s")
        lease_s = float(lease) if isinstance(lease, int | float) else None
        grants.append(Grant(op.key, owner, token, op, lease_s))
    return grants


def _reentrant(first: Grant, again: Grant, releases: list[Operation]) -> bool:
    """Whether `again`, a grant of `first`'s token, is its holder acquiring the lock again
    while it held it (the service answers that with the token it holds): the same owner, and
    no release of that token by its holder completed between the two."""
    if again.owner != first.owner:
        return False
    for rel in releases:
        if rel.key != first.lock or rel.process != first.op.process or not rel.known:
            continue
        token = _field(rel.input, "token", rel.input)
        if (
            (token is None or token == first.token)
            and first.op.ret < rel.call
            and (rel.ret < again.op.call)
        ):
            return False
    return True


def _ownership_end(grant: Grant, releases: list[Operation], grants: list[Grant]) -> float:
    """When ``grant``'s ownership stops being certain (see the module docstring)."""
    end = math.inf if grant.lease_s is None else grant.op.call + grant.lease_s
    released = False
    for rel in releases:
        if rel.key != grant.lock or rel.call < grant.op.ret:
            continue
        token = _field(rel.input, "token", rel.input)
        if _is_token(token):
            mine = token == grant.token
        else:  # no token: the caller's latest grant on this lock before the release
            theirs = [
                g
                for g in grants
                if g.lock == grant.lock and g.op.process == rel.process and g.op.ret <= rel.call
            ]
            mine = bool(theirs) and max(theirs, key=lambda g: g.op.ret) is grant
        if mine:
            end = min(end, rel.call)
            released = True
    if grant.lease_s is None and not released:
        return grant.op.ret  # never certain after the grant
    return end


def check_locks(
    history: History | Iterable[Operation],
    *,
    global_tokens: bool = False,
    strict_fencing: bool = False,
) -> SafetyResult:
    """Fencing tokens, the resource-side fencing rule and confirmed mutual exclusion."""
    ops = _ops(history)
    problems: list[str] = []
    grants = _grants(ops, problems)
    releases = [op for op in ops if op.f == "release"]

    # 1. tokens: distinct and increasing in real time, per lock (or globally)
    groups: dict[Hashable, list[Grant]] = {}
    for g in grants:
        groups.setdefault(None if global_tokens else g.lock, []).append(g)
    scope = "all locks" if global_tokens else "lock"
    for group_key, group in groups.items():
        label = scope if global_tokens else f"lock {group_key}"
        seen: dict[int, Grant] = {}
        firsts: list[Grant] = []
        for g in group:
            first = seen.get(g.token)
            if first is None:
                seen[g.token] = g
                firsts.append(g)
            elif _reentrant(first, g, releases):
                # The holder acquired again while it held the lock: the same grant, so the
                # same token; it must still not be below a token granted before it.
                problems += [
                    f"{label}: token {g.token} ({_where(g.op)}) is not above token "
                    f"{h.token}, granted before it ({_where(h.op)})"
                    for h in group
                    if h.token > g.token and h.op.ret < g.op.call
                ]
            else:
                problems.append(
                    f"{label}: token {g.token} granted twice: {_where(first.op)} and {_where(g.op)}"
                )

        def regress(op: Operation, n: int, prev: Operation, m: int, label: str = label) -> str:
            return (
                f"{label}: token {n} ({_where(op)}) is not above token {m}, "
                f"granted before it ({_where(prev)})"
            )

        problems += _later_than_all_earlier([(g.op, g.token) for g in firsts], regress, strict=True)

    # 2. fencing at the resource
    by_lock_token: dict[tuple[Hashable, int], Grant] = {}
    for g in grants:  # a re-entrant grant's token was granted first by the first one
        by_lock_token.setdefault((g.lock, g.token), g)
    unknown_acquires = {(op.key, op.process) for op in ops if op.f == "acquire" and not op.known}
    uses: dict[Hashable, list[_Use]] = {}
    for op in ops:
        if op.f != "use" or not op.known:
            continue
        token = _field(op.input, "token", op.input)
        if not _is_token(token):
            problems.append(f"use without an integer token: {_where(op)}")
            continue
        resource = _field(op.input, "resource", op.key)
        uses.setdefault(resource, []).append(_Use(resource, token, op))
        grant = by_lock_token.get((op.key, token))
        if grant is None:
            if (op.key, op.process) not in unknown_acquires:
                problems.append(
                    f"lock {op.key}: accepted token {token} that no grant returned: {_where(op)}"
                )
            continue
        if grant.op.process != op.process:
            problems.append(
                f"lock {op.key}: {process_label(op.process)} used token {token}, granted to "
                f"{process_label(grant.op.process)}: "
                f"{_where(op)}"
            )
        if op.ret < grant.op.call:
            problems.append(
                f"lock {op.key}: token {token} used before it was granted: {_where(op)}"
            )
    for resource, accepted in uses.items():

        def stale(
            op: Operation, n: int, prev: Operation, m: int, resource: Hashable = resource
        ) -> str:
            return (
                f"resource {resource}: accepted stale token {n} ({_where(op)}) after accepting "
                f"token {m} ({_where(prev)})"
            )

        problems += _later_than_all_earlier(
            [(u.op, u.token) for u in accepted], stale, strict=False
        )
        if strict_fencing:
            problems += _stale_after_grant(accepted, grants)

    # 3. confirmed mutual exclusion
    for lock in {g.lock for g in grants}:
        mine = sorted((g for g in grants if g.lock == lock), key=lambda g: g.op.ret)
        for a in mine:
            end = _ownership_end(a, releases, grants)
            for b in mine:
                if b is a or b.owner == a.owner:
                    continue
                if b.op.call >= a.op.ret and b.op.ret <= end:
                    problems.append(
                        f"lock {lock}: granted to {b.owner} ({_where(b.op)}) while {a.owner} "
                        f"certainly held it ({_where(a.op)}, until {end:g})"
                    )
    return _result("locks", problems, len(ops))


def _stale_after_grant(accepted: list[_Use], grants: list[Grant]) -> list[str]:
    problems: list[str] = []
    for use in accepted:
        newer = [
            g
            for g in grants
            if g.lock == use.op.key and g.op.ret < use.op.call and g.token > use.token
        ]
        if newer:
            g = max(newer, key=lambda g: g.token)
            problems.append(
                f"resource {use.resource}: accepted token {use.token} ({_where(use.op)}) after "
                f"token {g.token} was granted ({_where(g.op)})"
            )
    return problems


# ---------------------------------------------------------------------------- names, decisions


def _single_assignment(
    what: str,
    ops: list[Operation],
    writes: frozenset[str],
    reads: frozenset[str],
    candidate: Callable[[Operation], Value],
    answer: Callable[[Operation], Value],
) -> list[str]:
    """Agreement, validity and stability of a value assigned at most once per key.

    ``candidate(op)`` is what a write proposes; ``answer(op)`` what a completed operation
    reports as the assigned value (None: nothing yet / no information).
    """
    problems: list[str] = []
    by_key: dict[Hashable, list[Operation]] = {}
    for op in ops:
        if op.f in writes or op.f in reads:
            by_key.setdefault(op.key, []).append(op)
    for key, group in by_key.items():
        answered = [(op, answer(op)) for op in group if op.known]
        said = [(op, v) for op, v in answered if v is not None]
        values: dict[Value, Operation] = {}
        for op, v in sorted(said, key=lambda item: item[0].ret):
            values.setdefault(v, op)
        if len(values) > 1:
            shown = "; ".join(f"{show_value(v)} ({_where(op)})" for v, op in values.items())
            problems.append(f"{what} {key}: answers disagree: {shown}")
        for v, first in values.items():
            proposed = [
                op for op in group if op.f in writes and candidate(op) == v and op.call <= first.ret
            ]
            if not proposed:
                problems.append(
                    f"{what} {key}: {show_value(v)} was never proposed ({_where(first)})"
                )
        if said:
            earliest = min(said, key=lambda item: item[0].ret)[0]
            for op, v in answered:
                if v is None and op.f in reads and op.call > earliest.ret:
                    problems.append(
                        f"{what} {key}: answered nothing ({_where(op)}) after {_where(earliest)} "
                        f"had reported it"
                    )
    return problems


NAME_WRITES = frozenset({"register", "claim"})
NAME_READS = frozenset({"lookup", "get", "read"})


def check_names(history: History | Iterable[Operation]) -> SafetyResult:
    """One owner forever per name (see the module docstring for the operations)."""
    ops = _ops(history)

    def candidate(op: Operation) -> Value:
        return op.process if op.input is None else op.input

    def answer(op: Operation) -> Value:
        if op.f in NAME_WRITES:
            return candidate(op) if op.output is None else op.output
        return op.output

    problems = _single_assignment("name", ops, NAME_WRITES, NAME_READS, candidate, answer)
    return _result("names", problems, len(ops))


DECISION_WRITES = frozenset({"propose"})
DECISION_READS = frozenset({"get", "read", "learn", "decide"})


def check_decisions(history: History | Iterable[Operation]) -> SafetyResult:
    """One chosen value per decision id (see the module docstring for the operations)."""
    ops = _ops(history)
    problems = _single_assignment(
        "decision",
        ops,
        DECISION_WRITES,
        DECISION_READS,
        candidate=lambda op: op.input,
        answer=lambda op: op.output,
    )
    return _result("decisions", problems, len(ops))
