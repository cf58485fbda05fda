"""The SQL database as a replicated state machine: answers, atomicity, the determinism policy,
limits, snapshots, and the optimistic check of an interactive transaction's commit."""

from __future__ import annotations

import io
import os
import zlib
from typing import Any

import pytest

from paxosd.service import Error, Request, StateMachine, encode
from paxosd.service.commands import decode
from paxosd.service.errors import BadCommand, CorruptSnapshot
from paxosd.service.results import result_from_raw, result_to_raw
from paxosd.service.snapshot import SnapshotWriter
from paxosd.service.sql import (
    NOT_READ_ONLY,
    RESULT_TOO_LARGE,
    SQL_CONFLICT,
    SQL_ERROR,
    SQL_REFUSED,
    SqlAnswer,
    SqlExecute,
    SqlQuery,
    Statement,
)
from paxosd.service.sql.machine import SqlMachine
from paxosd.service.sql.rewrite import Sources, rewrite

from .helpers import Log


def st(sql: str, *params: Any, **named: Any) -> Statement:
    return Statement(sql, named if named else tuple(params))


class Db:
    """A router fed through the log, with SQL shorthands."""

    def __init__(self, machine: StateMachine | None = None) -> None:
        self.log = Log(machine)
        self.seq = 0

    @property
    def machine(self) -> StateMachine:
        return self.log.machine

    def write(self, *statements: Statement | str, **options: Any) -> Any:
        self.seq += 1
        op = SqlExecute(statements=_statements(statements), **options)
        return self.log.request("client", self.seq, op)

    def query(self, *statements: Statement | str, **options: Any) -> Any:
        return self.machine.read(SqlQuery(statements=_statements(statements), **options))

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        answer = self.query(sql)
        assert isinstance(answer, SqlAnswer) and answer.error is None, answer
        return list(answer.results[0].rows)

    def digest(self) -> str:
        return self.machine.sql.content_digest()


def _statements(items: tuple[Statement | str, ...]) -> tuple[Statement, ...]:
    return tuple(item if isinstance(item, Statement) else Statement(item) for item in items)


def signups() -> Db:
    db = Db()
    answer = db.write("CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT UNIQUE)")
    assert answer.applied
    return db


# -- answers and atomicity ------------------------------------------------------------------


def test_a_write_answers_rows_affected_last_insert_id_and_revision() -> None:
    db = signups()
    answer = db.write(
        st("INSERT INTO users(username) VALUES (?)", "ada"),
        st("INSERT INTO users(username) VALUES (:name)", name="bob"),
    )
    assert answer.applied and answer.error is None
    assert [(r.rows_affected, r.last_insert_id) for r in answer.results] == [(1, 1), (1, 2)]
    assert answer.revision == 2  # the CREATE was revision 1
    update = db.write("UPDATE users SET username = upper(username)")
    assert update.results[0].rows_affected == 2
    assert update.results[0].last_insert_id == 0  # no insert in this request
    assert db.rows("SELECT username FROM users ORDER BY id") == [("ADA",), ("BOB",)]


def test_an_atomic_request_that_fails_applies_nothing() -> None:
    db = signups()
    db.write(st("INSERT INTO users(username) VALUES (?)", "paxos_expert"))
    before = db.digest()
    answer = db.write(
        st("INSERT INTO users(username) VALUES (?)", "other"),
        st("INSERT INTO users(username) VALUES (?)", "paxos_expert"),
        st("INSERT INTO users(username) VALUES (?)", "never_run"),
    )
    assert not answer.applied
    assert len(answer.results) == 2  # it stopped at the failure
    assert answer.results[1].error == "UNIQUE constraint failed: users.username"
    assert answer.results[1].error_code == SQL_ERROR
    assert db.digest() == before
    assert answer.revision == 2


