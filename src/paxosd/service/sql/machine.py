"""The SQL database as a state machine behind the router: SQLite, replicated by the log.

Theory of operation: every replica holds one SQLite database in memory and applies to it, in
log order, the SQL requests the log chose. A write request (`SqlExecute`) is one log entry and
one SQLite transaction: its statements run in order, each inside a savepoint, so a failing
statement undoes exactly itself (rqlite's default) or, for an atomic request, the whole
request. Every replica runs the same SQLite (its version is part of the snapshot, and a
replica refuses a snapshot of another), with one configuration (`CONFIGURATION`), under the
policy of policy.py (no clock, no randomness, no other files, no settings), with a bounded
number of virtual-machine steps: so the same requests give the same database and the same
answers everywhere. Reads (`SqlQuery`) run against the current state and change nothing (the
policy refuses any write in a read).

Durability and where the database lives: the database is the state the log's chosen entries
build. The log is fsynced before any answer leaves a node (persist before reply), so an
acknowledged write is in the log, and a restarting node rebuilds the database from its last
snapshot plus the log after it: a second synchronous disk write per request (a SQLite file
with synchronous=FULL) would only repeat what the log already made durable. So the database
lives in memory (the simulator, tests) or, on a node, in a file of its own with
`synchronous = OFF` that no restart reads (storage/sql_files.py, handed in by the node):
there it need not fit in memory, and a snapshot can copy it while the node goes on writing
(docs/sql.md).

Revisions: `revision` counts the write requests that changed the database (1 after the first);
`table_revisions` gives, for every table (and index, view, trigger) a request wrote, the
revision that last wrote it, and `SCHEMA` the last schema change. Entries are kept after a
DROP, so a dropped-and-recreated table still reads as changed.

Interactive transactions are optimistic, at the grain of tables. The transaction begins at a
revision B; its queries and its pending writes run against the current state (the writes in a
savepoint that is rolled back), and the node collects every table they read or wrote. The
commit is one `SqlExecute` carrying B, those tables and the writes; applied in the log, it
first checks that no table of them, none its own statements touch now, and not the schema has
a revision above B, and only then runs the writes. Why that is serializable: at the commit's
slot every table the transaction touched holds exactly what it held at B (nothing wrote it
since), so every read it made saw the state at the commit's slot, and its writes run there,
atomically, in the log's order; the transaction is equivalent to running all of it at that one
point of the serial log order. A conflict answers `sql_conflict` and changes nothing. Table
grain is coarse (two transactions touching different rows of one table conflict) but needs no
predicate reasoning: rows by rowid would also need the ranges a WHERE clause covers (phantoms).

Snapshots: `snapshot_view`, on the loop between two applies (so the state at one slot), pins
the database's file in a read transaction (storage/sql_files.py), or for a database in memory
copies its image (`Connection.serialize`, a memory copy); `write`, in the snapshot thread,
copies the pinned file with SQLite's backup API and streams it compressed, a chunk at a time
(image.py);
`restore` streams the chunks back into a new file (or, in memory, `deserialize`s them) and
checks the database (`PRAGMA quick_check`).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from paxosd.service.errors import CorruptSnapshot
from paxosd.service.results import Error

if TYPE_CHECKING:  # a node's files, handed in (the machine itself does no I/O)
    from paxosd.storage.sql_files import SqlFiles

from .image import Inflater, deflate_chunks, normalize_header
from .policy import PRIVATE_TABLE, SCHEMA, Mode, Policy
from .types import (
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
    params_list,
    result_bytes_max,
    result_rows_max,
    steps_max,
    steps_per_check,
)

SQLITE_VERSION: Final = sqlite3.sqlite_version

SQL_VARIANTS: Final = {
    "sql-random-unrewritten": "the node proposes random() as the client wrote it and every "
    "replica runs it (replicas diverge)",
    "sql-commit-unchecked": "an interactive transaction's commit skips its conflict check",
}

# One configuration, the same on every replica (SQLite's defaults otherwise).
CONFIGURATION: Final = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA recursive_triggers = OFF",
    "PRAGMA case_sensitive_like = OFF",
)

# The largest database image a snapshot may hold, uncompressed (it must fit in memory).
image_bytes_max: Final = 16 * 1024**3
# The machine's own temporary table (see SqlMachine.__init__); clients may not touch it.
_RESET: Final = PRIVATE_TABLE
_FETCH_ROWS: Final = 256


class _Stop(Exception):
    """A statement's answer passed the result limits."""


