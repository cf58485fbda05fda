"""paxosd.sql, the DB-API 2.0 driver, and `paxosd sql`, against a real 3-node cluster: code
written for sqlite3 runs with a changed import; transactions commit, conflict and roll back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import paxosd.sql as driver

from .cluster import Cluster


@pytest.fixture(scope="module")
def endpoints(shared_cluster: Cluster) -> Iterator[str]:
    yield ",".join(shared_cluster.endpoints())


def sqlite3_style(module: object, connection: object) -> list[tuple[object, ...]]:
    """Code as written for Python's sqlite3, given its module and a connection."""
    db = connection
    db.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT UNIQUE, "  # type: ignore[attr-defined]
               "photo BLOB)")  # fmt: skip
    cursor = db.cursor()  # type: ignore[attr-defined]
    cursor.execute("INSERT INTO users (name, photo) VALUES (?, ?)", ("ada", b"\x89PNG"))
    first = cursor.lastrowid
    cursor.executemany("INSERT INTO users (name) VALUES (:name)", [{"name": "bob"}, {"name": "cy"}])
    db.commit()  # type: ignore[attr-defined]
    try:
        db.execute("INSERT INTO users (name) VALUES ('ada')")  # type: ignore[attr-defined]
        db.commit()  # type: ignore[attr-defined]
    except module.IntegrityError:  # type: ignore[attr-defined]
        db.rollback()  # type: ignore[attr-defined]
    cursor.execute("SELECT id, name, photo FROM users ORDER BY id")
    assert [d[0] for d in cursor.description] == ["id", "name", "photo"]
    rows: list[tuple[object, ...]] = cursor.fetchall()
    assert rows[0][0] == first
    return rows


def test_code_written_for_sqlite3_runs_with_a_changed_import(endpoints: str) -> None:
    import sqlite3

    expected = sqlite3_style(sqlite3, sqlite3.connect(":memory:"))
    connection = driver.connect(endpoints)
    try:
        assert sqlite3_style(driver, connection) == expected
    finally:
        connection.close()
    assert expected == [(1, "ada", b"\x89PNG"), (2, "bob", None), (3, "cy", None)]


def test_a_transaction_sees_its_writes_and_a_concurrent_one_conflicts(endpoints: str) -> None:
    setup = driver.connect(endpoints, autocommit=True)
    setup.execute("CREATE TABLE bank (id TEXT PRIMARY KEY, balance INTEGER)")
    setup.execute("INSERT INTO bank VALUES ('a', 10), ('b', 0)")
    first, second = driver.connect(endpoints), driver.connect(endpoints)
    try:
        for connection in (first, second):
            connection.execute("UPDATE bank SET balance = balance - 5 WHERE id = 'a'")
            assert connection.in_transaction
            row = connection.execute("SELECT balance FROM bank WHERE id = 'a'").fetchone()
            assert row == (5,)  # its own write
        assert setup.execute("SELECT balance FROM bank WHERE id = 'a'").fetchone() == (10,)
        first.commit()
        with pytest.raises(driver.TransactionConflict):
            second.commit()
        assert not second.in_transaction
        assert setup.execute("SELECT sum(balance) FROM bank").fetchone() == (5,)
        with first:  # the context manager commits, as sqlite3's
            first.execute("UPDATE bank SET balance = balance + 5 WHERE id = 'b'")
        second.execute("DELETE FROM bank")
        second.rollback()
        assert setup.execute("SELECT balance FROM bank ORDER BY id").fetchall() == [(5,), (5,)]
    finally:
        for connection in (setup, first, second):
            connection.close()


def test_errors_are_pep_249s(endpoints: str) -> None:
    connection = driver.connect(endpoints, autocommit=True)
    try:
        with pytest.raises(driver.OperationalError, match="syntax error"):
            connection.execute("SELEC 1")
        with pytest.raises(driver.ProgrammingError, match="bindings"):
            connection.execute("SELECT ?, ?", (1,))
        with pytest.raises(driver.OperationalError, match="random"):
            connection.execute("CREATE TABLE IF NOT EXISTS e (x DEFAULT (random()))")
            connection.execute("INSERT INTO e DEFAULT VALUES")
        with pytest.raises(driver.ProgrammingError):
            connection.execute("SELECT ?", (object(),))
    finally:
        connection.close()
    with pytest.raises(driver.OperationalError, match="does not answer"):
        driver.connect("127.0.0.1:9", timeout=0.5, retry_s=0.5).execute("SELECT 1")


def test_paxosd_sql_runs_statements_and_says_what_failed(endpoints: str) -> None:
    def paxosd_sql(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "paxosd", "sql", "--endpoints", endpoints, *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    done = paxosd_sql("-c", "CREATE TABLE cli (a, b); INSERT INTO cli VALUES (1, 'x'), "
                      "(2, NULL); SELECT * FROM cli ORDER BY a", "--header")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a|b\n1|x\n2|\n"
    failed = paxosd_sql("-c", "SELECT * FROM nowhere")
    assert failed.returncode == 2 and "no such table: nowhere" in failed.stderr
    shell = subprocess.run(
        [sys.executable, "-m", "paxosd", "sql", "--endpoints", endpoints],
        input="SELECT count(*)\nFROM cli;\n.tables\n.quit\n", capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert "2\n" in shell.stdout and "cli\n" in shell.stdout


def test_a_node_that_does_not_answer_is_passed_over(endpoints: str) -> None:
    """Outside a transaction, reads and writes go on to the next endpoint; a write keeps its
    exactly-once identity, so it is applied once."""
    connection = driver.connect("127.0.0.1:9," + endpoints, autocommit=True, timeout=2)
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS failover (x)")
        connection.execute("INSERT INTO failover VALUES (1)")
        assert connection.execute("SELECT count(*) FROM failover").fetchone() == (1,)
    finally:
        connection.close()
