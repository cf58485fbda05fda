"""The SQL database over HTTP: rqlite's API (/db/execute, /db/query, /db/request) and paxosd's
own (/v1/sql/...), with interactive transactions.

Theory of operation: each handler turns its body into statements (sql_json.py), rewrites a
write's calls of randomness and the clock to constants (service/sql/rewrite.py: this node
draws and reads them once, so every replica runs the same statement), and runs one request
of the SQL database through `Call.execute`: a write through the log, a query by read-index on
any node (or as its read level says). Then it shapes the answer:

* rqlite's endpoints answer as rqlite does, 200 with one result per statement and a failed
  statement's `error` in its result (what rqlite's clients read); a body that is not a list
  of statements is a 400;
* /v1/sql answers 200 only if every statement succeeded; else a 4xx naming the statement and
  SQLite's message (400 for a syntax error, a refused function, a read that writes, a result
  over its limit; 409 for a constraint or a transaction's conflict), and nothing applied.

Read levels (rqlite's `level`): `none` reads this node's state as it is (it may lag the
cluster); `weak` and `linearizable` are paxosd's linearizable read (the leader confirms it
still leads with a quorum before the read is answered: paxosd has no reads on a leader's
lease alone, so `weak` is never staler than `linearizable`); `strong` goes through the log.
The default is `linearizable` (rqlite's is `weak`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

from aiohttp import web

from paxosd.runtime.errors import ServiceError as NodeError
from paxosd.service.sql import (
    NOT_READ_ONLY,
    RESULT_TOO_LARGE,
    SQL_ERROR,
    SQL_REFUSED,
    SqlAnswer,
    SqlExecute,
    SqlQuery,
    Statement,
)
from paxosd.service.sql.rewrite import Sources, rewrite

from . import sql_json, sql_transactions
from .calls import Call, parse_json, read_raw_body
from .failures import ApiError
from .schema import BAD_REQUEST

__all__ = [
    "db_execute",
    "db_query",
    "db_request",
    "sql_begin",
    "sql_commit",
    "sql_execute",
    "sql_query",
    "sql_rollback",
]

LEVELS: Final = ("none", "weak", "linearizable", "strong")
# Statements that only read, by their first word: /db/request sends a body of these alone as a
# query, anything else through the log.
_READ_WORDS: Final = frozenset({"select", "pragma", "explain", "values"})


def _flag(call: Call, name: str) -> bool:
    """rqlite's boolean query parameters: present (`?transaction`) or true/1."""
    query = call.request.query
    if name not in query:
        return False
    return query[name].lower() in ("", "true", "1", "yes", "on")


def _level(call: Call, value: object) -> str:
    level = "linearizable" if value is None else value
    if level not in LEVELS:
        raise ApiError(
            400,
            BAD_REQUEST,
            f"unknown read level {str(level)[:40]!r}: one of {', '.join(LEVELS)}",
            field="level",
        )
    return str(level)


def _query_op(statements: tuple[Statement, ...], level: str, **fields: Any) -> SqlQuery:
    return SqlQuery(
        statements=statements,
        through_log=level == "strong",
        local=level == "none",
        **fields,
    )


def _rewritten(statements: tuple[Statement, ...]) -> tuple[Statement, ...]:
    sources = Sources(now_ms=int(time.time() * 1000), random_bytes=os.urandom)
    return tuple(Statement(rewrite(s.sql, sources), s.params) for s in statements)


async def _body(call: Call) -> Any:
    return parse_json(await read_raw_body(call.request, call.body_timeout_s))


def _parse(document: Any, *, rqlite: bool) -> tuple[Statement, ...]:
    try:
        return sql_json.statements(document, rqlite=rqlite)
    except sql_json.SqlJsonError as exc:
        raise ApiError(400, BAD_REQUEST, str(exc), field="statements") from None


async def _run(call: Call, op: Any) -> SqlAnswer:
    answer = await call.execute(op)
    if not isinstance(answer, SqlAnswer):
        raise TypeError(f"the SQL database answered {type(answer).__name__}")
    return answer


