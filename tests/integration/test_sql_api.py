"""The SQL database on a real 3-node cluster: rqlite's HTTP API, /v1/sql, interactive
transactions, bad input, and the book's sign-up table (docs/sql.md)."""

from __future__ import annotations

import base64
import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .cluster import Cluster


class Sql:
    """HTTP to one node of the cluster."""

    def __init__(self, cluster: Cluster, node: int) -> None:
        self.client = httpx.Client(base_url=f"http://{cluster.http(node)}", timeout=30)

    def post(self, path: str, body: Any, **params: str) -> httpx.Response:
        return self.client.post(path, json=body, params=params)

    def rqlite(self, path: str, body: Any, **params: str) -> list[dict[str, Any]]:
        response = self.post(path, body, **params)
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def v1(self, path: str, body: Any, status: int = 200) -> dict[str, Any]:
        response = self.post(path, body)
        assert response.status_code == status, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def rows(self, sql: str, level: str = "linearizable") -> list[list[Any]]:
        answer = self.v1("/v1/sql/query", {"statements": [sql], "level": level})
        rows: list[list[Any]] = answer["results"][0]["rows"]
        return rows


@pytest.fixture(scope="module")
def nodes(shared_cluster: Cluster) -> Iterator[list[Sql]]:
    made = [Sql(shared_cluster, node) for node in (1, 2, 3)]
    yield made
    for sql in made:
        sql.client.close()


def same_everywhere(nodes: list[Sql], sql: str) -> list[list[Any]]:
    """The rows every node answers (each read linearizable, so each has applied the same log
    up to the read's index), asserted equal."""
    answers = [node.rows(sql) for node in nodes]
    assert answers[0] == answers[1] == answers[2]
    return answers[0]


# -- rqlite's API -----------------------------------------------------------------------------


def test_rqlite_execute_and_query_shapes(nodes: list[Sql]) -> None:
    one, two, three = nodes
    results = one.rqlite(
        "/db/execute",
        [
            "CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT, age INTEGER, data BLOB)",
            ["INSERT INTO foo(name, age) VALUES(?, ?)", "fiona", 20],
            ["INSERT INTO foo(name, age) VALUES(:name, :age)", {"name": "declan", "age": 30}],
        ],
        transaction="",
    )
    assert results == [
        {},
        {"last_insert_id": 1, "rows_affected": 1},
        {"last_insert_id": 2, "rows_affected": 1},
    ]
    response = two.client.get("/db/query", params={"q": "SELECT id, name, age FROM foo"})
    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "columns": ["id", "name", "age"],
            "types": ["integer", "text", "integer"],
            "values": [[1, "fiona", 20], [2, "declan", 30]],
        }
    ]
    [associative] = three.rqlite(
        "/db/query", [["SELECT name FROM foo WHERE age > ?", 25]], associative=""
    )
    assert associative == {"types": {"name": "text"}, "rows": [{"name": "declan"}]}
    [blob] = one.rqlite("/db/query", ["SELECT x'00ff'"])
    assert blob["types"] == ["blob"] and base64.b64decode(blob["values"][0][0]) == b"\x00\xff"


def test_rqlite_reports_each_statements_error_and_transaction_undoes_all(
    nodes: list[Sql],
) -> None:
    one, two, _ = nodes
    one.rqlite("/db/execute", ["CREATE TABLE bar (name TEXT UNIQUE)"])
    results = one.rqlite(
        "/db/execute",
        [
            ["INSERT INTO bar VALUES (?)", "a"],
            ["INSERT INTO bar VALUES (?)", "a"],
            ["INSERT INTO bar VALUES (?)", "b"],
        ],
    )
    assert results[0] == {"last_insert_id": 1, "rows_affected": 1}
    assert results[1] == {"error": "UNIQUE constraint failed: bar.name"}
    assert results[2] == {"last_insert_id": 2, "rows_affected": 1}
    results = two.rqlite(
        "/db/execute",
        [["INSERT INTO bar VALUES (?)", "c"], ["INSERT INTO bar VALUES (?)", "a"]],
        transaction="",
    )
    assert "error" in results[1]
    assert same_everywhere(nodes, "SELECT name FROM bar ORDER BY name") == [["a"], ["b"]]


@pytest.mark.parametrize("level", ["none", "weak", "linearizable", "strong"])
def test_every_read_level_answers(nodes: list[Sql], level: str) -> None:
    nodes[0].rqlite(
        "/db/execute",
        ["CREATE TABLE IF NOT EXISTS levels (x)", "INSERT INTO levels VALUES (1)"],
        transaction="",
    )
    results = nodes[1].rqlite("/db/query", ["SELECT count(*) > 0 FROM levels"], level=level)
    if level == "none":
        assert results[0].get("values") in ([[1]], [[0]], None) or "error" in results[0]
    else:
        assert results[0]["values"] == [[1]]


