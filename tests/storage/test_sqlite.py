"""SqliteLog specifics: schema, pragmas, per-row CRCs, foreign databases, one commit per sync."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import (
    Accepted,
    Configured,
    InlineSnapshot,
    Promised,
    Rebuilding,
)
from paxosd.core.types import Ballot
from paxosd.storage import CorruptLog, DataDirLocked, MissingStore, SqliteLog, StoreExists

from .harness import IDENTITY

B = Ballot(2, 1)


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path / "paxos.sqlite")


def test_schema_and_pragmas(tmp_path: Path) -> None:
    store = SqliteLog(tmp_path, IDENTITY)
    store.write(
        [Promised(B), Accepted(1, B, (b"a", b"b")), Rebuilding(True), InlineSnapshot(0, b"s")]
    )
    store.sync()
    db = _db(tmp_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA application_id").fetchone()[0] == 0x50584F53
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "log", "snapshot"}
    assert db.execute("SELECT slot, ballot_round, ballot_node FROM log").fetchall() == [(1, 2, 1)]
    assert {row[0] for row in db.execute("SELECT key FROM meta")} == {
        "identity",
        "promised",
        "rebuilding",
    }
    db.close()
    store.close()


def test_one_transaction_per_sync(tmp_path: Path) -> None:
    store = SqliteLog(tmp_path, IDENTITY)
    statements: list[str] = []
    assert store._db is not None
    store._db.set_trace_callback(statements.append)
    for slot in range(1, 51):
        store.write([Accepted(slot, B, (b"x",)), Promised(B)])
    assert statements == []  # write() does no I/O
    store.sync()
    assert statements.count("COMMIT") == 1 and store.fsyncs == 1
    store.sync()
    assert statements.count("COMMIT") == 1
    store.close()


def test_snapshot_deletes_covered_rows(tmp_path: Path) -> None:
    store = SqliteLog(tmp_path, IDENTITY)
    store.write([Accepted(slot, B, (b"x",)) for slot in range(1, 21)])
    store.sync()
    store.write([InlineSnapshot(15, b"s15")])
    store.sync()
    db = _db(tmp_path)
    assert db.execute("SELECT min(slot), count(*) FROM log").fetchone() == (16, 5)
    assert db.execute("SELECT slot FROM snapshot").fetchall() == [(15,)]
    db.close()
    store.close()


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE log SET ballot_round = ballot_round + 1 WHERE slot = 3",
        "UPDATE log SET batch = x'90' WHERE slot = 3",
        "UPDATE log SET batch = 'text' WHERE slot = 3",
        "UPDATE log SET crc = crc + 1 WHERE slot = 3",
        "UPDATE snapshot SET data = x'00'",
        "UPDATE meta SET value = x'920203' WHERE key = 'promised'",
        "UPDATE meta SET value = x'c1', crc = 0 WHERE key = 'rebuilding'",
        "DELETE FROM meta WHERE key = 'identity'",
    ],
)
def test_row_damage_is_corrupt_log(tmp_path: Path, damage: str) -> None:
    store = SqliteLog(tmp_path, IDENTITY)
    store.write([Promised(B), Rebuilding(True), InlineSnapshot(1, b"snap")])
    store.write([Accepted(slot, B, (b"cmd-%d" % slot,)) for slot in range(2, 6)])
    store.close()
    db = _db(tmp_path)
    db.execute(damage)
    db.commit()
    db.close()
    with pytest.raises(CorruptLog):
        SqliteLog(tmp_path, IDENTITY)


def test_corrupt_row_names_the_slot(tmp_path: Path) -> None:
    store = SqliteLog(tmp_path, IDENTITY)
    store.write([Accepted(slot, B, (b"x",)) for slot in range(1, 6)])
    store.close()
    db = _db(tmp_path)
    db.execute("UPDATE log SET ballot_node = 7 WHERE slot = 4")
    db.commit()
    db.close()
    with pytest.raises(CorruptLog) as info:
        SqliteLog(tmp_path, IDENTITY)
    assert info.value.offset == 4 and "log" in info.value.where


def test_foreign_and_future_databases_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    db = _db(other)
    db.execute("CREATE TABLE notes(x)")
    db.commit()
    db.close()
    with pytest.raises(CorruptLog, match="not a paxosd store"):
        SqliteLog(other, IDENTITY)

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "paxos.sqlite").write_bytes(b"definitely not SQLite" * 100)
    with pytest.raises(CorruptLog, match="not a usable SQLite database"):
        SqliteLog(garbage, IDENTITY)

    future = tmp_path / "future"
    SqliteLog(future, IDENTITY).close()
    db = _db(future)
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with pytest.raises(CorruptLog, match="unknown format version 2"):
        SqliteLog(future, IDENTITY)


def test_integrity_check_on_open(tmp_path: Path) -> None:
    store = SqliteLog(tmp_path, IDENTITY)
    store.write([Accepted(1, B, (b"x",))])
    store.close()
    with SqliteLog(tmp_path, IDENTITY, integrity_check=True) as reopened:
        assert 1 in reopened.load().accepted


def test_data_dir_is_locked(tmp_path: Path) -> None:
    store = SqliteLog(tmp_path, IDENTITY)
    with pytest.raises(DataDirLocked):
        SqliteLog(tmp_path, IDENTITY)
    store.close()


def test_a_new_database_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """Made under a temporary name and renamed: an empty database or a leftover temporary one
    is never taken for a store (it would be a member without its promises)."""
    three = Configuration.of([1, 2, 3])
    empty = tmp_path / "empty"
    empty.mkdir()
    sqlite3.connect(empty / "paxos.sqlite").close()  # an interrupted creation of older code
    with pytest.raises(MissingStore):
        SqliteLog(empty, IDENTITY, create=False)
    leftover = tmp_path / "leftover"
    leftover.mkdir()
    (leftover / "paxos.sqlite.tmp").write_bytes(b"half a database")
    (leftover / "paxos.sqlite.tmp-journal").write_bytes(b"its journal")
    with pytest.raises(MissingStore):
        SqliteLog(leftover, IDENTITY, create=False)
    assert sorted(p.name for p in leftover.iterdir()) == ["LOCK"]
    with SqliteLog(leftover, IDENTITY, initial=[Configured(three), Rebuilding(True)]) as made:
        assert made.load().configuration == three
    with pytest.raises(StoreExists):
        SqliteLog(leftover, IDENTITY, initial=[Configured(three)])
    with SqliteLog(leftover, IDENTITY, create=False) as reopened:
        assert reopened.load().rebuilding
