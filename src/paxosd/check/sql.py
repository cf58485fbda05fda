"""The simulator's checker of the SQL database: replicas agree, the bank keeps its money,
committed transactions are serializable, a username is given once, reads are linearizable.

Theory of operation. The log is the candidate serial order, as in check/mvcc.py: the checker
replays the agreed log through a state machine built as the nodes' (their options, their
planted bug if any), which gives each request's answer and the database at every revision,
and then judges what clients saw and what the replay did against the specification, never
against the machine's own verdicts:

1. Replicas. The simulator compares, at every position of the log where a node's SQL
   revision moved, that node's database (its content hash) with the first node's there
   (sim/cluster.py); a difference is a violation.
2. Answers. A write a client saw answered must be in the log with that answer; a read's rows
   must be the replay's table at the revision the read names.
3. Serializability. A transfer is an interactive transaction: it read every balance at
   revision B and commits absolute balances computed from them. Its commit must apply only
   if no request wrote `accounts` after B: the checker tracks, from the replay, the revision
   of the last write of `accounts` (any applied request whose statements write it), and a
   commit applied while that revision is above its B is a violation. With that rule the log
   order is a serial order of the committed transactions in which every transaction reads
   what it read (the table as of B is the table at its commit), which is serializability;
   the commit's position lies within its real-time interval, so it is strict.
4. Invariants. The total of the balances is the opening total after every applied write and
   in every read and audit (a lost update creates or destroys money); each username has at
   most one successful sign-up, and its row names the client that was told it succeeded.
5. Real time. A read must not name a revision below that of a write completed before it
   was invoked.
6. List-append (the `sql-append` workload, as Elle reads such histories): each list only
   grows, so every read of a list must be a prefix of its final value; a committed append
   wrote what it read plus its element, and that must still be a prefix of the final list
   (else a later commit wrote over it: a lost update); an element is in a list at most once,
   and never if its transaction was refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paxosd.service.commands import Request, decode
from paxosd.service.errors import BadCommand
from paxosd.service.namespace import Options
from paxosd.service.results import REQUEST_MISMATCH, STALE_REQUEST, Error
from paxosd.service.router import Router
from paxosd.service.sql import SqlAnswer, SqlExecute, SqlQuery, Statement
from paxosd.sim.sql_workload import ACCOUNTS, TOTAL

PROBLEMS_MAX = 5
_BALANCES = SqlQuery(statements=(Statement("SELECT id, balance FROM accounts ORDER BY id"),))
_SIGNUPS = SqlQuery(statements=(Statement("SELECT username, client FROM signups"),))
_LISTS = SqlQuery(statements=(Statement("SELECT k, elements FROM lists"),))
# The workloads' tables: which ones a request writes is read from its statements' text, not
# from the machine under test.
_TABLES = ("accounts", "lists", "signups", "noise")


@dataclass(frozen=True, slots=True)
class Record:
    """One client operation of the sql workload."""

    client: str
    seq: int
    kind: str
    op: Any
    invoked_ms: float
    completed_ms: float | None
    answer: Any


def _tables_written(op: SqlExecute) -> set[str]:
    return {
        table
        for s in op.statements
        if not s.sql.lstrip().upper().startswith("SELECT")
        for table in _TABLES
        if table in s.sql
    }


def _rows(answer: Any) -> tuple[tuple[Any, ...], ...] | None:
    if isinstance(answer, SqlAnswer) and answer.error is None and answer.results:
        return answer.results[0].rows
    return None


def check(
    log: Iterable[bytes], records: Sequence[Record], options: Options, divergences: Sequence[str]
) -> list[str]:
    """The problems found (none: the history is as the module docstring says), at most
    PROBLEMS_MAX."""
    problems = list(dict.fromkeys(divergences))
    router = Router(options=options)
    applied: dict[tuple[str, int], Any] = {}
    balances: dict[int, tuple[tuple[Any, ...], ...]] = {}
    last_write: dict[str, int] = {}
    for slot, payload in enumerate(log, start=1):
        try:
            command = decode(payload)
        except BadCommand:
            command = None
        revision_before = router.sql.revision
        answer, request = router.apply(slot, payload)
        if not isinstance(command, Request) or request is None:
            continue
        op = command.op
        if not isinstance(op, SqlExecute | SqlQuery):
            continue
        applied.setdefault(request, answer)
        if not isinstance(op, SqlExecute) or not isinstance(answer, SqlAnswer):
            continue
        if not answer.applied or router.sql.revision == revision_before:
            continue
        for table in op.tables if op.begin_revision >= 0 else ():
            if last_write.get(table, 0) > op.begin_revision:
                problems.append(
                    f"sql: {command.client_id} seq {command.seq} committed a transaction that "
                    f"read {table} at revision {op.begin_revision}, but revision "
                    f"{last_write[table]} wrote {table} before its commit (not serializable: "
                    "a lost update)"
                )
        written = _tables_written(op)
        for table in written:
            last_write[table] = router.sql.revision
        if "accounts" in written:
            rows = _rows(router.read(_BALANCES))
            if rows is not None:
                balances[router.sql.revision] = rows
                total = sum(int(row[1]) for row in rows)
                if len(rows) == len(ACCOUNTS) and total != TOTAL:
                    problems.append(
                        f"sql: the bank holds {total} after revision {router.sql.revision} "
                        f"({command.client_id} seq {command.seq}), not {TOTAL}"
                    )
    # A few of each kind, so that one kind's many cannot hide another's.
    found = [
        list(dict.fromkeys(problems)),
        _check_answers(records, applied, balances),
        _check_signups(records, router),
        _check_lists(records, router),
    ]
    return [problem for kind in found for problem in kind[:2]][: PROBLEMS_MAX * 2]


def _skipped(answer: Any) -> bool:
    """Refused by the exactly-once table: it did not happen."""
    return isinstance(answer, Error) and answer.code in (STALE_REQUEST, REQUEST_MISMATCH)


def _check_answers(
    records: Sequence[Record],
    applied: dict[tuple[str, int], Any],
    balances: dict[int, tuple[tuple[Any, ...], ...]],
) -> list[str]:
    problems = []
    written: list[tuple[float, int]] = []  # (completed, revision) of answered writes
    for record in records:
        if record.completed_ms is None or _skipped(record.answer):
            continue
        name = f"{record.client} seq {record.seq} ({record.kind})"
        read = isinstance(record.op, SqlQuery) and not record.op.through_log
        if not read:
            logged = applied.get((record.client, record.seq))
            if logged is None:
                problems.append(f"sql: {name} was answered, but it is nowhere in the log")
            elif logged != record.answer:
                problems.append(
                    f"sql: {name} answered {record.answer!r:.200}, the log's replay answers "
                    f"{logged!r:.200}"
                )
            if isinstance(record.answer, SqlAnswer) and record.answer.applied:
                written.append((record.completed_ms, record.answer.revision))
        rows = _rows(record.answer)
        if rows is None:
            continue
        if record.kind == "read":
            revision = record.answer.revision
            expected = balances.get(revision)
            if expected is not None and expected != rows:
                problems.append(
                    f"sql: {name} read {rows} at revision {revision}, the replay has {expected}"
                )
            total = sum(int(row[1]) for row in rows)
            if len(rows) == len(ACCOUNTS) and total != TOTAL:
                problems.append(f"sql: {name} read a bank of {total}, not {TOTAL}")
        if record.kind == "audit" and rows and rows[0][1] == len(ACCOUNTS) and rows[0][0] != TOTAL:
            problems.append(f"sql: {name} audited a bank of {rows[0][0]}, not {TOTAL}")
    written.sort()
    for record in records:
        if record.kind != "read" or record.completed_ms is None:
            continue
        answer = record.answer
        if not isinstance(answer, SqlAnswer):
            continue
        before = [revision for done, revision in written if done < record.invoked_ms]
        if before and answer.revision < max(before):
            problems.append(
                f"sql: {record.client} seq {record.seq} read revision {answer.revision}, below "
                f"revision {max(before)} of a write completed before it began (a stale read)"
            )
    return problems


def _check_signups(records: Sequence[Record], router: Router) -> list[str]:
    problems = []
    rows = _rows(router.read(_SIGNUPS)) or ()
    owners = {str(row[0]): str(row[1]) for row in rows}
    told: dict[str, list[str]] = {}
    for record in records:
        answer = record.answer
        if record.kind != "signup" or not isinstance(answer, SqlAnswer):
            continue
        if answer.applied and answer.error is None:
            username = str(record.op.statements[0].params[0])
            told.setdefault(username, []).append(record.client)
    for username, clients in sorted(told.items()):
        if len(set(clients)) > 1:
            problems.append(f"sql: {username!r} was signed up by {sorted(set(clients))}")
        elif owners.get(username) != clients[0]:
            problems.append(
                f"sql: {clients[0]} was told it signed up {username!r}, the table says "
                f"{owners.get(username)!r}"
            )
    return problems


def _check_lists(records: Sequence[Record], router: Router) -> list[str]:
    rows = _rows(router.read(_LISTS)) or ()
    final = {str(row[0]): str(row[1]).split() for row in rows}
    problems = []
    for key, elements in sorted(final.items()):
        if len(set(elements)) != len(elements):
            problems.append(f"sql: list {key} holds an element twice: {elements}")
    refused: set[str] = set()
    for record in records:
        answer = record.answer
        if record.kind == "lists-read" and isinstance(answer, SqlAnswer):
            for key, text in _rows(answer) or ():
                read = str(text).split()
                if final.get(str(key), [])[: len(read)] != read:
                    problems.append(
                        f"sql: {record.client} seq {record.seq} read list {key} as {read}, "
                        f"not a prefix of its final value {final.get(str(key))}"
                    )
        if record.kind != "append" or record.completed_ms is None:
            continue
        for statement in record.op.statements:
            key, text = str(statement.params[0]), str(statement.params[1])
            wrote = text.split()
            if isinstance(answer, SqlAnswer) and answer.applied and answer.error is None:
                if final.get(key, [])[: len(wrote)] != wrote:
                    problems.append(
                        f"sql: {record.client} seq {record.seq} committed list {key} as "
                        f"{wrote}, but its final value {final.get(key)} does not begin with "
                        "it (a later commit wrote over it: a lost update)"
                    )
            elif isinstance(answer, Error) and wrote:
                refused.add(wrote[-1])
    for key, elements in sorted(final.items()):
        lost = refused.intersection(elements)
        if lost:
            problems.append(f"sql: list {key} holds {sorted(lost)}, whose commits were refused")
    return problems