class _Steps:
    """The SQLite steps the current request took (the progress handler's count). Apart from
    the machine, so the connection's handler holds no reference to the machine (the machine's
    finalizer, which holds the connection, would keep it alive forever)."""

    __slots__ = ("count", "policy")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.count = 0

    def progress(self) -> int:
        if self.policy.trusted:
            return 0
        self.count += steps_per_check
        return 1 if self.count > steps_max else 0


def _discard(
    db: sqlite3.Connection, policy: Policy, files: SqlFiles | None, path: Path | None
) -> None:
    policy.close()
    db.close()
    if files is not None and path is not None:
        files.remove(path)


class SqlMachine:
    """One replica's SQL database: in memory, or (`files`) in a file of its own there,
    removed when the machine is closed or collected (storage/sql_files.py). Not thread-safe
    (a restore may run in another thread, but the machine is then used by one thread at a
    time)."""

    def __init__(
        self, variant: str = "correct", files: SqlFiles | None = None, *, adopt: Path | None = None
    ) -> None:
        """`adopt`: a database file of `files` (a restore's) that becomes this machine's."""
        self.variant = variant if variant in SQL_VARIANTS else "correct"
        self.files = files
        self.path: Path | None = None
        if files is not None:
            self.path = adopt if adopt is not None else files.new_path()
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else self.path,
            isolation_level=None,
            cached_statements=0,
            check_same_thread=False,
        )
        self._policy = Policy(self._db, allow_random=self.variant == "sql-random-unrewritten")
        self._finalizer = weakref.finalize(
            self, _discard, self._db, self._policy, self.files, self.path
        )
        self._budget = _Steps(self._policy)
        self._db.set_progress_handler(self._budget.progress, steps_per_check)
        if files is not None:
            for setting in files.settings:
                self._internal(setting)
        self._configure()
        # SQLite's last insert rowid belongs to the connection, not the database (a replica
        # restored from a snapshot has a fresh one): each request starts it at 0 by inserting
        # rowid 0 here, so what a request's statements see and answer is the same everywhere.
        self._internal(f"CREATE TEMP TABLE {_RESET} (x)")
        self.revision = 0
        self.table_revisions: dict[str, int] = {}

    def _configure(self) -> None:
        for pragma in CONFIGURATION:
            self._internal(pragma)

    def _internal(self, sql: str) -> None:
        """Our own statement (BEGIN, SAVEPOINT, a PRAGMA of the configuration): past the
        policy, which would refuse it from a client."""
        with self._trusted():
            self._db.execute(sql)

    # -----------------------------------------------------------------------------------------
    # The Part protocol (namespace.py)

    def handlers(self) -> dict[type, Callable[[Any], Any]]:
        return {SqlExecute: self.execute, SqlQuery: self.query}

    def readers(self) -> dict[type, Callable[[Any], Any]]:
        return {SqlQuery: self.query}

    def advance_time(self, now_ms: int) -> None:
        return None

    @property
    def wants_log_time(self) -> bool:
        return False

    def snapshot_view(self) -> SqlView:
        return SqlView(self)

    # -----------------------------------------------------------------------------------------
    # Writes

    def execute(self, op: SqlExecute) -> SqlAnswer | Error:
        """Apply a write request (see the module docstring). Never raises."""
        checked = op.begin_revision >= 0 and self.variant != "sql-commit-unchecked"
        if checked:
            stale = self._changed_since(op.begin_revision, op.tables)
            if stale is not None:
                return _conflict(stale, op.begin_revision)
        self._start_request()
        self._internal("BEGIN")
        results: list[StatementResult] = []
        read: set[str] = set()
        written: set[str] = set()
        budget = [result_rows_max, result_bytes_max]
        for statement in op.statements:
            result, touched_read, touched_written = self._run(statement, Mode.WRITE, budget)
            results.append(result)
            if result.error is not None:
                if not self._db.in_transaction:
                    # SQLite rolled the whole transaction back itself (an interrupted write
                    # does): the request fails whole, atomic or not, on every replica alike.
                    return SqlAnswer(results=tuple(results), revision=self.revision)
                if op.atomic:
                    self._internal("ROLLBACK")
                    return SqlAnswer(results=tuple(results), revision=self.revision)
                continue
            read |= touched_read
            written |= touched_written
        if checked:
            stale = self._changed_since(op.begin_revision, (*read, *written))
            if stale is not None:
                self._internal("ROLLBACK")
                return _conflict(stale, op.begin_revision)
        self._internal("COMMIT")
        if written:
            self.revision += 1
            for table in written:
                self.table_revisions[table] = self.revision
        return SqlAnswer(
            results=tuple(results),
            revision=self.revision,
            applied=True,
            tables_read=tuple(sorted(read)),
            tables_written=tuple(sorted(written)),
        )

    def _changed_since(self, revision: int, tables: Any) -> str | None:
        """A table of `tables` (or the schema) written after `revision`, if any."""
        revisions = self.table_revisions
        if revisions.get(SCHEMA, 0) > revision:
            return "the schema"
        for table in tables:
            if revisions.get(table, 0) > revision:
                return f"table {table}"
        return None

    # -----------------------------------------------------------------------------------------
    # Reads

    def query(self, op: SqlQuery) -> SqlAnswer | Error:
        """Answer a query; an interactive transaction's pending writes are applied first in a
        savepoint and rolled back (their results come first in the answer, and the answer
        stops at the first that fails). Changes nothing. Never raises."""
        self._start_request()
        results: list[StatementResult] = []
        read: set[str] = set()
        written: set[str] = set()
        budget = [result_rows_max, result_bytes_max]
        pending = bool(op.pending)
        if pending:
            self._internal("SAVEPOINT paxosd_pending")
        try:
            for statement in op.pending:
                result, touched_read, touched_written = self._run(statement, Mode.WRITE, budget)
                results.append(result)
                if result.error is not None:
                    # The transaction could not commit what fails now: stop at it.
                    return SqlAnswer(results=tuple(results), revision=self.revision)
                read |= touched_read
                written |= touched_written
            for statement in op.statements:
                result, touched_read, _ = self._run(statement, Mode.READ, budget)
                results.append(result)
                if result.error is None:
                    read |= touched_read
        finally:
            if pending and self._db.in_transaction:
                self._internal("ROLLBACK TO paxosd_pending")
                self._internal("RELEASE paxosd_pending")
        if op.begin_revision >= 0:
            stale = self._changed_since(op.begin_revision, (*read, *written))
            if stale is not None:
                return _conflict(stale, op.begin_revision)
        return SqlAnswer(
            results=tuple(results),
            revision=self.revision,
            tables_read=tuple(sorted(read)),
            tables_written=tuple(sorted(written)),
        )

    # -----------------------------------------------------------------------------------------
    # One statement

    def _start_request(self) -> None:
        self._policy.reset_request()
        self._budget.count = 0
        self._internal(f"INSERT OR REPLACE INTO temp.{_RESET} (rowid, x) VALUES (0, 0)")

    def _run(
        self, statement: Statement, mode: Mode, budget: list[int]
    ) -> tuple[StatementResult, set[str], set[str]]:
        """Run one statement in its own savepoint (undone if it fails); its result and the
        tables it read and wrote. `budget` is what the request may still answer (rows, bytes)."""
        policy = self._policy
        policy.read = set()
        policy.written = set()
        policy.start_statement(mode)
        db = self._db
        self._internal("SAVEPOINT paxosd_statement")
        cursor = db.cursor()
        try:
            cursor.execute(statement.sql, params_list(statement.params))
            columns: tuple[str, ...] = ()
            rows: list[tuple[SqlValue, ...]] = []
            if cursor.description is not None:
                columns = tuple(d[0] for d in cursor.description)
                _fetch(cursor, rows, budget)
            changed = cursor.rowcount
        except _Stop:
            cursor.close()  # a statement still stepping would hold its savepoint
            self._undo()
            return (
                _failed(
                    RESULT_TOO_LARGE,
                    f"the answer passes {result_rows_max} rows or {result_bytes_max} bytes "
                    "(result_rows_max, result_bytes_max): ask for less (LIMIT, fewer columns)",
                ),
                set(),
                set(),
            )
        except Exception as exc:  # SQLite's errors, and the sqlite3 module's on bad bindings
            cursor.close()
            self._undo()
            return self._failure(exc, mode), set(), set()
        cursor.close()
        self._internal("RELEASE paxosd_statement")
        affected = changed if changed > 0 and mode is Mode.WRITE else 0
        if changed >= 0 and mode is Mode.WRITE:
            policy.changes = changed
            policy.total_changes += changed
        if mode is Mode.WRITE:
            # The connection's last insert rowid, which the request started at 0.
            policy.last_insert_id = cursor.lastrowid or 0
        result = StatementResult(
            columns=columns,
            types=_types(columns, rows),
            rows=tuple(rows),
            rows_affected=affected,
            last_insert_id=policy.last_insert_id if mode is Mode.WRITE else 0,
        )
        return result, policy.read, policy.written

    def _undo(self) -> None:
        if self._db.in_transaction:  # else SQLite already rolled back (see execute)
            self._internal("ROLLBACK TO paxosd_statement")
            self._internal("RELEASE paxosd_statement")

    def _failure(self, exc: Exception, mode: Mode) -> StatementResult:
        policy = self._policy
        if policy.refusal is not None:
            read_only = mode is Mode.READ and "may not change" in policy.refusal
            return _failed(NOT_READ_ONLY if read_only else SQL_REFUSED, policy.refusal)
        message = str(exc)
        if message == "interrupted" and self._budget.count > steps_max:
            message = (
                f"interrupted after {steps_max} SQLite steps (steps_max): the statement does too "
                "much work for one request"
            )
        return _failed(SQL_ERROR, message)

    # -----------------------------------------------------------------------------------------
    # Introspection

    def status(self, tables_max: int = 50, rows_counted_max: int = 100_000) -> dict[str, Any]:
        """What a node's status shows (the dashboard's table list): the revision, the SQLite
        version, the database's bytes, and up to `tables_max` tables with their rows. The
        dashboard polls it every second on the event loop, so rows are counted up to
        `rows_counted_max` over all tables together (a few milliseconds): past it, a table's
        count is what was counted and `rows_more` says it has more."""
        with self._trusted():
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            page_bytes = self._db.execute("PRAGMA page_size").fetchone()[0]
            names = [
                row[0]
                for row in self._db.execute(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name LIMIT ?",
                    (tables_max + 1,),
                )
            ]
            tables = []
            budget = rows_counted_max
            for name in names[:tables_max]:
                quoted = '"' + name.replace('"', '""') + '"'
                (rows,) = self._db.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {quoted} LIMIT ?)", (budget + 1,)
                ).fetchone()
                entry: dict[str, Any] = {"name": name, "rows": min(rows, budget)}
                if rows > budget:
                    entry["rows_more"] = True
                budget = max(budget - rows, 0)
                tables.append(entry)
        return {
            "revision": self.revision,
            "sqlite_version": SQLITE_VERSION,
            "bytes": pages * page_bytes,
            "tables": tables,
            "tables_more": len(names) > tables_max,
        }

    def tables(self) -> list[tuple[str, int]]:
        """(name, rows) of every table, by name."""
        with self._trusted():
            return self._tables()

    def _tables(self) -> list[tuple[str, int]]:
        names = [
            row[0]
            for row in self._db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return [(name, self._count(name)) for name in names]

    def _count(self, name: str) -> int:
        quoted = '"' + name.replace('"', '""') + '"'
        row = self._db.execute(f"SELECT count(*) FROM {quoted}").fetchone()
        return int(row[0])

    def content_digest(self) -> str:
        """A hash of the database's content: its schema and every table's rows (as a set of
        rows, so it does not depend on the file's layout). Equal on replicas that agree."""
        with self._trusted():
            return self._content_digest()

    def _content_digest(self) -> str:
        digest = hashlib.sha256()
        schema = self._db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name"
        ).fetchall()
        digest.update(repr((schema, self.temp_schema())).encode())
        for name, _ in self._tables():
            quoted = '"' + name.replace('"', '""') + '"'
            rows = sorted(repr(row) for row in self._db.execute(f"SELECT * FROM {quoted}"))
            digest.update(repr((name, rows)).encode())
        digest.update(repr((self.revision, sorted(self.table_revisions.items()))).encode())
        return digest.hexdigest()

    def image(self) -> bytes:
        """The database file's bytes, the same on every replica that holds the same database
        (image.py: the header's fields of a connection's history written as a fresh file's).
        A copy in memory: for a database in memory, and for checks."""
        with self._trusted():
            data = self._db.serialize()
        return normalize_header(data[:100]) + data[100:]

    def temp_schema(self) -> list[str]:
        """The SQL of the temporary views and triggers, in the order they were made (the
        database's image holds none of them)."""
        with self._trusted():
            return [
                row[0]
                for row in self._db.execute(
                    "SELECT sql FROM sqlite_temp_schema WHERE sql IS NOT NULL AND name != ? "
                    "ORDER BY rowid",
                    (_RESET,),
                )
            ]

    @contextlib.contextmanager
    def _trusted(self) -> Iterator[None]:
        """Our own reads (snapshots, status, hashes): past the policy and the step budget,
        which are for clients' statements."""
        policy = self._policy
        before = policy.trusted
        policy.trusted = True
        try:
            yield
        finally:
            policy.trusted = before

    def close(self) -> None:
        self._finalizer()