def test_a_non_atomic_request_undoes_only_its_failing_statement() -> None:
    db = signups()
    answer = db.write(
        st("INSERT INTO users(username) VALUES (?)", "a"),
        st("INSERT INTO users(username) VALUES (?)", "a"),
        st("INSERT INTO users(username) VALUES (?)", "b"),
        atomic=False,
    )
    assert answer.applied
    assert [r.error is None for r in answer.results] == [True, False, True]
    assert db.rows("SELECT username FROM users ORDER BY id") == [("a",), ("b",)]


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        (st("INSERT INTO users VALUES (?, ?)", 1), "Incorrect number of bindings"),
        (st("INSERT INTO users VALUES (:a, :b)", a=1), "did not supply"),
        (st("INSERT INTO users VALUS (1, 'x')"), "syntax error"),
        (st("INSERT INTO nobody VALUES (1)"), "no such table"),
        (st("INSERT INTO users VALUES (1, 'a'); DELETE FROM users"), "one statement"),
    ],
)
def test_bad_statements_fail_with_sqlites_message_and_change_nothing(
    statement: Statement, fragment: str
) -> None:
    db = signups()
    before = db.digest()
    answer = db.write(statement)
    assert not answer.applied
    assert fragment in (answer.results[0].error or ""), answer.results[0].error
    assert db.digest() == before


# -- the determinism policy -----------------------------------------------------------------

REFUSED_WRITES = [
    "INSERT INTO users(username) VALUES (random())",
    "INSERT INTO users(username) VALUES (hex(randomblob(4)))",
    "INSERT INTO users(username) VALUES (CURRENT_TIMESTAMP)",
    "INSERT INTO users(username) VALUES (datetime('now'))",
    "INSERT INTO users(username) VALUES (date())",
    "INSERT INTO users(username) VALUES (strftime('%s'))",
    "INSERT INTO users(username) VALUES (datetime('2020-01-01', 'localtime'))",
    "ATTACH DATABASE 'other.db' AS other",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA journal_mode = WAL",
    "SELECT load_extension('x')",
    "BEGIN",
    "SAVEPOINT a",
    "CREATE TEMP TABLE scratch (x)",
]


@pytest.mark.parametrize("sql", REFUSED_WRITES)
def test_what_would_differ_between_replicas_is_refused_and_changes_nothing(sql: str) -> None:
    db = signups()
    before = db.digest()
    answer = db.write(sql)
    assert not answer.applied
    assert answer.results[0].error_code == SQL_REFUSED, answer.results[0]
    assert db.digest() == before
    assert not os.path.exists("other.db") and not os.path.exists("copy.db")


def test_vacuum_into_another_file_writes_nothing() -> None:
    db = signups()
    answer = db.write("VACUUM INTO 'copy.db'")
    assert not answer.applied and answer.results[0].error is not None
    assert not os.path.exists("copy.db")


def test_a_trigger_that_calls_random_is_refused_when_it_runs() -> None:
    db = signups()
    db.write("CREATE TABLE log (x)")
    db.write("CREATE TRIGGER t AFTER INSERT ON users BEGIN INSERT INTO log VALUES (random()); END")
    answer = db.write(st("INSERT INTO users(username) VALUES (?)", "a"))
    assert answer.results[0].error_code == SQL_REFUSED
    assert db.rows("SELECT count(*) FROM users") == [(0,)]


@pytest.mark.parametrize(
    "default", ["random()", "randomblob(4)", "CURRENT_TIMESTAMP", "datetime('now')", "date()"]
)
def test_a_default_that_reads_chance_or_the_clock_is_refused_when_it_runs(default: str) -> None:
    db = signups()
    db.write(f"CREATE TABLE d (x DEFAULT ({default}), y)")
    before = db.digest()
    answer = db.write("INSERT INTO d (y) VALUES (1)")
    assert not answer.applied and answer.results[0].error_code == SQL_REFUSED
    assert "give the" in (answer.results[0].error or "")
    assert db.digest() == before


