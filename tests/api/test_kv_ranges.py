"""/v1's key-value routes over many keys against a FakeNode: GET and DELETE /v1/kv with a
prefix or [start, end), POST /v1/txn, POST /v1/compact - the JSON, every range option, the
store's refusals as /v1 errors, nothing changed by a refused request."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from paxosd.api.kv_json import KvJsonError, range_from_query, txn_request
from paxosd.service.kv.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    Put,
    Range,
    SortOrder,
    SortTarget,
    Txn,
)
from paxosd.service.values import json_text
from tests.mvcc_store import needs_store

from .conftest import Api, FakeNode


def put(api: Api, key: str, value: Any) -> int:
    body = {"success": [{"put": {"key": key, "value": value}}]}
    reply = api.post("/v1/txn", body)
    assert reply.status == 200, reply.body
    return int(reply.json["revision"])


def error(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    body: dict[str, Any] = reply.json
    assert body["error"] == code and body["outcome"] == "failed" and body["message"]
    return body


# ---------------------------------------------------------------------------------------------
# The JSON, without a store


def test_selectors() -> None:
    assert range_from_query({"key": "a"}) == Range(key=b"a")
    assert range_from_query({"prefix": "a/"}) == Range(key=b"a/", range_end=b"a0")
    assert range_from_query({"prefix": ""}) == Range(key=b"\0", range_end=b"\0")
    assert range_from_query({"start": "b"}) == Range(key=b"b", range_end=b"\0")
    assert range_from_query({"start": "b", "end": "d"}) == Range(key=b"b", range_end=b"d")
    assert range_from_query({"start": "", "end": "d"}) == Range(key=b"\0", range_end=b"d")
    assert range_from_query({"prefix": "é"}) == Range(key="é".encode(), range_end=b"\xc3\xaa")


def test_range_options_from_a_query() -> None:
    query = {
        "prefix": "p",
        "limit": "5",
        "revision": "9",
        "sort": "MOD",
        "order": "descend",
        "keys_only": "true",
        "count_only": "0",
        "serializable": "",
        "min_mod_revision": "2",
        "max_mod_revision": "8",
        "min_create_revision": "3",
        "max_create_revision": "7",
    }
    assert range_from_query(query) == Range(
        key=b"p",
        range_end=b"q",
        limit=5,
        revision=9,
        sort_order=SortOrder.DESCEND,
        sort_target=SortTarget.MOD,
        keys_only=True,
        serializable=True,
        min_mod_revision=2,
        max_mod_revision=8,
        min_create_revision=3,
        max_create_revision=7,
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "keys"),
        ({"key": "a", "prefix": "b"}, "keys"),
        ({"prefix": "a", "end": "b"}, "end"),
        ({"prefix": "a", "limit": "ten"}, "limit"),
        ({"prefix": "a", "limit": str(2**64)}, "limit"),
        ({"prefix": "a", "sort": "size"}, "sort"),
        ({"prefix": "a", "order": "up"}, "order"),
        ({"prefix": "a", "keys_only": "maybe"}, "keys_only"),
        ({"prefix": "a", "colour": "red"}, "colour"),
    ],
)
def test_malformed_queries(query: dict[str, str], field: str) -> None:
    with pytest.raises(KvJsonError) as refused:
        range_from_query(query)
    assert refused.value.field == field


def test_a_transaction_from_json() -> None:
    body = {
        "compare": [
            {"key": "k", "target": "value", "result": "=", "value": {"b": 1.0, "a": [True]}},
            {"prefix": "jobs/", "target": "create", "result": "<", "create_revision": 5},
            {"key": "b", "target": "VALUE", "result": "not_equal", "value_base64": "AP8="},
        ],
        "success": [
            {"put": {"key": "k", "value": 2, "prev_kv": True}},
            {"range": {"prefix": "jobs/", "limit": 1, "sort": "create"}},
            {"delete": {"start": "x", "end": "y", "prev_kv": True}},
            {"txn": {"success": [{"put": {"key": "raw", "value_base64": "AAE="}}]}},
        ],
        "failure": [{"range": {"key": "k"}}],
    }
    assert txn_request(body) == Txn(
        compare=(
            Compare(
                key=b"k",
                target=CompareTarget.VALUE,
                result=CompareResult.EQUAL,
                value=b'{"a":[true],"b":1.0}',
            ),
            Compare(
                key=b"jobs/",
                range_end=b"jobs0",
                target=CompareTarget.CREATE,
                result=CompareResult.LESS,
                create_revision=5,
            ),
            Compare(
                key=b"b",
                target=CompareTarget.VALUE,
                result=CompareResult.NOT_EQUAL,
                value=b"\x00\xff",
            ),
        ),
        success=(
            Put(key=b"k", value=b"2", prev_kv=True),
            Range(key=b"jobs/", range_end=b"jobs0", limit=1, sort_target=SortTarget.CREATE),
            DeleteRange(key=b"x", range_end=b"y", prev_kv=True),
            Txn(success=(Put(key=b"raw", value=b"\x00\x01"),)),
        ),
        failure=(Range(key=b"k"),),
    )


def test_values_are_stored_as_their_json_text() -> None:
    body = {"success": [{"put": {"key": "k", "value": {"b": "é", "a": [1, 1.0]}}}]}
    assert txn_request(body).success[0] == Put(key=b"k", value=json_text({"a": [1, 1.0], "b": "é"}))
    assert json_text({"b": "é", "a": [1, 1.0]}) == '{"a":[1,1.0],"b":"é"}'.encode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"compare": {}}, "compare"),
        ({"compare": [{"key": "k", "result": "="}]}, "compare[0].target"),
        ({"compare": [{"key": "k", "target": "mod"}]}, "compare[0].result"),
        ({"compare": [{"key": "k", "target": "colour", "result": "="}]}, "compare[0].target"),
        ({"compare": [{"key": "k", "target": "mod", "result": "=", "value": 1}]},
         "compare[0].value"),
        ({"compare": [{"key": "k", "target": "value", "result": "="}]}, "compare[0].value"),
        ({"success": [{"put": {"key": "k"}}]}, "success[0].put.value"),
        ({"success": [{"put": {"key": "k", "value": 1, "value_base64": "AA=="}}]},
         "success[0].put.value"),
        ({"success": [{"put": {"key": "k", "value_base64": "!!"}}]},
         "success[0].put.value_base64"),
        ({"success": [{"put": {"value": 1}}]}, "success[0].put.key"),
        ({"success": [{"get": {"key": "k"}}]}, "success[0]"),
        ({"success": [{"put": {"key": "k", "value": 1}, "range": {"key": "k"}}]}, "success[0]"),
        ({"failure": [{"delete": {}}]}, "failure[0].delete"),
        ({"failure": [{"range": {"key": 5}}]}, "failure[0].range.key"),
        ({"success": [{"put": {"key": "k", "value": 1, "prev_kv": "yes"}}]},
         "success[0].put.prev_kv"),
    ],
)  # fmt: skip
def test_malformed_transactions(body: dict[str, Any], field: str) -> None:
    with pytest.raises(KvJsonError) as refused:
        txn_request(body)
    assert refused.value.field == field


def test_refusals_reach_no_node(api: Api, node: FakeNode) -> None:
    error(api.get("/v1/kv?prefix=a&limit=x"), 400, "bad_request")
    error(api.get("/v1/kv"), 400, "bad_request")
    error(api.delete("/v1/kv?limit=3"), 400, "bad_request")
    error(api.post("/v1/txn", {"compare": [{"key": "k", "target": "?", "result": "="}]}), 400,
          "bad_request")  # fmt: skip
    error(api.post("/v1/txn", {"oops": []}), 400, "bad_request")
    error(api.post("/v1/compact", {"revision": "5"}), 400, "bad_request")
    dup = {"success": [{"put": {"key": "k", "value": 1}}, {"put": {"key": "k", "value": 2}}]}
    # Refused before the log: bad_command, with etcd's text beside paxosd's.
    body = error(api.post("/v1/txn", dup), 400, "bad_command")
    assert body["etcd_message"] == "etcdserver: duplicate key given in txn request"
    many = {"success": [{"put": {"key": f"k{i}", "value": i}} for i in range(129)]}
    body = error(api.post("/v1/txn", many), 400, "bad_command")
    assert "129" in body["message"] and "128" in body["message"]
    assert body["etcd_message"] == "etcdserver: too many operations in txn request"
    body = error(api.post("/v1/txn", {"success": [{"range": {"key": ""}}]}), 400, "bad_command")
    assert body["etcd_message"] == "etcdserver: key is not provided"
    assert node.calls == []


# ---------------------------------------------------------------------------------------------
# The store's answers


@needs_store
def test_range_answers(api: Api) -> None:
    put(api, "config/b", 3)
    put(api, "config/a", {"on": True})
    put(api, "configs", "outside")
    put(api, "config/a", {"on": False})
    reply = api.get("/v1/kv?prefix=config/&limit=1")
    assert reply.json == {
        "revision": 5,
        "count": 2,
        "more": True,
        "kvs": [
            {
                "key": "config/a",
                "value": {"on": False},
                "create_revision": 3,
                "mod_revision": 5,
                "version": 2,
                "lease": 0,
            }
        ],
    }
    older = api.get("/v1/kv?prefix=config/&revision=3").json
    assert [kv["value"] for kv in older["kvs"]] == [{"on": True}, 3]
    by_mod = api.get("/v1/kv?start=config/&end=configt&sort=mod&order=descend&keys_only=1")
    assert [kv["key"] for kv in by_mod.json["kvs"]] == ["config/a", "configs", "config/b"]
    assert all("value" not in kv for kv in by_mod.json["kvs"])
    counted = api.get("/v1/kv?prefix=&count_only=true").json
    assert counted["count"] == 3 and counted["kvs"] == []
    filtered = api.get("/v1/kv?prefix=config&min_create_revision=3").json
    assert [kv["key"] for kv in filtered["kvs"]] == ["config/a", "configs"]


@needs_store
def test_values_that_are_not_json_show_as_base64(api: Api) -> None:
    body = {
        "success": [{"put": {"key": "raw", "value_base64": base64.b64encode(b"\xff").decode()}}]
    }
    api.post("/v1/txn", body)
    api.post("/v3/kv/put", {"key": base64.b64encode(b"\xfe").decode(), "value": "aGk="})
    kvs = api.get("/v1/kv?prefix=").json["kvs"]
    assert kvs[0]["key"] == "raw" and kvs[0]["value_base64"] == "/w=="
    assert kvs[1]["key_base64"] == "/g==" and kvs[1]["value_base64"] == "aGk="


@needs_store
def test_delete_a_prefix(api: Api) -> None:
    for i in range(3):
        put(api, f"tmp/{i}", i)
    put(api, "keep", 1)
    reply = api.delete("/v1/kv?prefix=tmp/&prev_kv=true")
    assert reply.json["deleted"] == 3 and reply.json["revision"] == 6
    assert [kv["value"] for kv in reply.json["prev_kvs"]] == [0, 1, 2]
    assert api.delete("/v1/kv?prefix=tmp/").json == {"revision": 6, "deleted": 0}
    assert api.get("/v1/kv?prefix=").json["count"] == 1


@needs_store
def test_transactions(api: Api) -> None:
    create = {
        "compare": [{"key": "job", "target": "create", "result": "=", "create_revision": 0}],
        "success": [{"put": {"key": "job", "value": {"owner": "w1"}}}],
        "failure": [{"range": {"key": "job"}}],
    }
    assert api.post("/v1/txn", create).json == {
        "revision": 2,
        "succeeded": True,
        "responses": [{"put": {"revision": 2}}],
    }
    lost = api.post("/v1/txn", create).json
    assert lost["succeeded"] is False
    assert lost["responses"][0]["range"]["kvs"][0]["value"] == {"owner": "w1"}
    # A JSON compare: object members in any order (1 and 1.0 are two texts, two values).
    put(api, "n", {"x": 1, "y": [1.0]})
    same = {"y": [1.0], "x": 1}
    compare = {"compare": [{"key": "n", "target": "value", "result": "=", "value": same}]}
    assert api.post("/v1/txn", compare).json["succeeded"] is True
    compare["compare"][0]["value"] = {"y": [1], "x": 1}
    assert api.post("/v1/txn", compare).json["succeeded"] is False
    nested = {
        "success": [
            {"txn": {"compare": [{"key": "job", "target": "version", "result": ">", "version": 0}],
                     "success": [{"delete": {"key": "job", "prev_kv": True}}]}},
            {"put": {"key": "log", "value": "deleted job"}},
        ]
    }  # fmt: skip
    answer = api.post("/v1/txn", nested).json
    assert answer["revision"] == 4
    inner = answer["responses"][0]["txn"]
    assert inner["succeeded"] and inner["responses"][0]["delete"]["deleted"] == 1


@needs_store
def test_compaction(api: Api) -> None:
    for i in range(4):
        put(api, "k", i)
    assert api.post("/v1/compact", {"revision": 4}).json == {"revision": 5, "compact_revision": 4}
    body = error(api.get("/v1/kv?key=k&revision=3"), 400, "compacted")
    assert "4" in body["message"]
    assert body["etcd_message"] == "etcdserver: mvcc: required revision has been compacted"
    error(api.post("/v1/compact", {"revision": 4}), 400, "compacted")
    error(api.get("/v1/kv?key=k&revision=50"), 400, "future_revision")
    error(api.post("/v1/compact", {"revision": 50}), 400, "future_revision")
    assert api.get("/v1/kv?key=k&revision=4").json["kvs"][0]["value"] == 2
    assert api.get("/v1/kv?key=k").json["revision"] == 5  # nothing changed