def _fetch(cursor: sqlite3.Cursor, rows: list[tuple[SqlValue, ...]], budget: list[int]) -> None:
    while True:
        batch = cursor.fetchmany(_FETCH_ROWS)
        if not batch:
            return
        budget[0] -= len(batch)
        if budget[0] < 0:
            raise _Stop
        size = 0
        for row in batch:
            for value in row:
                size += len(value) if type(value) is str or type(value) is bytes else 8
        budget[1] -= size
        if budget[1] < 0:
            raise _Stop
        rows.extend(batch)


def _types(columns: tuple[str, ...], rows: list[tuple[SqlValue, ...]]) -> tuple[str, ...]:
    """Each column's type, from its first non-null value (the sqlite3 module does not give
    declared types): integer, real, text, blob, or "" if every value is null."""
    found = [""] * len(columns)
    missing = len(columns)
    for row in rows:
        if not missing:
            break
        for i, value in enumerate(row):
            if found[i] == "" and value is not None:
                found[i] = _TYPE_NAMES.get(type(value), "")
                missing -= 1
    return tuple(found)


_TYPE_NAMES: Final[dict[type, str]] = {int: "integer", float: "real", str: "text", bytes: "blob"}


def _failed(code: str, message: str) -> StatementResult:
    return StatementResult(error=message, error_code=code)


