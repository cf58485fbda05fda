"""The simulator's checker of the key-value store's multi-key history: ranges, transactions,
reads in the past and compaction, judged against the reference model.

Theory of operation. A history is linearizable if some total order of its operations,
consistent with real time, gives every operation the answer it got when run one after the
other by the specification. Searching for that order is what `linearizability.py` does, per
key; transactions over several keys and reads at past revisions make the state large and the
search costly. The key-value store hands us the order instead: every effective write takes
the next revision, in the order of the agreed log. So this checker takes the log as the
candidate order and verifies it, which is as strong as finding it:

1. Replay. Every key-value request in the agreed log (the simulator records every applied
   position; the agreement checker makes sure all nodes applied the same ones) runs through
   the reference model (kv_reference.py), applying a client's request once as the state
   machine's exactly-once sessions do (a retry or a stale seq changes nothing). This gives
   the state at every revision and each request's answer by the specification.
   Leases live on log time: the reference ends every lease the log's `AdvanceTime` entries
   pass, with its keys, at that point of the log, so a key read after its lease's end as
   the log saw it, or missing before, is a reference mismatch. Only a client's request
   touches a lease: a lease request in the log outside one (no client sends it) is not
   applied to the reference, so a node that renews leases on its own is caught.
2. Answers. Every write a client saw answered must be in the log, and its answer must equal
   the reference's. Every read answered without the log must equal the reference's read at
   the revision its answer names; a read of the past must not succeed below a compaction
   applied before that revision, and one refused as compacted needs a compaction above the
   revision it asked for; one refused as in the future must ask beyond what was known done.
3. Real time. Positions are revisions: a write that changed the store sits at its revision,
   anything else (a read, a compare that failed, a compaction) at the revision it answered
   at. If A completed before B was invoked, B must not sit before A: a write that changed
   the store must get a revision above every revision completed before it started, and
   anything else must answer at a revision at least that high.

If all three hold, the log order with the reads placed at their revisions is a linearization,
so the history is linearizable. Each check compares with the reference, never with the state
machine under test, and an answer of the wrong revision, a missing key, a stale or
reordered write, or a transaction that read one state and wrote into another, fails one of
them (the planted bugs in tests/sim show it).

Operations with an unknown outcome need nothing: whether they took effect is read from the
log. Operations refused before the log (bad requests) are not recorded, and requests the
exactly-once table refused (a stale seq, a seq another request took) did not happen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paxosd.check.kv_reference import LEASE_OPS, KvModel
from paxosd.service.commands import AdvanceTime, Request, decode
from paxosd.service.errors import BadCommand
from paxosd.service.kv import (
    Compact,
    DeleteRange,
    KvError,
    Put,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
)
from paxosd.service.results import REQUEST_MISMATCH, STALE_REQUEST, Error
from paxosd.service.sessions import ANONYMOUS_PREFIX

KV_OPS = (Range, Put, DeleteRange, Txn, Compact, *LEASE_OPS)
PROBLEMS_MAX = 5


@dataclass(frozen=True, slots=True)
class Record:
    """One client operation: its request id and op, when it was invoked and (if it completed)
    when, with the answer. `read`: answered without the log."""

    client: str
    seq: int
    op: Any
    invoked_ms: float
    completed_ms: float | None
    answer: Any
    read: bool


@dataclass(slots=True)
class _Applied:
    answer: Any
    revision: int  # the store's revision after the request
    changed: bool  # whether the request made a new revision


def check(log: Iterable[bytes], records: Sequence[Record]) -> list[str]:
    """The problems found (empty: the history is linearizable), at most PROBLEMS_MAX."""
    model = KvModel(keep_history=True)
    applied: dict[tuple[str, int], _Applied] = {}
    # The compacted revision when each revision was made, and when it was left.
    compacted_at: dict[int, int] = {1: -1}
    compacted_after: dict[int, int] = {1: -1}
    problems = _replay(log, model, applied, compacted_at, compacted_after)
    for record in records:
        if record.completed_ms is None or _not_applied(record.answer):
            continue
        if record.read:
            problem = _check_read(record, model, compacted_at, compacted_after)
        else:
            problem = _check_write(record, applied.get((record.client, record.seq)))
        if problem is not None:
            problems.append(problem)
    problems += _check_real_time(records, applied)
    return problems[:PROBLEMS_MAX]


def _replay(
    log: Iterable[bytes],
    model: KvModel,
    applied: dict[tuple[str, int], _Applied],
    compacted_at: dict[int, int],
    compacted_after: dict[int, int],
) -> list[str]:
    sessions: dict[str, int] = {}
    for payload in log:
        try:
            command = decode(payload)
        except BadCommand:
            continue
        if isinstance(command, AdvanceTime):
            # Log time: the leases it passed end, their keys deleted in one revision.
            before = model.revision
            model.advance_time(command.now_ms)
            if model.revision != before:
                compacted_at[model.revision] = model.compacted
                compacted_after[model.revision] = model.compacted
            continue
        if isinstance(command, Request):
            op, client, seq = command.op, command.client_id, command.seq
        else:
            op, client, seq = command, None, 0
            if isinstance(op, LEASE_OPS):
                continue  # only a client's request may grant, renew or end a lease
        if client is not None and not client.startswith(ANONYMOUS_PREFIX):
            # Exactly-once, as the state machine's sessions (one per client, whatever the
            # request is for): a seq at or below the client's last one is a retry, a stale
            # request or a reused seq, and changes nothing.
            if seq <= sessions.get(client, -1):
                continue
            sessions[client] = seq
        if not isinstance(op, KV_OPS):
            continue
        before = model.revision
        answer = model.apply(op)
        changed = model.revision != before
        if changed:
            compacted_at[model.revision] = model.compacted
        compacted_after[model.revision] = model.compacted
        if client is not None:
            applied[(client, seq)] = _Applied(answer, model.revision, changed)
    return []


def _not_applied(answer: Any) -> bool:
    """The request was refused before it took effect: its seq was stale, or already used by
    another request (a buggy client's twin), as the exactly-once table says."""
    return isinstance(answer, Error) and answer.code in (STALE_REQUEST, REQUEST_MISMATCH)


def _check_write(record: Record, applied: _Applied | None) -> str | None:
    name = f"{record.client} seq {record.seq} ({type(record.op).__name__})"
    if applied is None:
        return f"mvcc: {name} was answered, but it is nowhere in the log"
    if applied.answer != record.answer:
        return (
            f"mvcc: {name} answered {_show(record.answer)}, "
            f"the reference answers {_show(applied.answer)} at that point of the log"
        )
    return None


def _asked_revisions(op: Any, answer: Any = None) -> list[int]:
    """The past revisions a read asks for (0: the current one). Given a transaction's answer,
    only those of the branches it ran (the others read nothing); without one, of every
    branch."""
    if isinstance(op, Range):
        return [op.revision] if op.revision > 0 else []
    if not isinstance(op, Txn):
        return []
    if not isinstance(answer, TxnResponse):
        return [r for child in (*op.success, *op.failure) for r in _asked_revisions(child)]
    ran = op.success if answer.succeeded else op.failure
    return [
        r
        for child, response in zip(ran, answer.responses, strict=False)
        for r in _asked_revisions(child, response)
    ]


def _check_read(
    record: Record, model: KvModel, compacted_at: dict[int, int], compacted_after: dict[int, int]
) -> str | None:
    name = f"{record.client} seq {record.seq} ({type(record.op).__name__})"
    answer = record.answer
    asked = _asked_revisions(record.op)
    if isinstance(answer, KvError):
        if answer.code == "compacted":
            if not any(r < model.compacted for r in asked):
                return f"mvcc: {name} was refused as compacted, but no compaction covers {asked}"
            return None
        if answer.code == "future_revision":
            return None  # judged by real time (_check_real_time): it names no revision
        return f"mvcc: {name} was refused: {answer.detail}"
    if not isinstance(answer, RangeResponse | TxnResponse):
        return f"mvcc: {name} answered {_show(answer)}, not a range or transaction answer"
    revision = answer.revision
    asked = _asked_revisions(record.op, answer)
    if revision not in compacted_after:
        return f"mvcc: {name} answered at revision {revision}, which the log never made"
    covered = compacted_at.get(revision, -1)
    below = [r for r in asked if r < covered]
    if below:
        return (
            f"mvcc: {name} read revision {below[0]} at revision {revision}, after a "
            f"compaction to {covered} made it unreadable"
        )
    expected = model.read_at(record.op, revision)
    if expected != answer:
        return (
            f"mvcc: {name} answered {_show(answer)}, the reference answers "
            f"{_show(expected)} at revision {revision}"
        )
    return None


def _check_real_time(
    records: Sequence[Record], applied: dict[tuple[str, int], _Applied]
) -> list[str]:
    """If A completed before B was invoked, B does not sit before A (module docstring)."""
    placed: list[tuple[float, float, int, bool, str]] = []  # invoked, completed, revision, ...
    for record in records:
        if record.completed_ms is None or _not_applied(record.answer):
            continue
        name = f"{record.client} seq {record.seq}"
        if record.read:
            if not isinstance(record.answer, RangeResponse | TxnResponse):
                if isinstance(record.answer, KvError) and record.answer.code == "future_revision":
                    revision = max(_asked_revisions(record.op), default=0) - 1
                    placed.append((record.invoked_ms, record.completed_ms, revision, False, name))
                continue
            placed.append(
                (record.invoked_ms, record.completed_ms, record.answer.revision, False, name)
            )
            continue
        entry = applied.get((record.client, record.seq))
        if entry is None:
            continue
        placed.append((record.invoked_ms, record.completed_ms, entry.revision, entry.changed, name))
    by_completion = sorted(placed, key=lambda item: item[1])
    problems: list[str] = []
    done = 0
    highest, highest_name = -1, ""
    for invoked, _, revision, changed, name in sorted(placed, key=lambda item: item[0]):
        while done < len(by_completion) and by_completion[done][1] < invoked:
            if by_completion[done][2] > highest:
                highest, highest_name = by_completion[done][2], by_completion[done][4]
            done += 1
        if revision < highest or (changed and revision == highest):
            where = "wrote at" if changed else "answered at"
            problems.append(
                f"mvcc: real time: {name} {where} revision {revision}, but {highest_name} "
                f"had completed at revision {highest} before it began"
            )
            if len(problems) >= PROBLEMS_MAX:
                break
    return problems


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."
