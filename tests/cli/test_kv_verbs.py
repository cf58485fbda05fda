"""`paxosd get --prefix`, `del --prefix`, `txn` and `compact`: etcdctl's text form of a
transaction read as etcdctl reads it, and the verbs against the HTTP API over a FakeNode
(output, --json, exit codes)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from paxosd.cli.main import main
from paxosd.cli.txn_text import TxnSyntaxError, parse, parse_compare, parse_request
from tests.api.conftest import Api, FakeNode
from tests.mvcc_store import needs_store

SCRIPT = """\
mod("jobs/7") = "0"
value("config/mode") != "fast"
ver("a") > "1"
c("b b") < "10"
lease("k") = "0"

put jobs/7 '{"owner": "w1"}'
put "a key" "two words" --prev-kv
get --prefix jobs/ --limit 2 --sort-by MODIFY --order DESCEND --keys-only
del --prefix tmp/ --prev-kv

get jobs/7 --rev 4
del --from-key z
get a --range-end b --count-only
"""


def test_etcdctls_text_form() -> None:
    assert parse(SCRIPT.splitlines(keepends=True)) == {
        "compare": [
            {"key": "jobs/7", "target": "mod", "result": "=", "mod_revision": 0},
            {"key": "config/mode", "target": "value", "result": "!=", "value": "fast"},
            {"key": "a", "target": "version", "result": ">", "version": 1},
            {"key": "b b", "target": "create", "result": "<", "create_revision": 10},
            {"key": "k", "target": "lease", "result": "=", "lease": 0},
        ],
        "success": [
            {"put": {"key": "jobs/7", "value": {"owner": "w1"}}},
            {"put": {"key": "a key", "value": "two words", "prev_kv": True}},
            {"range": {"prefix": "jobs/", "limit": 2, "sort": "mod", "order": "descend",
                       "keys_only": True}},
            {"delete": {"prefix": "tmp/", "prev_kv": True}},
        ],
        "failure": [
            {"range": {"key": "jobs/7", "revision": 4}},
            {"delete": {"start": "z"}},
            {"range": {"start": "a", "end": "b", "count_only": True}},
        ],
    }  # fmt: skip


def test_values_as_text() -> None:
    assert parse_request("put k 1", strings=True) == {"put": {"key": "k", "value": "1"}}
    assert parse_request("put k 1") == {"put": {"key": "k", "value": 1}}
    assert parse_compare('value("k") = "1"', strings=True)["value"] == "1"
    assert parse_compare('value("k") = "\\"quoted\\""')["value"] == "quoted"


def test_only_compares_and_success() -> None:
    assert parse(['value("k") = "v"\n', "\n", "put k w\n"]) == {
        "compare": [{"key": "k", "target": "value", "result": "=", "value": "v"}],
        "success": [{"put": {"key": "k", "value": "w"}}],
        "failure": [],
    }


@pytest.mark.parametrize(
    "line",
    [
        'size("k") = "1"',
        'mod(k) = "1"',
        'mod("k") >= "1"',
        'mod("k") = "one"',
        'mod("k") = 1',
    ],
)
def test_malformed_compares(line: str) -> None:
    with pytest.raises(TxnSyntaxError):
        parse_compare(line)


@pytest.mark.parametrize(
    "line",
    [
        "set k v",
        "put k",
        "put k v w",
        "get",
        "get a b",
        "get k --limit",
        "get k --limit x",
        "get k --sort-by size",
        "get k --bogus",
        "del k --keys-only",
        "put 'k v",
    ],
)
def test_malformed_requests(line: str) -> None:
    with pytest.raises(TxnSyntaxError):
        parse_request(line)


# ---------------------------------------------------------------------------------------------
# The verbs against a node


@pytest.fixture
def endpoint() -> Iterator[str]:
    harness = Api(FakeNode())
    try:
        yield f"127.0.0.1:{harness.client.server.port}"
    finally:
        harness.close()


def run(endpoint: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--endpoints", endpoint], input=stdin)
    return result.exit_code, result.output


def test_usage_errors(endpoint: str) -> None:
    code, out = run(endpoint, "get", "k", "--prefix", "--from-key")
    assert code == 2 and "one of --prefix" in out
    code, out = run(endpoint, "txn", stdin='mod("k") ~ "1"\n')
    assert code == 2 and "not a compare" in out
    code, out = run(endpoint, "compact", "0")
    assert code == 2


@needs_store
def test_get_del_txn_compact(endpoint: str) -> None:
    code, out = run(endpoint, "txn", stdin="\nput app/a 1\nput app/b '\"two\"'\nput other 3\n")
    assert code == 0 and out.splitlines() == ["SUCCESS", "", "OK", "", "OK", "", "OK"]
    code, out = run(endpoint, "get", "--prefix", "app/")
    assert code == 0 and out.splitlines() == ["app/a", "1", "app/b", "two"]
    code, out = run(endpoint, "get", "app/", "--prefix", "--keys-only", "--order", "DESCEND")
    assert out.splitlines() == ["app/b", "app/a"]
    code, out = run(endpoint, "get", "app/", "--prefix", "--count-only")
    assert out.strip() == "2"
    code, out = run(endpoint, "get", "app/a", "--rev", "2", "--json")
    answer = json.loads(out)
    assert answer["kvs"][0]["value"] == 1 and answer["kvs"][0]["version"] == 1
    code, out = run(endpoint, "get", "app/zzz", "--rev", "2")
    assert code == 1 and "not found" in out
    script = 'value("app/a") = "1"\n\nput app/a 10\n\nget app/a\n'
    code, out = run(endpoint, "txn", stdin=script)
    assert code == 0 and out.startswith("SUCCESS")
    code, out = run(endpoint, "txn", stdin=script)
    assert code == 1 and out.splitlines() == ["FAILURE", "", "app/a", "10"]
    code, out = run(endpoint, "del", "--prefix", "app/", "--prev-kv")
    assert code == 0 and out.splitlines() == ["2", "app/a", "10", "app/b", "two"]
    code, out = run(endpoint, "compact", "3", "--json")
    assert code == 0 and json.loads(out)["compact_revision"] == 3
    code, out = run(endpoint, "get", "other", "--rev", "2")
    assert code == 2 and "compacted" in out


@needs_store
def test_txn_from_a_json_file(endpoint: str, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "txn.json"
    path.write_text(json.dumps({"success": [{"put": {"key": "f", "value": [1]}}]}))
    code, out = run(endpoint, "txn", "--file", str(path), "--json")
    assert code == 0 and json.loads(out)["succeeded"] is True
    code, out = run(endpoint, "get", "f")
    assert out.strip() == "[1]"
    path.write_text("[1, 2]")
    code, out = run(endpoint, "txn", "--file", str(path))
    assert code == 2 and "JSON object" in out