def _conflict(what: str, revision: int) -> Error:
    return Error(
        code=SQL_CONFLICT,
        message=f"{what} changed after revision {revision}, when the transaction began: "
        "nothing was applied; begin again and retry",
    )


class SqlView:
    """The database at one applied slot, taken on the loop and written anywhere: for a
    database in a file a read transaction pinning it (copied when written), for one in
    memory its image."""

    __slots__ = ("_head", "_image", "_machine", "_reader")

    def __init__(self, machine: SqlMachine) -> None:
        self._image: bytes = b""
        self._reader: sqlite3.Connection | None = None
        self._machine: SqlMachine | None = None
        if machine.table_revisions:
            if machine.files is None or machine.path is None:
                self._image = machine.image()
            else:
                self._reader = machine.files.pin(machine.path)
                self._machine = machine  # its file stays while the view reads it
        self._head = [
            "sql",
            SQLITE_VERSION,
            machine.revision,
            sorted([table, revision] for table, revision in machine.table_revisions.items()),
            STREAMED if machine.table_revisions else 0,
            machine.temp_schema(),
        ]

    def write(self, writer: Any) -> None:
        writer.write(self._head)
        if self._head[4] == 0:
            return
        for chunk in deflate_chunks(self._pieces()):
            writer.write(chunk)
        writer.write(b"")  # the end of a streamed image

    def _pieces(self) -> Iterator[bytes]:
        if self._machine is None:
            yield self._image
            return
        assert self._reader is not None, "a view of a database in a file is written once"
        files, path = self._machine.files, self._machine.path
        assert files is not None and path is not None
        copy = path.with_name(path.name + ".snapshot")
        try:
            cookie = files.copy_pinned(self._reader, copy)
            # The copy holds the state now: end the read transaction at once, so that the
            # database's WAL can be checkpointed again (the view is written once).
            self._reader.close()
            self._reader = None
            first = True
            for piece in files.read_file(copy):
                if first:
                    piece = normalize_header(piece[:40] + cookie + piece[44:])
                yield piece
                first = False
        finally:
            files.remove(copy)

    def close(self) -> None:
        self._image = b""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._machine = None