def test_a_query_that_writes_is_refused_and_a_request_routes_by_content(
    nodes: list[Sql],
) -> None:
    one, two, _ = nodes
    one.rqlite("/db/execute", ["CREATE TABLE req (x)"])
    [refused] = two.rqlite("/db/query", ["INSERT INTO req VALUES (1)"])
    assert "may not change the database" in refused["error"]
    results = two.rqlite("/db/request", [["INSERT INTO req VALUES (?)", 7], "SELECT x FROM req"])
    assert results == [
        {"last_insert_id": 1, "rows_affected": 1},
        {"columns": ["x"], "types": ["integer"], "values": [[7]]},
    ]
    assert two.rqlite("/db/request", ["SELECT count(*) FROM req"])[0]["values"] == [[1]]


def test_every_node_shows_its_tables_in_its_status(nodes: list[Sql]) -> None:
    nodes[0].rqlite("/db/execute", ["CREATE TABLE shown (x)", "INSERT INTO shown VALUES (1)"],
                    transaction="")  # fmt: skip
    nodes[2].rows("SELECT 1")  # linearizable: node 3 has applied the insert
    status = nodes[2].client.get("/v1/status").json()["sql"]
    assert {"name": "shown", "rows": 1} in status["tables"]
    assert status["sqlite_version"] and status["revision"] >= 1


def test_timings_are_reported(nodes: list[Sql]) -> None:
    response = nodes[0].post("/db/query", ["SELECT 1"], timings="")
    assert response.status_code == 200 and response.json()["time"] >= 0


def test_random_and_the_clock_are_rewritten_by_the_node_so_replicas_agree(
    nodes: list[Sql],
) -> None:
    one = nodes[0]
    one.rqlite("/db/execute", ["CREATE TABLE nd (r, b, t, d)"])
    results = one.rqlite(
        "/db/execute",
        ["INSERT INTO nd VALUES (random(), randomblob(8), CURRENT_TIMESTAMP, datetime('now'))"],
    )
    assert "error" not in results[0]
    rows = same_everywhere(nodes, "SELECT r, hex(b), t, d FROM nd")
    assert len(rows) == 1 and rows[0][2].startswith("20")