# ---------------------------------------------------------------------------------------------
# rqlite's API


def _rqlite(call: Call, answer: SqlAnswer, started: float) -> web.Response:
    associative = _flag(call, "associative")
    body: dict[str, Any] = {
        "results": [sql_json.rqlite_result(r, associative=associative) for r in answer.results]
    }
    if _flag(call, "timings"):
        # Measured by this node around the whole request (paxosd does not time statements).
        body["time"] = time.perf_counter() - started
    return web.json_response(body)


async def db_execute(call: Call) -> web.Response:
    started = time.perf_counter()
    statements = _rewritten(_parse(await _body(call), rqlite=True))
    op = SqlExecute(statements=statements, atomic=_flag(call, "transaction"))
    return _rqlite(call, await _run(call, op), started)


async def db_query(call: Call) -> web.Response:
    started = time.perf_counter()
    if call.request.method == "GET":
        texts = call.request.query.getall("q", [])
        if not texts:
            raise ApiError(400, BAD_REQUEST, "give the query as ?q=SELECT ...", field="q")
        statements = tuple(Statement(text, ()) for text in texts)
    else:
        statements = _parse(await _body(call), rqlite=True)
    level = _level(call, call.request.query.get("level"))
    return _rqlite(call, await _run(call, _query_op(statements, level)), started)


def _reads_only(statements: tuple[Statement, ...]) -> bool:
    for statement in statements:
        words = statement.sql.lstrip(" \t\r\n(").split(None, 1)
        if not words or words[0].lower() not in _READ_WORDS:
            return False
    return True


async def db_request(call: Call) -> web.Response:
    """Reads and writes in one body: a body of reads alone is a query (at `level`), any
    write sends the whole body through the log (its reads answered there, in order)."""
    started = time.perf_counter()
    statements = _parse(await _body(call), rqlite=True)
    if _reads_only(statements):
        op: Any = _query_op(statements, _level(call, call.request.query.get("level")))
    else:
        op = SqlExecute(statements=_rewritten(statements), atomic=_flag(call, "transaction"))
    return _rqlite(call, await _run(call, op), started)


# ---------------------------------------------------------------------------------------------
# /v1/sql


def _statement_status(code: str | None, message: str) -> tuple[int, str]:
    if code == SQL_ERROR and "constraint failed" in message:
        return 409, "sql_constraint"
    if code in (SQL_REFUSED, NOT_READ_ONLY, RESULT_TOO_LARGE):
        return 400, code or SQL_ERROR
    return 400, code or SQL_ERROR


def _checked(answer: SqlAnswer, offset: int = 0) -> SqlAnswer:
    """`answer` if every statement succeeded, else the first failure as an ApiError."""
    for index, result in enumerate(answer.results):
        if result.error is not None:
            status, code = _statement_status(result.error_code, result.error)
            raise ApiError(
                status,
                code,
                f"statement {index - offset}: {result.error}; nothing was applied",
                statement=index - offset,
                sqlite_message=result.error,
            )
    return answer


def _v1_statements(body: Any) -> tuple[Statement, ...]:
    if type(body) is not dict or "statements" not in body:
        raise ApiError(400, BAD_REQUEST, 'the body must be {"statements": [...]}')
    return _parse(body["statements"], rqlite=False)