def test_a_query_reads_chance_and_the_clock_as_sqlite_does() -> None:
    answer = signups().query(
        "SELECT typeof(random()), length(randomblob(5)), "
        "length(CURRENT_TIMESTAMP), CURRENT_DATE = date('now')"
    )
    assert answer.results[0].rows == (("integer", 5, 19, 1),)


def test_date_functions_of_given_times_answer_as_sqlites_own() -> None:
    db = signups()
    db.write("CREATE TABLE t (d)")
    db.write("INSERT INTO t VALUES (datetime('2020-02-28 10:00:00', '+1 day'))")
    db.write("INSERT INTO t VALUES (strftime('%Y', '2021-05-01'))")
    db.write("INSERT INTO t VALUES (julianday('2000-01-01'))")
    assert db.rows("SELECT d FROM t") == [("2020-02-29 10:00:00",), ("2021",), (2451544.5,)]


def test_connection_counters_count_within_the_request_so_a_restored_replica_agrees() -> None:
    """last_insert_rowid() and changes() read the connection, which a restored replica has
    fresh: they count within the request, on every replica alike."""
    db = signups()
    db.write(st("INSERT INTO users(username) VALUES (?)", "a"))
    restored = Db(StateMachine.restore(db.machine.snapshot()))
    restored.seq = db.seq
    statements = ("SELECT last_insert_rowid(), changes(), total_changes()",)
    assert db.write(*statements) == restored.write(*statements)
    assert db.write(*statements).results[0].rows == ((0, 0, 0),)


def test_a_query_may_read_a_setting_but_not_change_it() -> None:
    db = signups()
    answer = db.query("PRAGMA read_uncommitted", "PRAGMA foreign_keys", "PRAGMA user_version = 5")
    assert [r.rows for r in answer.results[:2]] == [((0,),), ((1,),)]
    assert answer.results[2].error_code == SQL_REFUSED
    assert db.write("PRAGMA read_uncommitted").results[0].error_code == SQL_REFUSED


def test_a_query_may_not_write_but_may_read_the_clock_and_randomness() -> None:
    db = signups()
    answer = db.query("SELECT random(), datetime('now')", "DELETE FROM users")
    assert answer.results[0].error is None
    assert answer.results[1].error_code == NOT_READ_ONLY
    assert db.query("CREATE TABLE x (a)").results[0].error_code == NOT_READ_ONLY


# -- limits -----------------------------------------------------------------------------------


def test_a_huge_result_is_refused_with_its_named_limit_and_changes_nothing() -> None:
    db = signups()
    before = db.digest()
    huge = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"
    answer = db.query(huge + " LIMIT 200000")
    assert answer.results[0].error_code == RESULT_TOO_LARGE
    assert "result_rows_max" in (answer.results[0].error or "")
    wide = db.query("SELECT zeroblob(1000000) FROM (" + huge + " LIMIT 20)")
    assert wide.results[0].error_code == RESULT_TOO_LARGE
    returning = db.write(
        f"INSERT INTO users(username) SELECT 'u' || i FROM ({huge} LIMIT 150000) RETURNING id"
    )
    assert returning.results[0].error_code == RESULT_TOO_LARGE
    assert not returning.applied and db.digest() == before


def test_a_runaway_statement_is_interrupted_at_its_step_budget() -> None:
    db = signups()
    answer = db.write(
        "INSERT INTO users(username) SELECT count(*) FROM (WITH RECURSIVE n(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n)"
    )
    assert not answer.applied
    assert "steps_max" in (answer.results[0].error or "")


# -- snapshots and the exactly-once table ---------------------------------------------------


def test_a_snapshot_restores_the_same_database_and_the_same_bytes() -> None:
    db = signups()
    db.write(
        st("INSERT INTO users(username) VALUES (?)", "a"),
        st("INSERT INTO users(username) VALUES (?)", "b"),
    )
    data = db.machine.snapshot()
    restored = StateMachine.restore(data)
    assert restored.sql.content_digest() == db.digest()
    assert restored.snapshot() == data
    assert restored.sql.tables() == [("users", 2)]
    # The cached answer of the last request survived: a retry gets it, not a second apply.
    retry = Db(restored)
    retry.seq = db.seq - 1
    again = retry.write(
        st("INSERT INTO users(username) VALUES (?)", "a"),
        st("INSERT INTO users(username) VALUES (?)", "b"),
    )
    assert again.applied and again.results[1].last_insert_id == 2
    assert restored.sql.tables() == [("users", 2)]