# The image's size in the section's head when it is streamed: chunks until an empty one. (A
# snapshot of an earlier release gives the compressed size, its chunks adding up to it.)
STREAMED: Final = -1


def restore(
    objects: Iterator[Any], reader: Any, variant: str = "correct", files: SqlFiles | None = None
) -> SqlMachine:
    """The machine a `SqlView` wrote (in memory, or in a new file of `files`). Raises
    `CorruptSnapshot` for anything else, and for a snapshot of another SQLite version (its
    replicas would not run statements alike)."""
    head = reader.next(objects, "the SQL database")
    if type(head) is not list or len(head) != 6 or head[0] != "sql":
        raise CorruptSnapshot(f"malformed SQL section {head!r:.80}")
    _, version, revision, tables, size, temp_schema = head
    if version != SQLITE_VERSION:
        raise CorruptSnapshot(
            f"the SQL database was written by SQLite {version!r:.20}, this node runs "
            f"{SQLITE_VERSION}: every replica of a cluster must run the same SQLite"
        )
    if type(revision) is not int or revision < 0 or type(size) is not int or size < STREAMED:
        raise CorruptSnapshot("malformed SQL revision or size")
    if type(tables) is not list:
        raise CorruptSnapshot("malformed SQL table revisions")
    table_revisions: dict[str, int] = {}
    for row in tables:
        if (
            type(row) is not list
            or len(row) != 2
            or type(row[0]) is not str
            or type(row[1]) is not int
            or not 0 < row[1] <= revision
        ):
            raise CorruptSnapshot(f"malformed SQL table revision {row!r:.60}")
        table_revisions[row[0]] = row[1]
    chunks = _chunks(objects, reader, size)
    if files is None:
        machine = SqlMachine(variant)
        if size:
            image = bytearray()
            for piece in _inflated(chunks):
                image += piece
            _load(machine, lambda db: db.deserialize(bytes(image)))
    elif size:
        path = files.new_path()
        try:
            files.write_file(path, _inflated(chunks))
            machine = SqlMachine(variant, files, adopt=path)
        except sqlite3.Error as exc:
            files.remove(path)
            raise CorruptSnapshot(f"the SQL database image does not load: {exc}") from None
        except BaseException:
            files.remove(path)
            raise
        _load(machine, lambda db: None)
    else:
        machine = SqlMachine(variant, files)
    machine.table_revisions = table_revisions
    machine.revision = revision
    if type(temp_schema) is not list or any(type(sql) is not str for sql in temp_schema):
        raise CorruptSnapshot("malformed SQL temporary schema")
    for sql in temp_schema:
        if not sql.startswith("CREATE "):
            raise CorruptSnapshot(f"malformed temporary view or trigger {sql!r:.60}")
        try:
            # SQLite keeps the text without its TEMP (it is implied by where it is kept).
            machine._internal("CREATE TEMP " + sql[len("CREATE ") :])
        except sqlite3.Error as exc:
            raise CorruptSnapshot(f"a temporary view or trigger does not load: {exc}") from None
    return machine


