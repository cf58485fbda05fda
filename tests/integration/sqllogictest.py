"""A runner of SQLite's sqllogictest files (../shared/testdata/sqllogictest/README.md has the
format) against two engines: Python's own `sqlite3` (the oracle: it passes every record) and a
paxosd cluster through rqlite's HTTP API, each record on the next node in turn.

Writes carry exactly-once headers, so a write whose node died or whose outcome was unknown is
resent, on another node, until it has an answer: a leader lost in the middle of a file changes
no record's result.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx

TESTDATA = Path(__file__).resolve().parents[1] / "data" / "sqllogictest"
_HASHED = re.compile(r"^(\d+) values hashing to ([0-9a-f]{32})$")
_LEADING_INT = re.compile(r"^\s*[+-]?\d+")
_LEADING_REAL = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class Record:
    line: int
    kind: str  # "statement" or "query"
    sql: str
    expect_error: bool = False
    types: str = ""
    sort: str = "nosort"
    expected: list[str] = field(default_factory=list)
    hash_threshold: int = 0


def parse(path: Path) -> Iterator[Record]:
    """The records of a file that apply to SQLite (skipif/onlyif), up to a `halt` that does."""
    lines = path.read_text().splitlines()
    conditions: list[tuple[str, str]] = []
    threshold = 0
    i = 0
    while i < len(lines):
        words = lines[i].split()
        start = i + 1
        i += 1
        if not words or words[0].startswith("#"):
            continue
        head = words[0]
        if head in ("skipif", "onlyif"):
            conditions.append((head, words[1]))
            continue
        applies = all(
            (kind == "skipif" and db != "sqlite") or (kind == "onlyif" and db == "sqlite")
            for kind, db in conditions
        )
        conditions = []
        if head == "hash-threshold":
            threshold = int(words[1])
            continue
        if head == "halt":
            if applies:
                return
            continue
        sql_lines: list[str] = []
        while i < len(lines) and lines[i].strip() and lines[i] != "----":
            sql_lines.append(lines[i])
            i += 1
        expected: list[str] = []
        if i < len(lines) and lines[i] == "----":
            i += 1
            while i < len(lines) and lines[i].strip():
                expected.append(lines[i])
                i += 1
        if not applies:
            continue
        sql = "\n".join(sql_lines)
        if head == "statement":
            yield Record(start, "statement", sql, expect_error=words[1] == "error")
        elif head == "query":
            sort = words[2] if len(words) > 2 else "nosort"
            yield Record(start, "query", sql, types=words[1], sort=sort, expected=expected,
                         hash_threshold=threshold)  # fmt: skip


def split(sql: str) -> list[str]:
    """A record's statements (a `statement` record may hold several, as sqlite3_exec runs
    them), cut where SQLite says a statement is complete (a trigger's body stays whole)."""
    statements = []
    buffer = ""
    for char in sql:
        buffer += char
        if char == ";" and sqlite3.complete_statement(buffer):
            statements.append(buffer)
            buffer = ""
    if buffer.strip():
        statements.append(buffer)
    return statements


# ---------------------------------------------------------------------------------------------
# Engines: `statement` answers an error message or None, `query` (rows, None) or (None, error)


class Engine(Protocol):
    def statement(self, sql: str) -> str | None: ...

    def query(self, sql: str) -> tuple[list[list[Any]] | None, str | None]: ...


class LocalSqlite:
    """The oracle: one in-memory database of Python's sqlite3."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:", isolation_level=None)

    def statement(self, sql: str) -> str | None:
        try:
            for one in split(sql):
                self.db.execute(one).fetchall()
        except sqlite3.Error as exc:
            return str(exc)
        return None

    def query(self, sql: str) -> tuple[list[list[Any]] | None, str | None]:
        try:
            return [list(row) for row in self.db.execute(sql).fetchall()], None
        except sqlite3.Error as exc:
            return None, str(exc)


class Cluster:
    """A paxosd cluster through rqlite's API: each request on the next node in turn; a node
    that does not answer (or answers that the outcome is unknown) is skipped and the same
    request, with the same exactly-once identity, goes to the next one."""

    def __init__(self, addresses: list[str], retry_s: float = 60.0) -> None:
        self.clients = [httpx.Client(base_url=f"http://{a}", timeout=10) for a in addresses]
        self.turn = itertools.cycle(range(len(addresses)))
        self.client_id = f"slt-{uuid.uuid4().hex[:12]}"
        self.seq = itertools.count(1)
        self.retry_s = retry_s
        self.requests = 0

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def _post(self, path: str, body: Any, write: bool) -> dict[str, Any]:
        headers = {}
        if write:
            headers = {"Paxosd-Client-Id": self.client_id, "Paxosd-Seq": str(next(self.seq))}
        deadline = time.monotonic() + self.retry_s
        while True:
            client = self.clients[next(self.turn)]
            try:
                response = client.post(path, json=body, headers=headers)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                self.requests += 1
                result: dict[str, Any] = response.json()["results"][0]
                return result
            if response is not None and response.status_code not in (429, 503):
                raise AssertionError(f"{path} answered {response.status_code}: {response.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no node answered {path} within {self.retry_s} s")
            time.sleep(0.05)

    def statement(self, sql: str) -> str | None:
        for one in split(sql):
            error: str | None = self._post("/db/execute", [one], write=True).get("error")
            if error is not None:
                return error
        return None

    def query(self, sql: str) -> tuple[list[list[Any]] | None, str | None]:
        result = self._post("/db/query?level=linearizable", [sql], write=False)
        if "error" in result:
            return None, str(result["error"])
        return result.get("values", []), None

    def reset(self) -> None:
        """An empty database: every view, trigger, index and table dropped."""
        rows, _ = self.query("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'")
        order = {"view": 0, "trigger": 1, "index": 2, "table": 3}
        for kind, name in sorted(rows or [], key=lambda row: order.get(row[0], 9)):
            quoted = '"' + name.replace('"', '""') + '"'
            self.statement(f"DROP {kind.upper()} IF EXISTS {quoted}")


# ---------------------------------------------------------------------------------------------
# Judging


def _as_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float:
        return int(value)  # SQLite's conversion truncates toward zero
    match = _LEADING_INT.match(str(value))
    return int(match.group()) if match else 0


def _as_real(value: Any) -> float:
    if type(value) in (int, float):
        return float(value)
    match = _LEADING_REAL.match(str(value))
    return float(match.group()) if match else 0.0


def render(value: Any, kind: str) -> str:
    """A value as sqllogictest prints it for a column of type `kind` (I, R, T)."""
    if value is None:
        return "NULL"
    if kind == "I":
        return str(_as_int(value))
    if kind == "R":
        real = _as_real(value)
        if abs(real) >= 1e15:
            # SQLite's printf keeps 16 significant digits and writes zeros after them.
            return f"{Decimal(f'{real:.16g}'):.3f}"
        return f"{real:.3f}"
    text = repr(value) if type(value) is float else str(value)
    if text == "":
        return "(empty)"
    return "".join(c if " " <= c <= "~" else "@" for c in text)


def check(record: Record, engine: Engine) -> str | None:
    """None if `engine` passes `record`, else what went wrong."""
    if record.kind == "statement":
        error = engine.statement(record.sql)
        if record.expect_error and error is None:
            return "expected an error, the statement succeeded"
        if not record.expect_error and error is not None:
            return f"expected success, got: {error}"
        return None
    rows, error = engine.query(record.sql)
    if error is not None or rows is None:
        return None if not record.expected else f"query failed: {error}"
    values = [
        [render(value, record.types[i] if i < len(record.types) else "T")
         for i, value in enumerate(row)]
        for row in rows
    ]  # fmt: skip
    if record.sort == "rowsort":
        values.sort()
    flat = [value for row in values for value in row]
    if record.sort == "valuesort":
        flat.sort()
    if len(record.expected) == 1 and (hashed := _HASHED.match(record.expected[0])):
        digest = hashlib.md5("".join(v + "\n" for v in flat).encode()).hexdigest()
        if int(hashed.group(1)) != len(flat) or hashed.group(2) != digest:
            return f"expected {record.expected[0]}, got {len(flat)} values hashing to {digest}"
        return None
    expected = record.expected
    if len(expected) != len(flat):
        expected = [value for line in expected for value in line.split(" ")]
    if expected != flat:
        return f"expected {record.expected[:8]}, got {flat[:8]}"
    return None


def run(path: Path, engine: Engine, limit: int | None = None) -> tuple[int, list[str]]:
    """(records run, failures as 'file:line: what')."""
    failures = []
    count = 0
    for record in itertools.islice(parse(path), limit):
        count += 1
        problem = check(record, engine)
        if problem is not None:
            failures.append(f"{path.name}:{record.line}: {problem}\n  {record.sql[:200]}")
    return count, failures