def test_replicas_that_restore_midway_end_equal() -> None:
    whole = signups()
    halfway = None
    for i in range(20):
        whole.write(st("INSERT INTO users(username) VALUES (?)", f"u{i}"))
        if i == 9:
            halfway = Db(StateMachine.restore(whole.machine.snapshot()))
            halfway.seq = whole.seq
            halfway.log.slot = whole.log.slot
    assert halfway is not None
    for i in range(10, 20):
        halfway.write(st("INSERT INTO users(username) VALUES (?)", f"u{i}"))
    assert halfway.digest() == whole.digest()
    # Byte for byte too: peers send a lagging node chunks of their snapshots of one slot, and
    # the chunks of two peers must make one snapshot.
    assert halfway.machine.snapshot() == whole.machine.snapshot()


def test_temporary_views_and_triggers_survive_a_snapshot() -> None:
    db = signups()
    db.write("CREATE TABLE log (name TEXT)")
    db.write("CREATE TEMP VIEW names AS SELECT username FROM users")
    db.write(
        "CREATE TEMP TRIGGER audit AFTER INSERT ON users BEGIN "
        "INSERT INTO log VALUES (new.username); END"
    )
    restored = Db(StateMachine.restore(db.machine.snapshot()))
    restored.seq = db.seq
    for replica in (db, restored):
        replica.write(st("INSERT INTO users(username) VALUES (?)", "ada"))
        assert replica.rows("SELECT * FROM names") == [("ada",)]
        assert replica.rows("SELECT * FROM log") == [("ada",)]
    assert restored.digest() == db.digest()


def test_an_sql_answer_round_trips_through_the_cache_encoding() -> None:
    db = signups()
    answer = db.write(
        st("INSERT INTO users(username) VALUES (?) RETURNING id, username, ?", "a", b"\x00blob")
    )
    assert result_from_raw(result_to_raw(answer)) == answer


def _section(*objects: object) -> bytes:
    out = io.BytesIO()
    writer = SnapshotWriter(out)
    for item in objects:
        writer.write(item)
    writer.close()
    return out.getvalue()


HEAD = ["paxosd", 5, 0, 100, ["kv", "coordination", "sql"]]
NO_TEMP: list[str] = []
KV = [["kv", 1, -1], None]
COORDINATION = ["coordination", 0, 0, 0, 0]
SESSIONS = ["sessions", 0]


@pytest.mark.parametrize(
    "section",
    [
        [["sql", "3.0.0", 0, [], 0, NO_TEMP]],  # another SQLite
        [["sql", None, 0, [], 0, NO_TEMP]],
        [["sql", "VERSION", -1, [], 0, NO_TEMP]],
        [["sql", "VERSION", 1, [["t", 2]], 0, NO_TEMP]],  # a table written after the revision
        [["sql", "VERSION", 1, [], 8192, NO_TEMP], b"not a database image"],  # short
        [["sql", "VERSION", 1, [], 16, NO_TEMP], b"not a database!!"],  # not SQLite
        [["sql", "VERSION", 1, [], 4, NO_TEMP], "text"],
        [["sql", "VERSION", 0, [], 0, ["CREATE TEMP VIEW AS"]]],
        [["sql", "VERSION", 0, [], 0, [5]]],
    ],
)
def test_damaged_or_foreign_sql_sections_are_refused(section: list[Any]) -> None:
    from paxosd.service.sql.machine import SQLITE_VERSION

    head = [SQLITE_VERSION if item == "VERSION" else item for item in section[0]]
    with pytest.raises(CorruptSnapshot):
        StateMachine.restore(_section(HEAD, *KV, COORDINATION, head, *section[1:], SESSIONS))


