"""rqlite's own Python client, pyrqlite (DB-API 2.0), unmodified, against a real paxosd
cluster's rqlite API: what code written for rqlite relies on works, on any node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pyrqlite = pytest.importorskip("pyrqlite.dbapi2")

from .cluster import Cluster  # noqa: E402  (after the skip: the client is optional)


@pytest.fixture(scope="module")
def connections(shared_cluster: Cluster) -> Iterator[list[Any]]:
    made = []
    for node in (1, 2, 3):
        host, port = shared_cluster.http(node).rsplit(":", 1)
        made.append(pyrqlite.connect(host=host, port=int(port), timeout=30))
    yield made
    for connection in made:
        connection.close()


def test_tables_rows_and_parameters_on_every_node(connections: list[Any]) -> None:
    one, two, three = (connection.cursor() for connection in connections)
    one.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, score REAL)")
    one.execute("INSERT INTO people (name, age, score) VALUES (?, ?, ?)", ("fiona", 20, 1.5))
    assert one.lastrowid == 1
    two.execute(
        "INSERT INTO people (name, age, score) VALUES (:name, :age, :score)",
        {"name": "O'Brien", "age": 30, "score": None},
    )
    assert two.lastrowid == 2
    three.execute("SELECT id, name, age, score FROM people ORDER BY id")
    assert [tuple(row) for row in three.fetchall()] == [
        (1, "fiona", 20, 1.5),
        (2, "O'Brien", 30, None),
    ]
    assert [d[0] for d in three.description] == ["id", "name", "age", "score"]
    one.execute("UPDATE people SET age = age + 1")
    assert one.rowcount == 2
    three.execute("SELECT name FROM people WHERE age = ?", (31,))
    row = three.fetchone()
    assert row["name"] == "O'Brien" and three.fetchone() is None


def test_executemany_is_one_transaction(connections: list[Any]) -> None:
    cursor = connections[0].cursor()
    cursor.execute("CREATE TABLE many (x INTEGER UNIQUE)")
    cursor.executemany("INSERT INTO many VALUES (?)", [(1,), (2,), (3,)])
    assert cursor.rowcount == 3
    cursor.executemany("INSERT INTO many VALUES (?)", [(4,), (1,)])  # fails whole (?transaction)
    reader = connections[2].cursor()
    reader.execute("SELECT count(*) FROM many")
    assert reader.fetchone()[0] == 3


def test_errors_raise_with_sqlites_message(connections: list[Any]) -> None:
    cursor = connections[1].cursor()
    cursor.execute("CREATE TABLE uniq (name TEXT UNIQUE)")
    cursor.execute("INSERT INTO uniq VALUES ('paxos_expert')")
    with pytest.raises(pyrqlite.Error, match="UNIQUE constraint failed"):
        connections[2].cursor().execute("INSERT INTO uniq VALUES ('paxos_expert')")
    with pytest.raises(pyrqlite.Error, match="no such table"):
        cursor.execute("SELECT * FROM nowhere")


def test_read_consistency_levels(connections: list[Any]) -> None:
    cursor = connections[0].cursor()
    cursor.execute("CREATE TABLE lv (x)")
    cursor.execute("INSERT INTO lv VALUES (1)")
    for level in ("weak", "linearizable", "strong"):
        cursor.execute("SELECT count(*) FROM lv", consistency=level)
        assert cursor.fetchone()[0] == 1
