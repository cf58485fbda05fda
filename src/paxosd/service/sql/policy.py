"""What a statement may do on a replica: the determinism policy, enforced inside SQLite.

Theory of operation: every replica runs the same statements on the same database with the
same SQLite, so it reaches the same state, unless a statement asks for something outside the
database: the clock, randomness, another file, a setting of this connection. SQLite tells us
what a statement is about to do while it compiles it (its authorizer: each table read and
written, each function called, each PRAGMA, ATTACH, BEGIN, ...), so the policy is enforced
there, by the engine that parses the SQL, not by a pattern over the text:

* writes (`Mode.WRITE`): `random()`, `randomblob()` and `CURRENT_TIMESTAMP` / `_DATE` / `_TIME`
  are refused (the node that takes the request rewrites them to constants first,
  rewrite.py, so what reaches here is one it could not rewrite, such as a trigger's body);
  the date and time functions are replaced by versions that refuse `'now'`, no argument
  (which means now), and the `localtime` / `utc` modifiers (the node's time zone), and
  otherwise answer as SQLite's own (computed by a private connection of the same SQLite);
  ATTACH / DETACH (and so VACUUM INTO), BEGIN / COMMIT / SAVEPOINT (the machine owns
  transactions), temporary tables and indexes (their rows are not in the database's image,
  which is what a snapshot copies; temporary views and triggers are allowed: the snapshot
  keeps their SQL), virtual tables, extension loading and every PRAGMA but the read-only ones
  of `READ_PRAGMAS` are refused;
* reads (`Mode.READ`): only SELECT, reads of tables, functions (the clock and randomness too:
  a read changes nothing), the read-only PRAGMAs, and reading the settings of `READ_SETTINGS`
  (a PRAGMA without a value: what client libraries ask on connecting); anything else is
  `not_read_only`.

`last_insert_rowid()`, `changes()` and `total_changes()` read the connection, not the
database: a replica restored from a snapshot has a fresh connection whose counters differ
from the others'. They are replaced by versions that count within the request being applied
(0 at its start), the same on every replica.

The authorizer also records which tables a statement reads and writes: an interactive
transaction's commit is checked against them (machine.py). Any schema change is recorded as a
write of `SCHEMA`, which every statement reads (it is compiled against the schema).
"""

from __future__ import annotations

import enum
import sqlite3
from typing import Any, Final

SCHEMA: Final = "sqlite_schema"
# The machine's own temporary table (machine.py): no statement of a client may touch it.
PRIVATE_TABLE: Final = "paxosd_rowid_reset"
# The schema table's names (a statement reads it under whichever name it uses).
_SCHEMA_NAMES: Final = frozenset(
    {"sqlite_schema", "sqlite_master", "sqlite_temp_schema", "sqlite_temp_master"}
)

READ_PRAGMAS: Final = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "collation_list",
        "function_list",
        "module_list",
        "pragma_list",
    }
)
# Settings a query may read (PRAGMA name, without a value): what a client library asks on
# connecting (SQLAlchemy reads read_uncommitted). Only in queries: a write's answer must be the
# same on every replica, and some of these are the connection's, not the database's.
READ_SETTINGS: Final = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "automatic_index",
        "busy_timeout",
        "cache_size",
        "case_sensitive_like",
        "compile_options",
        "database_list",
        "defer_foreign_keys",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "journal_mode",
        "legacy_alter_table",
        "page_count",
        "page_size",
        "query_only",
        "read_uncommitted",
        "recursive_triggers",
        "reverse_unordered_selects",
        "schema_version",
        "secure_delete",
        "synchronous",
        "temp_store",
        "trusted_schema",
        "user_version",
    }
)
REFUSED_IN_WRITES: Final = {
    "random": "random() differs on every replica",
    "randomblob": "randomblob() differs on every replica",
    "current_timestamp": "CURRENT_TIMESTAMP reads each replica's clock",
    "current_date": "CURRENT_DATE reads each replica's clock",
    "current_time": "CURRENT_TIME reads each replica's clock",
}
REFUSED_ALWAYS: Final = {
    "load_extension": "loading an extension runs code outside the replicated database",
}
_CLOCK_AND_CHANCE: Final = (
    ("random", 0),
    ("randomblob", 1),
    ("current_timestamp", 0),
    ("current_date", 0),
    ("current_time", 0),
)
DATE_FUNCTIONS: Final = ("date", "time", "datetime", "julianday", "unixepoch", "strftime")
_ZONE_MODIFIERS: Final = frozenset({"localtime", "utc"})

