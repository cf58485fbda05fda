"""The replicated SQL database: SQLite as a state machine behind the router (docs/sql.md).

types.py (requests, answers, limits), policy.py (what a statement may do on a replica),
machine.py (the state machine), codec.py (the log's encoding), rewrite.py (what the node that
takes a request rewrites to constants before it is proposed). This package's namespace holds
the requests and answers only: the results module imports it, and the machine imports results.
"""

from __future__ import annotations

from .types import (
    NO_TRANSACTION,
    NOT_READ_ONLY,
    RESULT_TOO_LARGE,
    SQL_CONFLICT,
    SQL_ERROR,
    SQL_REFUSED,
    SqlAnswer,
    SqlExecute,
    SqlQuery,
    SqlValue,
    Statement,
    StatementResult,
    result_bytes_max,
    result_rows_max,
    statements_max,
    steps_max,
)

__all__ = [
    "NOT_READ_ONLY",
    "NO_TRANSACTION",
    "RESULT_TOO_LARGE",
    "SQL_CONFLICT",
    "SQL_ERROR",
    "SQL_REFUSED",
    "SqlAnswer",
    "SqlExecute",
    "SqlQuery",
    "SqlValue",
    "Statement",
    "StatementResult",
    "result_bytes_max",
    "result_rows_max",
    "statements_max",
    "steps_max",
]