def test_a_snapshot_from_before_the_sql_database_restores_with_an_empty_one() -> None:
    old = ["paxosd", 5, 0, 100, ["kv", "coordination"]]
    machine = StateMachine.restore(_section(old, *KV, COORDINATION, SESSIONS))
    assert machine.sql.tables() == [] and machine.sql.revision == 0


# -- interactive transactions: the commit's check -------------------------------------------


def test_a_commit_applies_when_nothing_it_touched_changed() -> None:
    db = signups()
    db.write("CREATE TABLE other (x)")
    begin = db.machine.sql.revision
    db.write("INSERT INTO other VALUES (1)")  # another table: no conflict
    answer = db.write(
        st("INSERT INTO users(username) VALUES (?)", "a"), begin_revision=begin, tables=("users",)
    )
    assert isinstance(answer, SqlAnswer) and answer.applied


@pytest.mark.parametrize(
    "change",
    [
        "INSERT INTO users(username) VALUES ('intruder')",
        "DELETE FROM users",
        "CREATE INDEX i ON users(username)",  # the schema
        "CREATE TABLE unrelated (x)",  # the schema too: table grain is coarse
    ],
)
def test_a_commit_is_refused_when_something_it_touched_changed(change: str) -> None:
    db = signups()
    begin = db.machine.sql.revision
    db.write(change)
    before = db.digest()
    answer = db.write(
        st("INSERT INTO users(username) VALUES (?)", "a"), begin_revision=begin, tables=("users",)
    )
    assert isinstance(answer, Error) and answer.code == SQL_CONFLICT
    assert "revision" in answer.message
    assert db.digest() == before


def test_a_transaction_that_began_on_an_empty_database_is_checked_too() -> None:
    db = Db()
    db.write("CREATE TABLE t (x)")  # revision 1, after the transaction began at 0
    answer = db.write(st("INSERT INTO t VALUES (1)"), begin_revision=0, tables=("t",))
    assert isinstance(answer, Error) and answer.code == SQL_CONFLICT


def test_a_commit_checks_the_tables_its_own_statements_touch() -> None:
    """The commit's writes are checked too, even when the tables it names omit them."""
    db = signups()
    db.write("CREATE TABLE audit (x)")
    begin = db.machine.sql.revision
    db.write("INSERT INTO audit VALUES ('other')")
    answer = db.write(st("INSERT INTO audit VALUES (?)", "mine"), begin_revision=begin, tables=())
    assert isinstance(answer, Error) and answer.code == SQL_CONFLICT


def test_a_query_sees_pending_writes_and_leaves_nothing_behind() -> None:
    db = signups()
    before = db.digest()
    pending = (st("INSERT INTO users(username) VALUES (?)", "mine"),)
    answer = db.query("SELECT username FROM users", pending=pending)
    assert answer.results[0].rows_affected == 1  # the pending write's own result comes first
    assert answer.results[1].rows == (("mine",),)
    assert answer.tables_written == ("users",) and "users" in answer.tables_read
    assert db.digest() == before
    assert db.rows("SELECT count(*) FROM users") == [(0,)]


def test_a_query_of_a_transaction_reports_a_conflict_early() -> None:
    db = signups()
    begin = db.machine.sql.revision
    db.write(st("INSERT INTO users(username) VALUES (?)", "x"))
    answer = db.query("SELECT * FROM users", begin_revision=begin)
    assert isinstance(answer, Error) and answer.code == SQL_CONFLICT


# -- the log's encoding -----------------------------------------------------------------------


def test_requests_round_trip_through_the_log_encoding() -> None:
    op = SqlExecute(
        statements=(
            st("INSERT INTO t VALUES (?, ?, ?, ?, ?)", None, -(2**63), 1.5, "é", b"\x00"),
            st("SELECT :a", a=1),
        ),
        atomic=False,
        begin_revision=7,
        tables=("t",),
    )
    assert decode(encode(op)) == op
    query = SqlQuery(statements=(st("SELECT 1"),), through_log=True, pending=op.statements)
    assert decode(encode(query)) == query