def _only(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if type(body) is not dict:
        raise ApiError(400, BAD_REQUEST, "the body must be a JSON object")
    for name in body:
        if name not in allowed:
            raise ApiError(
                400,
                BAD_REQUEST,
                f"unknown field {name!r} (expected: {', '.join(allowed)})",
                field=name,
            )
    return body


async def sql_execute(call: Call) -> web.Response:
    body = _only(await _body(call), ("statements", "txn"))
    statements = _rewritten(_v1_statements(body))
    if "txn" in body:
        return await _txn_execute(call, body["txn"], statements)
    answer = _checked(await _run(call, SqlExecute(statements=statements, atomic=True)))
    return web.json_response(sql_json.v1_answer(answer))


async def sql_query(call: Call) -> web.Response:
    body = _only(await _body(call), ("statements", "level", "txn"))
    statements = _v1_statements(body)
    if "txn" in body:
        if "level" in body:
            raise ApiError(400, BAD_REQUEST, "a transaction's queries are linearizable: no level")
        return await _txn_query(call, body["txn"], statements)
    level = _level(call, body.get("level"))
    answer = _checked(await _run(call, _query_op(statements, level)))
    return web.json_response({**sql_json.v1_answer(answer), "level": level})


# ---------------------------------------------------------------------------------------------
# Interactive transactions


async def sql_begin(call: Call) -> web.Response:
    _only(await _body(call), ())
    # The revision the transaction reads at: the current one, confirmed by read-index.
    answer = await _run(call, SqlQuery(statements=(Statement("SELECT 1", ()),)))
    table = sql_transactions.of(call.node)
    txn = table.begin(answer.revision)
    return web.json_response(
        {
            "txn": txn.id,
            "revision": txn.begin_revision,
            "idle_timeout_ms": round(table.idle_timeout_s * 1000),
        }
    )


async def _txn_execute(
    call: Call, txn_id: object, statements: tuple[Statement, ...]
) -> web.Response:
    """A transaction's writes: run now on top of its earlier writes (and rolled back), to
    answer them; kept to run again at the commit."""
    table = sql_transactions.of(call.node)
    txn = table.get(txn_id)
    op = SqlQuery(
        statements=(), pending=(*txn.pending, *statements), begin_revision=txn.begin_revision
    )
    answer = _checked(await _run(call, op), offset=len(txn.pending))
    table.add_writes(txn, statements)
    txn.tables.update(answer.tables_read, answer.tables_written)
    mine = answer.results[len(txn.pending) - len(statements) :]
    return web.json_response(
        {"results": [sql_json.v1_result(r) for r in mine], "txn": txn.id, "pending": True}
    )


async def _txn_query(call: Call, txn_id: object, statements: tuple[Statement, ...]) -> web.Response:
    table = sql_transactions.of(call.node)
    txn = table.get(txn_id)
    op = SqlQuery(
        statements=statements, pending=tuple(txn.pending), begin_revision=txn.begin_revision
    )
    answer = _checked(await _run(call, op), offset=len(txn.pending))
    txn.tables.update(answer.tables_read, answer.tables_written)
    mine = answer.results[len(txn.pending) :]
    return web.json_response(
        {
            "results": [sql_json.v1_result(r) for r in mine],
            "revision": txn.begin_revision,
            "txn": txn.id,
        }
    )


async def sql_commit(call: Call) -> web.Response:
    body = _only(await _body(call), ("txn",))
    table = sql_transactions.of(call.node)
    txn = table.get(body.get("txn"))
    if not txn.pending:
        # Read only: every query saw the tables it read as they were at the transaction's
        # revision (each checked none had changed), so it serializes there; nothing to log.
        table.end(txn)
        return web.json_response({"committed": True, "results": [], "revision": txn.begin_revision})
    op = SqlExecute(
        statements=tuple(txn.pending),
        atomic=True,
        begin_revision=txn.begin_revision,
        tables=tuple(sorted(txn.tables)),
    )
    try:
        answer = await _run(call, op)
    except NodeError:
        raise  # outcome unknown: the transaction stays, so a retry resends the same commit
    except ApiError:
        table.end(txn)  # a conflict, or a refusal: nothing applied, the transaction is over
        raise
    table.end(txn)
    _checked(answer)
    return web.json_response(
        {
            "committed": True,
            "results": [sql_json.v1_result(r) for r in answer.results],
            "revision": answer.revision,
        }
    )


async def sql_rollback(call: Call) -> web.Response:
    body = _only(await _body(call), ("txn",))
    table = sql_transactions.of(call.node)
    table.end(table.get(body.get("txn")))
    return web.json_response({"rolled_back": True})
