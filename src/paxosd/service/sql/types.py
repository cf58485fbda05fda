"""The SQL database's requests and answers, and the limits every replica shares.

A write (`SqlExecute`) is a list of statements applied as ONE log entry and ONE SQLite
transaction on every replica. A read (`SqlQuery`) is answered from one replica's current state
(after read-index, or from the node's own state for the `none` level), or, when a client asks
for it (rqlite's `strong` level), through the log like a write. An interactive transaction's
commit is a `SqlExecute` that carries the revision its reads were made at and the tables it
touched: it applies only if none of them changed since (machine.py says why that is enough).

Statement parameters are SQLite's values: null, integer (64-bit), real, text, blob (bytes);
positional (a list) or named (an object whose keys are the names without their `:`, `@` or
`$`). Every limit below is part of the replicated state machine (each replica must refuse
exactly the same requests), so they are constants, not configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

# SQLite's values, as they travel in the log and in answers.
SqlValue: TypeAlias = int | float | str | bytes | None
Params: TypeAlias = tuple[SqlValue, ...] | Mapping[str, SqlValue]

# A request: at most this many statements (a transaction's commit included).
statements_max: Final = 1_000
# One statement's text, in UTF-8 bytes.
statement_bytes_max: Final = 256 * 1024
# One statement's parameters.
params_max: Final = 999
# An answer: at most this many rows, and about this many bytes of values, over all of its
# statements; past either the statement fails with `result_too_large` and changes nothing.
result_rows_max: Final = 100_000
result_bytes_max: Final = 16 * 1024 * 1024
# SQLite virtual-machine steps one request may take (counted in blocks of
# `steps_per_check`). A statement that runs longer is interrupted, on every replica at the
# same step (the count is a property of the statement and the database, not of the machine),
# so a runaway query cannot stall the log: about a second of work on one core.
steps_max: Final = 50_000_000
steps_per_check: Final = 10_000

# Error codes of a failed statement or request (`StatementResult.error_code`,
# `results.Error.code`).
SQL_ERROR: Final = "sql_error"  # SQLite refused it: syntax, constraint, no such table, ...
SQL_REFUSED: Final = "sql_refused"  # paxosd refused it: non-deterministic, ATTACH, PRAGMA, ...
RESULT_TOO_LARGE: Final = "result_too_large"
SQL_CONFLICT: Final = "sql_conflict"  # an interactive transaction's commit found a change
NOT_READ_ONLY: Final = "not_read_only"  # a query tried to change the database


# begin_revision of a request that is not part of an interactive transaction.
NO_TRANSACTION: Final = -1


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement and its parameters."""

    sql: str
    params: Params = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlExecute:
    """Apply `statements` in order, as one SQLite transaction, through the log.

    `atomic`: a failing statement undoes the whole request and stops it (rqlite's
    `?transaction`; always so on /v1); otherwise a failing statement undoes only itself and
    the others still apply (rqlite's default).
    `begin_revision` >= 0 makes this an interactive transaction's commit: it applies only if no
    table of `tables` (and no schema object) changed after that revision; else it answers
    `results.Error(sql_conflict)` and changes nothing. -1: not a transaction's commit.
    """

    statements: tuple[Statement, ...]
    atomic: bool = True
    begin_revision: int = NO_TRANSACTION
    tables: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlQuery:
    """Run read-only `statements` against the current state.

    `through_log`: answered through the log, like a write (rqlite's `strong`); else a read.
    `pending`: an interactive transaction's writes so far, applied first in a savepoint that is
    rolled back (so the query sees them and nothing changes); with `begin_revision` >= 0 a
    table they or the query touch that changed after it answers `sql_conflict` early.
    `local`: answered from this node's own state, without confirming it is current (the
    `none` read level); never sent to another node or the log.
    """

    statements: tuple[Statement, ...]
    through_log: bool = False
    pending: tuple[Statement, ...] = ()
    begin_revision: int = NO_TRANSACTION
    local: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementResult:
    """One statement's answer: rows (`columns`, `types`, `rows`) if it returns any, what it
    changed (`rows_affected`, `last_insert_id`), or `error` (with `error_code`)."""

    columns: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    rows: tuple[tuple[SqlValue, ...], ...] = ()
    rows_affected: int = 0
    last_insert_id: int = 0
    error: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlAnswer:
    """A request's answer: one result per statement run (an atomic request stops at its first
    error), the database's revision after it, whether it changed the database, and the tables
    it read and wrote (sorted; an interactive transaction collects them)."""

    results: tuple[StatementResult, ...]
    revision: int
    applied: bool = False
    tables_read: tuple[str, ...] = field(default=())
    tables_written: tuple[str, ...] = field(default=())

    @property
    def error(self) -> StatementResult | None:
        """The first failed statement, if any."""
        for result in self.results:
            if result.error is not None:
                return result
        return None


def params_list(params: Params) -> list[Any] | dict[str, Any]:
    """Parameters as msgpack and sqlite3 take them."""
    return dict(params) if isinstance(params, Mapping) else list(params)
