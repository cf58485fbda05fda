"""paxosd's SQL database from Python: a DB-API 2.0 (PEP 249) driver.

    import paxosd.sql as sqlite3      # code written for sqlite3, with a changed import

    db = paxosd.sql.connect("127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    db.execute("INSERT INTO users (username) VALUES (?)", ("ada",))
    db.commit()

Theory of operation: the driver speaks /v1/sql (docs/sql.md). As Python's sqlite3 does by
default, an INSERT, UPDATE, DELETE or REPLACE opens a transaction, which lasts until
`commit()` or `rollback()`: here that is one of paxosd's interactive transactions, optimistic,
whose queries see its own writes and whose commit is applied only if nothing it read or wrote
changed since it began (else `TransactionConflict`, and nothing applied: run it again). With
`isolation_level=None` (or `autocommit=True`) every statement is applied on its own, at once.

Outside a transaction, reads go to any node (linearizable unless `level` says otherwise) and a
node that does not answer is replaced by the next; writes carry an exactly-once identity, so
resending one to another node after a failure cannot apply it twice. A transaction lives on
the node that began it: if that node fails, the transaction is lost (`OperationalError`, and
nothing of it applied unless its commit had answered).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import httpx

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "TransactionConflict",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
]

apilevel: Final = "2.0"
threadsafety: Final = 1  # threads may share the module, not connections
paramstyle: Final = "qmark"  # and named (:name), as sqlite3

ENDPOINTS_VARIABLE: Final = "PAXOSD_ENDPOINTS"
DEFAULT_ENDPOINTS: Final = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
retry_s_max: Final = 10.0
_DML: Final = frozenset({"insert", "update", "delete", "replace"})


class Warning(Exception):
    pass


class Error(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


class TransactionConflict(OperationalError):
    """The transaction's commit found that something it read or wrote had changed since it
    began: nothing was applied. Run the transaction again."""


def _error(status: int, body: Any) -> DatabaseError:
    code = body.get("error", "") if isinstance(body, dict) else ""
    message = body.get("message", str(body)) if isinstance(body, dict) else str(body)
    if code == "sql_conflict":
        return TransactionConflict(message)
    if code == "sql_constraint":
        return IntegrityError(body.get("sqlite_message", message))
    if code in ("sql_error", "sql_refused", "not_read_only", "result_too_large"):
        text = body.get("sqlite_message", message) if code == "sql_error" else message
        if "bindings" in text or "supply a value" in text:
            return ProgrammingError(text)
        return OperationalError(text)
    if status == 400:
        return ProgrammingError(message)
    return OperationalError(f"{status} {code}: {message}")


def _endpoints(endpoints: str | Sequence[str] | None) -> list[str]:
    if endpoints is None:
        endpoints = os.environ.get(ENDPOINTS_VARIABLE) or DEFAULT_ENDPOINTS
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    found = [e.strip().rstrip("/") for e in endpoints if e.strip()]
    if not found:
        raise InterfaceError("no endpoints: give HOST:PORT[,HOST:PORT...]")
    return [e if "://" in e else f"http://{e}" for e in found]


def _json_param(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    raise ProgrammingError(f"a parameter of type {type(value).__name__} is not supported")


def _statement(sql: str, parameters: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
    if not isinstance(sql, str):
        raise ProgrammingError("the operation must be a string")
    if isinstance(parameters, Mapping):
        return [sql, {name: _json_param(v) for name, v in parameters.items()}]
    if isinstance(parameters, str | bytes):
        raise ProgrammingError("parameters are a sequence or a mapping, not a string")
    return [sql, [_json_param(v) for v in parameters]]


def _value(value: Any, kind: str) -> Any:
    return base64.b64decode(value) if kind == "blob" and isinstance(value, str) else value


class Connection:
    """A DB-API connection to a paxosd cluster (see the module docstring)."""

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        *,
        timeout: float = 10.0,
        level: str = "linearizable",
        isolation_level: str | None = "",
        retry_s: float = retry_s_max,
    ) -> None:
        self._endpoints = _endpoints(endpoints)
        self.retry_s = retry_s
        self._http = httpx.Client(timeout=timeout)
        self._start = 0
        self.level = level
        self.isolation_level = isolation_level
        self._txn: str | None = None
        self._txn_endpoint: str | None = None
        self._client_id = f"sql-{uuid.uuid4().hex}"
        self._seq = itertools.count(1)
        self._closed = False

    # -- PEP 249 -----------------------------------------------------------------------------

    def cursor(self) -> Cursor:
        self._check_open()
        return Cursor(self)

    def commit(self) -> None:
        self._check_open()
        txn, self._txn = self._txn, None
        if txn is not None:
            self._post("/v1/sql/commit", {"txn": txn}, self._txn_endpoint)

    def rollback(self) -> None:
        self._check_open()
        txn, self._txn = self._txn, None
        if txn is not None:
            # Lost or expired, it applied nothing either: nothing to report.
            with contextlib.suppress(OperationalError):
                self._post("/v1/sql/rollback", {"txn": txn}, self._txn_endpoint)

    def close(self) -> None:
        if not self._closed:
            self.rollback()
            self._http.close()
            self._closed = True

    # -- sqlite3's conveniences --------------------------------------------------------------

    def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any) -> Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    @property
    def in_transaction(self) -> bool:
        return self._txn is not None

    @property
    def autocommit(self) -> bool:
        return self.isolation_level is None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        # As sqlite3: commit on success, roll back on an exception; the connection stays open.
        if kind is None:
            self.commit()
        else:
            self.rollback()

    # -- the wire ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ProgrammingError("the connection is closed")

    def _post(self, path: str, body: Any, endpoint: str | None = None, write: bool = False) -> Any:
        """POST to `endpoint` (a transaction's node) or to any node, trying the next one when
        a node does not answer; a write keeps its exactly-once identity across the tries."""
        headers = {}
        if write:
            headers = {"Paxosd-Client-Id": self._client_id, "Paxosd-Seq": str(next(self._seq))}
        deadline = time.monotonic() + self.retry_s
        tries = 0
        while True:
            target = endpoint or self._endpoints[(self._start + tries) % len(self._endpoints)]
            tries += 1
            try:
                response = self._http.post(target + path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                if endpoint is not None or time.monotonic() > deadline:
                    raise OperationalError(f"{target} does not answer: {exc}") from None
                continue
            retry = response.status_code in (429, 503) and endpoint is None
            if retry and time.monotonic() < deadline:
                time.sleep(min(0.05 * tries, 0.5))
                continue
            try:
                answer = response.json()
            except ValueError:
                raise InterfaceError(
                    f"{target} answered {response.status_code}, not JSON"
                ) from None
            if response.status_code != 200:
                raise _error(response.status_code, answer)
            self._start = (self._start + tries - 1) % len(self._endpoints)
            return answer

    def _run(self, statement: list[Any]) -> dict[str, Any]:
        """One statement, in the transaction if one is open (or opens one), else alone."""
        words = statement[0].lstrip().split(None, 1)
        first = words[0].lower() if words else ""
        if self._txn is None and self.isolation_level is not None and first in _DML:
            begun = self._post("/v1/sql/begin", {})
            self._txn = begun["txn"]
            # The transaction lives on the node that began it: the one that answered.
            self._txn_endpoint = self._endpoints[self._start]
        if self._txn is not None:
            reads = first in ("select", "values", "pragma", "explain")
            path = "/v1/sql/query" if reads else "/v1/sql/execute"
            answer = self._post(path, {"txn": self._txn, "statements": [statement]},
                                self._txn_endpoint)  # fmt: skip
        elif first in ("select", "values", "pragma", "explain"):
            answer = self._post("/v1/sql/query", {"statements": [statement], "level": self.level})
        else:
            answer = self._post("/v1/sql/execute", {"statements": [statement]}, write=True)
        result: dict[str, Any] = answer["results"][0]
        return result


class Cursor:
    """A DB-API cursor: its rows are fetched whole with each statement."""

    arraysize: int = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._closed = False

    def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        if self._closed:
            raise ProgrammingError("the cursor is closed")
        result = self.connection._run(_statement(sql, parameters))
        columns = result.get("columns")
        if columns:
            types = result["types"]
            self.description = tuple((name, None, None, None, None, None, None) for name in columns)
            self._rows = [
                tuple(_value(v, types[i]) for i, v in enumerate(row)) for row in result["rows"]
            ]
            self.rowcount = -1
        else:
            self.description = None
            self._rows = []
            self.rowcount = result["rows_affected"]
        if result["last_insert_id"]:
            self.lastrowid = result["last_insert_id"]
        return self

    def executemany(self, sql: str, seq_of_parameters: Any) -> Cursor:
        total = 0
        for parameters in seq_of_parameters:
            self.execute(sql, parameters)
            total += max(self.rowcount, 0)
        self.rowcount = total
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    def fetchall(self) -> list[tuple[Any, ...]]:
        taken, self._rows = self._rows, []
        return taken

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while self._rows:
            yield self._rows.pop(0)

    def close(self) -> None:
        self._closed = True
        self._rows = []

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass


def connect(
    endpoints: str | Sequence[str] | None = None,
    *,
    timeout: float = 10.0,
    level: str = "linearizable",
    isolation_level: str | None = "",
    autocommit: bool = False,
    retry_s: float = retry_s_max,
) -> Connection:
    """A connection to the cluster at `endpoints` (HOST:PORT, comma-separated or a list;
    default: $PAXOSD_ENDPOINTS, else the local cluster's 127.0.0.1:7001-7003). `level`: the
    read level outside transactions (docs/sql.md). `isolation_level=None` or `autocommit`:
    every statement applied on its own. `retry_s`: how long a statement outside a
    transaction goes on trying other endpoints (each attempt waits `timeout` at most)."""
    return Connection(
        endpoints,
        timeout=timeout,
        level=level,
        isolation_level=None if autocommit else isolation_level,
        retry_s=retry_s,
    )