# Authorizer action codes (sqlite3 module constants; SQLITE_FUNCTION and SQLITE_RECURSIVE by
# number, as older modules lack the names).
_A = sqlite3
_READ: Final = _A.SQLITE_READ
_SELECT: Final = _A.SQLITE_SELECT
_FUNCTION: Final = 31
_RECURSIVE: Final = 33
_PRAGMA: Final = _A.SQLITE_PRAGMA
_WRITES: Final = frozenset({_A.SQLITE_INSERT, _A.SQLITE_UPDATE, _A.SQLITE_DELETE})
# Schema changes: (action, which argument names the table).
_SCHEMA_CHANGES: Final = {
    _A.SQLITE_CREATE_TABLE: 1,
    _A.SQLITE_DROP_TABLE: 1,
    _A.SQLITE_CREATE_INDEX: 2,
    _A.SQLITE_DROP_INDEX: 2,
    _A.SQLITE_CREATE_TRIGGER: 2,
    _A.SQLITE_DROP_TRIGGER: 2,
    _A.SQLITE_CREATE_VIEW: 1,
    _A.SQLITE_DROP_VIEW: 1,
    # Temporary views and triggers hold no rows: the snapshot keeps their SQL (machine.py).
    _A.SQLITE_CREATE_TEMP_VIEW: 1,
    _A.SQLITE_DROP_TEMP_VIEW: 1,
    _A.SQLITE_CREATE_TEMP_TRIGGER: 2,
    _A.SQLITE_DROP_TEMP_TRIGGER: 2,
    _A.SQLITE_ALTER_TABLE: 2,
    _A.SQLITE_REINDEX: 0,
    _A.SQLITE_ANALYZE: 0,
}
_REFUSED_ACTIONS: Final = {
    _A.SQLITE_ATTACH: "ATTACH (and VACUUM INTO) reach files outside the replicated database",
    _A.SQLITE_DETACH: "DETACH: nothing is attached",
    _A.SQLITE_TRANSACTION: "BEGIN, COMMIT and ROLLBACK are paxosd's: send the statements "
    "as one request (it is one transaction), or use an interactive transaction "
    "(/v1/sql/begin)",
    32: "SAVEPOINT and RELEASE are paxosd's: a request is one transaction",
    _A.SQLITE_CREATE_TEMP_TABLE: "temporary tables are not supported: their rows would not "
    "survive a snapshot (use a table, and drop it)",
    _A.SQLITE_CREATE_TEMP_INDEX: "temporary indexes are not supported (temporary tables are not)",
    _A.SQLITE_DROP_TEMP_TABLE: "temporary tables are not supported",
    _A.SQLITE_DROP_TEMP_INDEX: "temporary indexes are not supported",
    _A.SQLITE_CREATE_VTABLE: "virtual tables are not supported",
    _A.SQLITE_DROP_VTABLE: "virtual tables are not supported",
}


def _table(name: str) -> str:
    lowered = name.lower()
    return SCHEMA if lowered in _SCHEMA_NAMES else lowered


class Mode(enum.Enum):
    WRITE = "write"
    READ = "read"


class Refused(Exception):
    """A statement the policy refused; the message says why and what to do."""


