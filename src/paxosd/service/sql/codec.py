"""How the SQL database's requests travel in the log, and its answers in snapshots.

Tags (registry.py gives the SQL database 64-127):

    64  SqlExecute  [64, [statement, ...], atomic, begin_revision, [table, ...]]
    65  SqlQuery    [65, [statement, ...], through_log, [pending statement, ...], begin_revision]

A statement is `[sql, params]`, params an array (positional) or a map (named). Values are
SQLite's: nil, integer (64-bit signed), float, string, binary. Decoding checks everything
(`BadCommand` only), so a malformed payload answers the same error on every replica.

The exactly-once table caches answers; `answer_to_raw` / `answer_from_raw` carry an
`SqlAnswer` in snapshots under answer tag 64:

    [64, [[columns, types, rows, rows_affected, last_insert_id, error, error_code], ...],
     revision, applied, tables_read, tables_written]
"""

from __future__ import annotations

from typing import Any, Final

from paxosd.service.codec import OpCodec, check_int
from paxosd.service.errors import BadCommand, CorruptSnapshot

from .types import (
    Params,
    SqlAnswer,
    SqlExecute,
    SqlQuery,
    Statement,
    StatementResult,
    params_max,
    statement_bytes_max,
    statements_max,
)

EXECUTE_TAG: Final = 64
QUERY_TAG: Final = 65
ANSWER_TAG: Final = 64
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1
_REVISION_MAX: Final = 2**63 - 1
_TABLE_BYTES_MAX: Final = 1024


def _check_value(value: object, where: str) -> None:
    kind = type(value)
    if value is None or kind is float or kind is str or kind is bytes:
        return
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            raise BadCommand(where, f"integer {value} is outside SQLite's 64-bit range")
        return
    raise BadCommand(where, f"a {kind.__name__} is not an SQL value (null, number, text, blob)")


def _check_sql(sql: object, where: str) -> str:
    if type(sql) is not str:
        raise BadCommand(where, f"expected the statement's text, got {type(sql).__name__}")
    if not sql.strip():
        raise BadCommand(where, "the statement is empty")
    if len(sql) * 4 > statement_bytes_max:
        try:
            size = len(sql.encode())
        except UnicodeEncodeError:
            raise BadCommand(where, "not valid UTF-8 (lone surrogate)") from None
        if size > statement_bytes_max:
            raise BadCommand(where, f"{size} bytes, more than {statement_bytes_max}")
    return sql


def _check_params(params: object, where: str) -> Params:
    if type(params) is list or type(params) is tuple:
        if len(params) > params_max:
            raise BadCommand(where, f"{len(params)} parameters, more than {params_max}")
        for value in params:
            _check_value(value, where)
        return tuple(params)
    if type(params) is dict:
        if len(params) > params_max:
            raise BadCommand(where, f"{len(params)} parameters, more than {params_max}")
        for name, value in params.items():
            if type(name) is not str or not name:
                raise BadCommand(where, "a named parameter's name must be a non-empty string")
            _check_value(value, f"{where}.{name}")
        return dict(params)
    raise BadCommand(where, "parameters are an array (positional) or an object (named)")


def _statements(raw: object, where: str) -> tuple[Statement, ...]:
    if type(raw) is not list and type(raw) is not tuple:
        raise BadCommand(where, "expected an array of statements")
    if len(raw) > statements_max:
        raise BadCommand(where, f"{len(raw)} statements, more than {statements_max}")
    statements = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        if type(item) is not list or len(item) != 2:
            raise BadCommand(here, "expected [sql, params]")
        statements.append(Statement(_check_sql(item[0], here), _check_params(item[1], here)))
    return tuple(statements)


def _raw_statements(statements: tuple[Statement, ...], where: str) -> list[Any]:
    if type(statements) is not tuple:
        raise BadCommand(where, "expected a tuple of statements")
    raw = []
    for i, statement in enumerate(statements):
        if type(statement) is not Statement:
            raise BadCommand(f"{where}[{i}]", "expected a Statement")
        params = statement.params
        raw.append([statement.sql, dict(params) if type(params) is dict else list(params)])
    _statements(raw, where)  # the decoder's checks, so encode refuses what decode would
    return raw


def _tables(raw: object, where: str) -> tuple[str, ...]:
    if type(raw) is not list and type(raw) is not tuple:
        raise BadCommand(where, "expected an array of table names")
    if len(raw) > statements_max * 8:
        raise BadCommand(where, "too many tables")
    for name in raw:
        if type(name) is not str or not name or len(name) > _TABLE_BYTES_MAX:
            raise BadCommand(where, "a table name must be a non-empty string")
    return tuple(raw)


def _bool(value: object, where: str) -> bool:
    if type(value) is not bool:
        raise BadCommand(where, f"expected a boolean, got {type(value).__name__}")
    return value


def _encode_execute(op: SqlExecute) -> list[Any]:
    statements = _raw_statements(op.statements, "SqlExecute.statements")
    if not statements:
        raise BadCommand("SqlExecute.statements", "no statement to execute")
    _bool(op.atomic, "SqlExecute.atomic")
    check_int(op.begin_revision, "SqlExecute.begin_revision", -1, _REVISION_MAX)
    tables = list(_tables(op.tables, "SqlExecute.tables"))
    return [EXECUTE_TAG, statements, op.atomic, op.begin_revision, tables]