@pytest.mark.parametrize(
    "op",
    [
        SqlExecute(statements=()),
        SqlExecute(statements=(Statement("  "),)),
        SqlExecute(statements=(Statement("SELECT ?", (2**63,)),)),
        SqlExecute(statements=(Statement("SELECT ?", (True,)),)),
        SqlExecute(statements=(Statement("SELECT ?", ([1],)),)),  # type: ignore[arg-type]
        SqlExecute(statements=(Statement("SELECT 1"),) * 1001),
        SqlExecute(statements=(Statement("SELECT '" + "x" * 300_000 + "'"),)),
        SqlQuery(statements=()),
    ],
)
def test_malformed_requests_are_refused_before_the_log(op: Any) -> None:
    with pytest.raises(BadCommand):
        encode(Request(client_id="c", seq=1, op=op))


def test_a_malformed_payload_in_the_log_answers_the_same_error_everywhere() -> None:
    from paxosd.service.values import pack

    payload = pack([0, "c", 1, [64, [["SELECT 1", 5]], True, 0, []]])
    answers = [Db().log.apply_bytes(payload) for _ in range(2)]
    assert all(isinstance(a, Error) and a.code == "bad_command" for a in answers)
    assert answers[0] == answers[1]


# -- the rewrite at the node that takes a write ----------------------------------------------

SOURCES = Sources(now_ms=1_767_225_600_250, random_bytes=lambda n: bytes(range(1, n + 1)))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("INSERT INTO t VALUES (random())", "INSERT INTO t VALUES (72623859790382856)"),
        ("INSERT INTO t VALUES (RANDOMBLOB( 3 ))", "INSERT INTO t VALUES (X'010203')"),
        (
            "INSERT INTO t VALUES (CURRENT_TIMESTAMP, current_date, Current_Time)",
            "INSERT INTO t VALUES ('2026-01-01 00:00:00', '2026-01-01', '00:00:00')",
        ),
        (
            "UPDATE t SET d = datetime('now', '+1 day'), e = date()",
            "UPDATE t SET d = datetime('2026-01-01 00:00:00.250', '+1 day'), "
            "e = date('2026-01-01 00:00:00.250')",
        ),
        ("SELECT strftime('%s')", "SELECT strftime('%s', '2026-01-01 00:00:00.250')"),
        # Left alone: strings, quoted names, comments, calls it cannot rewrite, CREATE.
        ("INSERT INTO t VALUES ('random()', \"now\") -- random()", None),
        ("INSERT INTO t VALUES (randomblob(?))", None),
        ("CREATE TABLE t (d DEFAULT CURRENT_TIMESTAMP)", None),
        ("INSERT INTO t VALUES ('now')", None),
    ],
)
def test_the_node_rewrites_randomness_and_the_clock_to_constants(
    sql: str, expected: str | None
) -> None:
    assert rewrite(sql, SOURCES) == (sql if expected is None else expected)


def test_a_rewritten_statement_applies_on_every_replica_alike() -> None:
    replicas = [signups(), signups()]
    sql = rewrite(
        "INSERT INTO users(username) VALUES (hex(randomblob(8)) || datetime('now'))",
        Sources(now_ms=1_000, random_bytes=os.urandom),
    )
    for replica in replicas:
        assert replica.write(sql).applied
    assert replicas[0].digest() == replicas[1].digest()


def test_the_planted_unrewritten_random_makes_replicas_diverge() -> None:
    """What the planted bug sql-random-unrewritten does: the check that must catch it has
    something to catch."""
    from paxosd.service.namespace import Options

    replicas = [
        Db(StateMachine(options=Options(variant="sql-random-unrewritten"))) for _ in range(2)
    ]
    for replica in replicas:
        replica.write("CREATE TABLE t (x)")
        assert replica.write("INSERT INTO t VALUES (random())").applied
    assert replicas[0].digest() != replicas[1].digest()