class Policy:
    """The authorizer and the replacement functions of one connection, and what the statement
    being compiled touches. `mode` is set before each statement; `reset_request` before each
    request."""

    def __init__(self, connection: sqlite3.Connection, *, allow_random: bool = False) -> None:
        self.mode = Mode.READ
        # A planted bug (machine.py's variants): the writer lets random() reach SQLite.
        self._allow_random = allow_random
        self.refusal: str | None = None
        # Our own statements (BEGIN, SAVEPOINT, the configuration's PRAGMAs) pass unchecked.
        self.trusted = False
        self.read: set[str] = set()
        self.written: set[str] = set()
        self.last_insert_id = 0
        self.changes = 0
        self.total_changes = 0
        # SQLite's own date functions, for arguments that do not name the present.
        self._clockless = sqlite3.connect(":memory:", check_same_thread=False)
        connection.set_authorizer(self._authorize)
        for name in DATE_FUNCTIONS:
            connection.create_function(name, -1, self._date_function(name), deterministic=True)
        # The authorizer sees the functions a statement names, but not those of a column's
        # DEFAULT: these replacements refuse in writes wherever they are called from, and in
        # reads answer as SQLite's own (from the private connection, which has them).
        for name, arity in _CLOCK_AND_CHANCE:
            connection.create_function(name, arity, self._guarded(name))
        connection.create_function("last_insert_rowid", 0, lambda: self.last_insert_id)
        connection.create_function("changes", 0, lambda: self.changes)
        connection.create_function("total_changes", 0, lambda: self.total_changes)

    def reset_request(self) -> None:
        self.last_insert_id = 0
        self.changes = 0
        self.total_changes = 0

    def start_statement(self, mode: Mode) -> None:
        self.mode = mode
        self.refusal = None

    def _deny(self, reason: str) -> int:
        if self.refusal is None:
            self.refusal = reason
        return sqlite3.SQLITE_DENY

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: Any
    ) -> int:
        if self.trusted:
            return sqlite3.SQLITE_OK
        if arg1 == PRIVATE_TABLE:
            return self._deny(f"{PRIVATE_TABLE} is paxosd's own")
        if action == _READ:
            if arg1 is not None:
                self.read.add(_table(arg1))
            return sqlite3.SQLITE_OK
        if action in (_SELECT, _RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == _FUNCTION:
            name = (arg2 or "").lower()
            if name in REFUSED_ALWAYS:
                return self._deny(f"{name}(): {REFUSED_ALWAYS[name]}")
            if self.mode is Mode.WRITE and name in REFUSED_IN_WRITES:
                if self._allow_random and name in ("random", "randomblob"):
                    return sqlite3.SQLITE_OK
                return self._deny(
                    f"{REFUSED_IN_WRITES[name]}: write it as a value (a parameter), or send the "
                    "statement as it is so that the node rewrites it to a constant (it cannot "
                    "inside CREATE TRIGGER, DEFAULT or a view)"
                )
            return sqlite3.SQLITE_OK
        if action == _PRAGMA:
            name = (arg1 or "").lower()
            if name in READ_PRAGMAS:
                return sqlite3.SQLITE_OK
            if self.mode is Mode.READ and arg2 is None and name in READ_SETTINGS:
                return sqlite3.SQLITE_OK
            return self._deny(
                f"PRAGMA {name}: only the read-only PRAGMAs are allowed "
                f"({', '.join(sorted(READ_PRAGMAS))}); every replica runs one configuration "
                "(docs/sql.md)"
            )
        refused = _REFUSED_ACTIONS.get(action)
        if refused is not None:
            return self._deny(refused)
        if self.mode is Mode.READ:
            return self._deny("a query may not change the database: send it as a write")
        if action in _WRITES:
            if arg1 is not None:
                self.written.add(_table(arg1))
            return sqlite3.SQLITE_OK
        where = _SCHEMA_CHANGES.get(action)
        if where is not None:
            self.written.add(SCHEMA)
            table = arg1 if where == 1 else arg2 if where == 2 else None
            if table is not None:
                self.written.add(_table(table))
            return sqlite3.SQLITE_OK
        return self._deny(f"operation {action} is not allowed")

    def _guarded(self, name: str) -> Any:
        clockless = self._clockless
        query = f"SELECT {name}" if name.startswith("current_") else f"SELECT {name}" + "({})"
        planted = self._allow_random and name in ("random", "randomblob")

        def function(*args: Any) -> Any:
            if self.mode is Mode.WRITE and not planted:
                raise sqlite3.OperationalError(
                    self._note(
                        f"{REFUSED_IN_WRITES[name]} (here in a column's DEFAULT or a trigger, "
                        "which the node cannot rewrite): give the value in the statement"
                    )
                )
            marks = ", ".join("?" * len(args))
            return clockless.execute(query.format(marks), args).fetchone()[0]

        return function

    def _date_function(self, name: str) -> Any:
        clockless = self._clockless
        query = f"SELECT {name}(" + "{}" + ")"

        def function(*args: Any) -> Any:
            if self.mode is Mode.WRITE:
                if not args or (name == "strftime" and len(args) == 1):
                    raise sqlite3.OperationalError(self._clock(f"{name}() without a time"))
                for arg in args:
                    if type(arg) is str:
                        text = arg.strip().lower()
                        if text == "now":
                            raise sqlite3.OperationalError(self._clock(f"{name}('now')"))
                        if text in _ZONE_MODIFIERS:
                            raise sqlite3.OperationalError(
                                self._note(
                                    f"{name}(..., '{text}') depends on each replica's time "
                                    "zone: give times in UTC"
                                )
                            )
            marks = ", ".join("?" * len(args))
            row = clockless.execute(query.format(marks), args).fetchone()
            return row[0]

        return function

    def _clock(self, what: str) -> str:
        return self._note(
            f"{what} reads each replica's clock: give the time as a value, or send the "
            "statement as it is so that the node rewrites it to a constant"
        )

    def _note(self, reason: str) -> str:
        if self.refusal is None:
            self.refusal = reason
        return reason

    def close(self) -> None:
        self._clockless.close()
