"""SQL requests and answers as JSON: rqlite's shapes (/db/...) and paxosd's own (/v1/sql/...).

Statements (both APIs):

* `"SELECT 1"`: a statement without parameters;
* rqlite: `["INSERT INTO t VALUES (?, ?)", "fiona", 20]` (positional) or
  `["INSERT INTO t VALUES (:name, :age)", {"name": "fiona", "age": 20}]` (named);
* /v1: `["INSERT INTO t VALUES (?, ?)", ["fiona", 20]]` or `[sql, {"name": ...}]`.

Parameter values are JSON's null, numbers, strings and booleans (true is 1, false is 0, as
SQLite has no boolean), and on /v1 `{"base64": "..."}` for a blob. An answer's blob is base64
text (as rqlite's), and its column `types` are each column's SQLite storage class (integer,
real, text, blob) taken from the values, or "" for a column of nulls only (rqlite reports the
declared type where there is one; the sqlite3 module does not expose it).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, Final

from paxosd.service.sql import SqlAnswer, SqlValue, Statement, StatementResult

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1


class SqlJsonError(ValueError):
    """A request body that is not a list of statements; the message says what is wrong."""


def statements(document: Any, *, rqlite: bool) -> tuple[Statement, ...]:
    """The statements of a request body (`rqlite`: rqlite's array form, else /v1's)."""
    if type(document) is not list:
        raise SqlJsonError(
            'the body must be a JSON array of statements, e.g. ["SELECT 1"] or '
            '[["INSERT INTO t VALUES (?)", 5]]'
        )
    if not document:
        raise SqlJsonError("the body holds no statement")
    return tuple(_statement(item, i, rqlite) for i, item in enumerate(document))


def _statement(item: Any, index: int, rqlite: bool) -> Statement:
    where = f"statement {index}"
    if type(item) is str:
        return Statement(item, ())
    if type(item) is not list or not item or type(item[0]) is not str:
        raise SqlJsonError(f"{where}: expected a string or an array [sql, parameters...]")
    sql, rest = item[0], item[1:]
    if len(rest) == 1 and type(rest[0]) is dict:
        named = {}
        for name, value in rest[0].items():
            named[name.lstrip(":@$")] = _value(value, f"{where}, parameter {name!r}", rqlite)
        return Statement(sql, named)
    if not rqlite:
        if not rest:
            return Statement(sql, ())
        if len(rest) != 1 or type(rest[0]) is not list:
            raise SqlJsonError(f"{where}: expected [sql, [parameters]] or [sql, {{named}}]")
        rest = rest[0]
    values = tuple(_value(v, f"{where}, parameter {i + 1}", rqlite) for i, v in enumerate(rest))
    return Statement(sql, values)


def _value(value: Any, where: str, rqlite: bool) -> SqlValue:
    kind = type(value)
    if value is None or kind is str:
        return value
    if kind is bool:
        return 1 if value else 0
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise SqlJsonError(f"{where}: {value} is outside SQLite's 64-bit integers")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise SqlJsonError(f"{where}: not a finite number")
        return value
    if not rqlite and kind is dict and list(value) == ["base64"] and type(value["base64"]) is str:
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise SqlJsonError(f"{where}: the blob is not base64") from None
    raise SqlJsonError(
        f"{where}: a parameter is null, a number, a string or a boolean"
        + ("" if rqlite else ', or {"base64": ...} for a blob')
    )


def _json_value(value: SqlValue) -> Any:
    if type(value) is bytes:
        return base64.b64encode(value).decode()
    if type(value) is float and not math.isfinite(value):
        return None if math.isnan(value) else ("Inf" if value > 0 else "-Inf")
    return value


def rows_json(result: StatementResult) -> list[list[Any]]:
    return [[_json_value(v) for v in row] for row in result.rows]


def rqlite_result(result: StatementResult, *, associative: bool) -> dict[str, Any]:
    """One statement's answer as rqlite gives it (members at their zero value left out)."""
    if result.error is not None:
        return {"error": result.error}
    body: dict[str, Any] = {}
    if result.columns:
        values = rows_json(result)
        if associative:
            body["types"] = dict(zip(result.columns, result.types, strict=True))
            body["rows"] = [dict(zip(result.columns, row, strict=True)) for row in values]
        else:
            body["columns"] = list(result.columns)
            body["types"] = list(result.types)
            if values:
                body["values"] = values
        return body
    if result.last_insert_id:
        body["last_insert_id"] = result.last_insert_id
    if result.rows_affected:
        body["rows_affected"] = result.rows_affected
    return body


def v1_result(result: StatementResult) -> dict[str, Any]:
    """One statement's answer on /v1: every member, always."""
    body: dict[str, Any] = {
        "rows_affected": result.rows_affected,
        "last_insert_id": result.last_insert_id,
    }
    if result.columns:
        body.update(columns=list(result.columns), types=list(result.types), rows=rows_json(result))
    return body


def v1_answer(answer: SqlAnswer) -> dict[str, Any]:
    return {"results": [v1_result(r) for r in answer.results], "revision": answer.revision}