def test_the_status_lists_tables_and_rows_with_bounds() -> None:
    db = signups()
    db.write("CREATE TABLE b (x)", "CREATE TABLE a (x)")
    db.write("INSERT INTO a VALUES (1), (2), (3)")
    status = db.machine.sql.status(tables_max=2, rows_counted_max=2)
    assert status["tables"] == [
        {"name": "a", "rows": 2, "rows_more": True},
        {"name": "b", "rows": 0},
    ]
    assert status["tables_more"] is True and status["revision"] == 3 and status["bytes"] > 0
    # The bound is over all tables together: what the first took, the next cannot count.
    db.write("INSERT INTO b VALUES (1)")
    counted = db.machine.sql.status(tables_max=2, rows_counted_max=3)["tables"]
    assert counted == [{"name": "a", "rows": 3}, {"name": "b", "rows": 0, "rows_more": True}]


def test_the_machine_alone_is_usable_without_the_router() -> None:
    machine = SqlMachine()
    answer = machine.execute(SqlExecute(statements=(st("CREATE TABLE t (x)"),)))
    assert isinstance(answer, SqlAnswer) and answer.applied and machine.revision == 1
    machine.close()


def test_snapshots_and_status_work_after_a_request_used_up_its_steps() -> None:
    """Our own reads are not clients' statements: a request that ran out of steps leaves the
    budget spent, and a snapshot or the status taken right after must not be interrupted."""
    db = signups()
    db.write("CREATE TEMP VIEW v AS SELECT 1")
    answer = db.write(
        "INSERT INTO users(username) SELECT count(*) FROM (WITH RECURSIVE n(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n)"
    )
    assert "steps_max" in (answer.results[0].error or "")
    restored = StateMachine.restore(db.machine.snapshot())
    assert restored.sql.content_digest() == db.digest()
    assert db.machine.sql.status()["tables"] == [{"name": "users", "rows": 0}]


def test_an_upsert_answers_the_same_last_insert_id_on_a_restored_replica() -> None:
    """The connection's last insert rowid survives an upsert that updated; a replica restored
    from a snapshot has a fresh connection. Each request starts it at 0, so both answer alike
    (the simulator's list-append workload found the difference)."""
    db = Db()
    db.write("CREATE TABLE lists (k TEXT PRIMARY KEY, elements TEXT)")
    upsert = st(
        "INSERT INTO lists VALUES (?, ?) "
        "ON CONFLICT (k) DO UPDATE SET elements = excluded.elements",
        "x",
        "a",
    )
    db.write(upsert)
    restored = Db(StateMachine.restore(db.machine.snapshot()))
    restored.seq = db.seq
    answers = [replica.write(upsert) for replica in (db, restored)]
    assert answers[0] == answers[1]
    assert answers[0].results[0].last_insert_id == 0  # it updated: no row inserted
    assert db.query("SELECT * FROM temp.paxosd_rowid_reset").results[0].error_code == SQL_REFUSED


def test_the_image_travels_compressed_and_a_damaged_one_is_refused() -> None:
    db = signups()
    for i in range(50):
        db.write(st("INSERT INTO users(username) VALUES (?)", f"user-{i}"))
    data = db.machine.snapshot()
    assert len(data) < len(db.machine.sql.image()) / 4  # mostly free pages: it compresses
    from paxosd.service.sql.machine import SQLITE_VERSION

    for packed in (b"\x78\x9c" + b"\x00" * 14, zlib.compress(b"not a database, longer" * 20)):
        head = ["sql", SQLITE_VERSION, 1, [], len(packed), NO_TEMP]
        with pytest.raises(CorruptSnapshot):
            StateMachine.restore(_section(HEAD, *KV, COORDINATION, head, packed, SESSIONS))