def _decode_execute(raw: list[Any]) -> SqlExecute:
    if len(raw) != 5:
        raise BadCommand("SqlExecute", f"expected 4 fields, got {len(raw) - 1}")
    statements = _statements(raw[1], "SqlExecute.statements")
    if not statements:
        raise BadCommand("SqlExecute.statements", "no statement to execute")
    atomic = _bool(raw[2], "SqlExecute.atomic")
    check_int(raw[3], "SqlExecute.begin_revision", -1, _REVISION_MAX)
    tables = _tables(raw[4], "SqlExecute.tables")
    return SqlExecute(statements=statements, atomic=atomic, begin_revision=raw[3], tables=tables)


def _encode_query(op: SqlQuery) -> list[Any]:
    statements = _raw_statements(op.statements, "SqlQuery.statements")
    _bool(op.through_log, "SqlQuery.through_log")
    if op.local and op.through_log:
        raise BadCommand("SqlQuery.local", "a local query is not sent through the log")
    pending = _raw_statements(op.pending, "SqlQuery.pending")
    if not statements and not pending:
        raise BadCommand("SqlQuery.statements", "no statement to run")
    check_int(op.begin_revision, "SqlQuery.begin_revision", -1, _REVISION_MAX)
    return [QUERY_TAG, statements, op.through_log, pending, op.begin_revision]


def _decode_query(raw: list[Any]) -> SqlQuery:
    if len(raw) != 5:
        raise BadCommand("SqlQuery", f"expected 4 fields, got {len(raw) - 1}")
    statements = _statements(raw[1], "SqlQuery.statements")
    through_log = _bool(raw[2], "SqlQuery.through_log")
    pending = _statements(raw[3], "SqlQuery.pending")
    if not statements and not pending:
        raise BadCommand("SqlQuery.statements", "no statement to run")
    check_int(raw[4], "SqlQuery.begin_revision", -1, _REVISION_MAX)
    return SqlQuery(
        statements=statements, through_log=through_log, pending=pending, begin_revision=raw[4]
    )


def _no_measure(op: Any) -> None:
    """Statements are measured as they are decoded (statement_bytes_max)."""


CODECS: Final = (
    OpCodec(
        SqlExecute, EXECUTE_TAG, _encode_execute, _decode_execute, _no_measure, lambda op: False
    ),
    OpCodec(
        SqlQuery,
        QUERY_TAG,
        _encode_query,
        _decode_query,
        _no_measure,
        lambda op: not op.through_log,
    ),
)


# ---------------------------------------------------------------------------------------------
# Answers in snapshots (the exactly-once table's cached answers)


def answer_to_raw(answer: SqlAnswer) -> list[Any]:
    return [
        ANSWER_TAG,
        [
            [
                list(r.columns),
                list(r.types),
                [list(row) for row in r.rows],
                r.rows_affected,
                r.last_insert_id,
                r.error,
                r.error_code,
            ]
            for r in answer.results
        ],
        answer.revision,
        answer.applied,
        list(answer.tables_read),
        list(answer.tables_written),
    ]


def _strings(raw: object, what: str) -> tuple[str, ...]:
    if type(raw) is not list or any(type(item) is not str for item in raw):
        raise CorruptSnapshot(f"cached SQL answer: {what} is not a list of strings")
    return tuple(raw)


def _optional_str(raw: object, what: str) -> str | None:
    if raw is not None and type(raw) is not str:
        raise CorruptSnapshot(f"cached SQL answer: {what} is malformed")
    return raw


def _int(raw: object, what: str, low: int = _INT_MIN) -> int:
    if type(raw) is not int or not low <= raw <= _INT_MAX:
        raise CorruptSnapshot(f"cached SQL answer: {what} is malformed")
    return raw


def answer_from_raw(raw: list[Any]) -> SqlAnswer:
    """Inverse of `answer_to_raw`; `CorruptSnapshot` for anything it did not write."""
    if len(raw) != 6 or type(raw[1]) is not list or type(raw[3]) is not bool:
        raise CorruptSnapshot("malformed cached SQL answer")
    results = []
    for item in raw[1]:
        if type(item) is not list or len(item) != 7 or type(item[2]) is not list:
            raise CorruptSnapshot("malformed cached SQL statement result")
        rows = []
        for row in item[2]:
            if type(row) is not list:
                raise CorruptSnapshot("malformed cached SQL row")
            for value in row:
                try:
                    _check_value(value, "row")
                except BadCommand:
                    raise CorruptSnapshot("malformed cached SQL value") from None
            rows.append(tuple(row))
        results.append(
            StatementResult(
                columns=_strings(item[0], "columns"),
                types=_strings(item[1], "types"),
                rows=tuple(rows),
                rows_affected=_int(item[3], "rows_affected", 0),
                last_insert_id=_int(item[4], "last_insert_id"),
                error=_optional_str(item[5], "error"),
                error_code=_optional_str(item[6], "error_code"),
            )
        )
    return SqlAnswer(
        results=tuple(results),
        revision=_int(raw[2], "revision", 0),
        applied=raw[3],
        tables_read=_strings(raw[4], "tables_read"),
        tables_written=_strings(raw[5], "tables_written"),
    )