# -- /v1/sql and bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "status", "code", "fragment"),
    [
        ("INSERT INTO v1bad VALUS (1)", 400, "sql_error", "syntax error"),
        (["INSERT INTO v1bad VALUES (?)", ["dup"]], 409, "sql_constraint", "UNIQUE"),
        (["INSERT INTO v1bad VALUES (?)", [1, 2]], 400, "sql_error", "bindings"),
        ("CREATE TRIGGER tr AFTER INSERT ON v1bad BEGIN SELECT random(); END", None, None, None),
        ("ATTACH 'x.db' AS x", 400, "sql_refused", "ATTACH"),
        ("PRAGMA synchronous = OFF", 400, "sql_refused", "PRAGMA"),
    ],
)
def test_v1_bad_statements_are_4xx_and_apply_nothing(
    nodes: list[Sql], statement: Any, status: int | None, code: str | None, fragment: str | None
) -> None:
    one, two, _ = nodes
    one.v1(
        "/v1/sql/execute",
        {
            "statements": [
                "CREATE TABLE IF NOT EXISTS v1bad (x UNIQUE)",
                "INSERT OR IGNORE INTO v1bad VALUES ('dup')",
            ]
        },
    )
    before = same_everywhere(nodes, "SELECT x FROM v1bad ORDER BY x")
    if status is None:
        return  # (a CREATE TRIGGER is fine; what it calls is refused when it runs)
    answer = two.v1(
        "/v1/sql/execute",
        {"statements": [["INSERT INTO v1bad VALUES (?)", ["first"]], statement]},
        status,
    )
    assert answer["error"] == code and fragment in answer["message"]
    assert answer["statement"] == 1 and answer["outcome"] == "failed"
    assert same_everywhere(nodes, "SELECT x FROM v1bad ORDER BY x") == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"statements": "SELECT 1"},
        {"statements": []},
        {"statements": [5]},
        {"statements": [["SELECT ?", [[1]]]]},
        {"statements": [["SELECT ?", [2**63]]]},
        {"statements": ["SELECT 1"], "other": 1},
        {"statements": ["SELECT 1"], "level": "eventual"},
    ],
)
def test_malformed_bodies_are_400(nodes: list[Sql], body: dict[str, Any]) -> None:
    response = nodes[0].post("/v1/sql/query", body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"


def test_malformed_rqlite_bodies_are_400(nodes: list[Sql]) -> None:
    for body in ({"q": "SELECT 1"}, [], [{"sql": 1}], [["SELECT ?", [1]]]):
        response = nodes[0].post("/db/execute", body)
        assert response.status_code == 400, (body, response.text)
    response = nodes[0].client.post("/db/execute", content=b"not json")
    assert response.status_code == 400 and response.json()["error"] == "bad_json"
    assert nodes[0].client.get("/db/query").status_code == 400


def test_a_huge_result_is_refused_with_its_limit(nodes: list[Sql]) -> None:
    answer = nodes[0].v1(
        "/v1/sql/query",
        {
            "statements": [
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                "SELECT i FROM n LIMIT 200000"
            ]
        },
        400,
    )
    assert answer["error"] == "result_too_large" and "result_rows_max" in answer["message"]


def test_blobs_round_trip_on_v1(nodes: list[Sql]) -> None:
    answer = nodes[0].v1(
        "/v1/sql/query", {"statements": [["SELECT ?, typeof(?)", [{"base64": "AP8="}, True]]]}
    )
    assert answer["results"][0]["rows"] == [["AP8=", "integer"]]


# -- interactive transactions -----------------------------------------------------------------


def test_an_interactive_transfer_commits_and_a_concurrent_one_conflicts(nodes: list[Sql]) -> None:
    one, two, _ = nodes
    one.v1(
        "/v1/sql/execute",
        {
            "statements": [
                "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)",
                "INSERT INTO accounts VALUES ('alice', 100), ('bob', 50)",
            ]
        },
    )
    first = one.v1("/v1/sql/begin", {})
    second = two.v1("/v1/sql/begin", {})
    for node, txn in ((one, first), (two, second)):
        rows = node.v1(
            "/v1/sql/query",
            {
                "txn": txn["txn"],
                "statements": [["SELECT balance FROM accounts WHERE id = ?", ["alice"]]],
            },
        )["results"][0]["rows"]
        assert rows == [[100]]
        written = node.v1(
            "/v1/sql/execute",
            {
                "txn": txn["txn"],
                "statements": [
                    ["UPDATE accounts SET balance = balance - 30 WHERE id = ?", ["alice"]],
                    ["UPDATE accounts SET balance = balance + 30 WHERE id = ?", ["bob"]],
                ],
            },
        )
        assert [r["rows_affected"] for r in written["results"]] == [1, 1]
        # The transaction sees its own writes; nobody else does yet.
        mine = node.v1(
            "/v1/sql/query",
            {"txn": txn["txn"], "statements": ["SELECT balance FROM accounts ORDER BY id"]},
        )["results"][0]["rows"]
        assert mine == [[70], [80]]
    assert same_everywhere(nodes, "SELECT balance FROM accounts ORDER BY id") == [[100], [50]]
    committed = one.v1("/v1/sql/commit", {"txn": first["txn"]})
    assert committed["committed"] is True
    conflict = two.v1("/v1/sql/commit", {"txn": second["txn"]}, 409)
    assert conflict["error"] == "sql_conflict" and "accounts" in conflict["message"]
    assert same_everywhere(nodes, "SELECT balance FROM accounts ORDER BY id") == [[70], [80]]
    # Both are over: a second commit finds nothing.
    assert two.v1("/v1/sql/commit", {"txn": second["txn"]}, 404)["error"] == "no_transaction"


def test_a_rolled_back_transaction_applies_nothing(nodes: list[Sql]) -> None:
    one, _, three = nodes
    one.v1("/v1/sql/execute", {"statements": ["CREATE TABLE rb (x)"]})
    txn = three.v1("/v1/sql/begin", {})["txn"]
    three.v1("/v1/sql/execute", {"txn": txn, "statements": ["INSERT INTO rb VALUES (1)"]})
    assert three.v1("/v1/sql/rollback", {"txn": txn}) == {"rolled_back": True}
    assert same_everywhere(nodes, "SELECT count(*) FROM rb") == [[0]]
    assert three.v1("/v1/sql/query", {"txn": txn, "statements": ["SELECT 1"]}, 404)


def test_a_transaction_is_known_only_to_the_node_that_began_it(nodes: list[Sql]) -> None:
    txn = nodes[0].v1("/v1/sql/begin", {})["txn"]
    assert nodes[1].v1("/v1/sql/commit", {"txn": txn}, 404)["error"] == "no_transaction"
    nodes[0].v1("/v1/sql/rollback", {"txn": txn})


# -- the book's example (docs/sql.md) ----------------------------------------------------------


def test_concurrent_signups_of_one_name_through_every_node_leave_exactly_one_row(
    nodes: list[Sql],
) -> None:
    nodes[0].v1(
        "/v1/sql/execute",
        {
            "statements": [
                "CREATE TABLE signups (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE)"
            ]
        },
    )

    def sign_up(i: int) -> int:
        # A sign-up whose outcome is unknown (503 on a loaded machine) is sent again with its
        # exactly-once identity, so it applies once and its answer is the one it got.
        headers = {"Paxosd-Client-Id": f"signup-{i}", "Paxosd-Seq": "1"}
        body = {"statements": [["INSERT INTO signups (username) VALUES (?)", ["paxos_expert"]]]}
        for attempt in range(20):
            node = nodes[(i + attempt) % 3]
            response = node.client.post("/v1/sql/execute", json=body, headers=headers)
            if response.status_code != 503:
                return response.status_code
        return 503

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(sign_up, range(24)))
    assert statuses.count(200) == 1 and statuses.count(409) == 23, statuses
    assert same_everywhere(nodes, "SELECT username FROM signups") == [["paxos_expert"]]