def _chunks(objects: Iterator[Any], reader: Any, size: int) -> Iterator[bytes]:
    """The image's compressed chunks: until an empty one (streamed), or adding up to `size`."""
    total = 0
    while size == STREAMED or total < size:
        chunk = reader.next(objects, "the SQL database's image")
        if type(chunk) is not bytes:
            raise CorruptSnapshot("malformed SQL database image")
        if size == STREAMED and not chunk:
            return
        total += len(chunk)
        if not chunk or (size != STREAMED and total > size):
            raise CorruptSnapshot("malformed SQL database image")
        yield chunk


def _inflated(chunks: Iterable[bytes]) -> Iterator[bytes]:
    inflater = Inflater(image_bytes_max)
    for chunk in chunks:
        yield from inflater.feed(chunk)
    inflater.finish()


def _load(machine: SqlMachine, load: Callable[[sqlite3.Connection], None]) -> None:
    """Load the image into `machine` (`load`), check it, and set the configuration again (a
    loaded image brings its own settings)."""
    machine._policy.trusted = True
    try:
        load(machine._db)
        if machine.files is not None:
            for setting in machine.files.settings:
                machine._db.execute(setting)
        check = machine._db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        machine.close()
        raise CorruptSnapshot(f"the SQL database image does not load: {exc}") from None
    finally:
        machine._policy.trusted = False
    machine._configure()
    if check is None or check[0] != "ok":
        machine.close()
        raise CorruptSnapshot(f"the SQL database image fails its check: {check!r:.80}")
