"""The etcd v3 JSON API (api/etcd) against a FakeNode: etcd's JSON, etcd's errors, every route.

What is asserted is what an etcd client relies on: field names, base64, int64 as strings,
defaults left out, the header, and for refusals the HTTP status, gRPC code and etcd's exact
message, with nothing changed in the store. tests/integration/test_etcd_differential.py holds
the same answers against a real etcd."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxosd.api.etcd.gateway import cluster_uint64
from paxosd.runtime.errors import NotLeader, Overloaded, Unavailable
from paxosd.service.kv.types import Range
from tests.mvcc_store import needs_store

from .conftest import Api, FakeNode, Reply


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def header(revision: int | None, node: FakeNode) -> dict[str, str]:
    out = {"cluster_id": str(cluster_uint64(node.cluster_id)), "member_id": str(node.node_id)}
    if revision:
        out["revision"] = str(revision)
    out["raft_term"] = "1"
    return out


def etcd_error(reply: Reply, status: int, code: int, message: str) -> dict[str, Any]:
    """Assert `reply` is etcd's error (gateway shape); return paxosd's own member."""
    assert reply.status == status, reply.body
    body = reply.json
    assert body["code"] == code, body
    assert body["error"] == body["message"] == message, body
    extra: dict[str, Any] = body["paxosd"]
    assert extra["outcome"] in ("failed", "unknown") and extra["detail"]
    return extra


def put(api: Api, key: str, value: str, **options: Any) -> dict[str, Any]:
    reply = api.post("/v3/kv/put", {"key": b64(key), "value": b64(value), **options})
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json
    return body


def revision_now(api: Api) -> int:
    return int(api.post("/v3/kv/range", {"key": b64("\0")}).json["header"]["revision"])


# ---------------------------------------------------------------------------------------------
# Answers without the store


def test_version_names_the_etcd_api_and_paxosd(api: Api) -> None:
    body = api.get("/version").json
    assert body["etcdserver"] == "3.4.0" and body["etcdcluster"] == "3.4.0"
    assert body["paxosd"]


def test_member_list_and_status(api: Api, node: FakeNode) -> None:
    node.member_list = [
        {"id": 1, "http": "127.0.0.1:7001", "resp": "127.0.0.1:6401", "peer": "127.0.0.1:7101"},
        {"id": 2, "http": "127.0.0.1:7002", "resp": "127.0.0.1:6402", "peer": "127.0.0.1:7102"},
    ]
    body = api.post("/v3/cluster/member/list", {}).json
    assert body == {
        "header": header(None, node),
        "members": [
            {
                "ID": "1",
                "name": "node1",
                "peerURLs": ["tcp://127.0.0.1:7101"],
                "clientURLs": ["http://127.0.0.1:7001"],
            },
            {
                "ID": "2",
                "name": "node2",
                "peerURLs": ["tcp://127.0.0.1:7102"],
                "clientURLs": ["http://127.0.0.1:7002"],
            },
        ],
    }
    # Once members changed through the log: a learner is marked, a removed node is left out.
    node.member_list.append({"id": 3, "http": "127.0.0.1:7003", "peer": "127.0.0.1:7103"})
    node.status_extra["configuration"] = {"epoch": 2, "voters": [1, 3], "learners": [2]}
    listed = api.post("/v3/cluster/member/list", {}).json["members"]
    assert [(m["ID"], m.get("isLearner", False)) for m in listed] == [
        ("1", False),
        ("2", True),
        ("3", False),
    ]
    node.status_extra["configuration"] = {"epoch": 3, "voters": [1, 2], "learners": []}
    listed = api.post("/v3/cluster/member/list", {}).json["members"]
    assert [(m["ID"], m.get("isLearner", False)) for m in listed] == [("1", False), ("2", False)]
    del node.status_extra["configuration"]
    node.slot = 7
    status = api.post("/v3/maintenance/status").json  # no body at all is an empty request
    assert status["version"] == "3.4.0"
    assert status["leader"] == "1" and status["raftTerm"] == "1"
    assert status["raftIndex"] == status["raftAppliedIndex"]
    assert status["dbSize"] == str(5 * 1024 * 1024 + 300 * 1024)
    assert status["header"]["member_id"] == "1"


def test_status_without_a_quorum_still_answers(api: Api, node: FakeNode) -> None:
    node.fail = Unavailable("no quorum")
    status = api.post("/v3/maintenance/status", {})
    assert status.status == 200
    assert status.json["header"]["revision"] == "1"  # the node's own store, empty


def test_cluster_id_is_a_stable_uint64_per_cluster() -> None:
    first = cluster_uint64("paxosd-local-0a1b2c3d")
    assert 0 < first < 2**64
    assert first == cluster_uint64("paxosd-local-0a1b2c3d")
    assert first != cluster_uint64("paxosd-local-0a1b2c3e")


def test_other_etcd_services_are_unimplemented(api: Api) -> None:
    for path in ("/v3/auth/enable", "/v3/lease/unknown", "/v3/election/campaign"):
        extra = etcd_error(
            api.post(path, {"TTL": 5}), 501, 12, f"paxosd: {path} is not supported by paxosd"
        )
        assert extra["error"] == "unimplemented"


# ---------------------------------------------------------------------------------------------
# Refusals before the log: etcd's errors, nothing changed


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v3/kv/range", {}, "etcdserver: key is not provided"),
        ("/v3/kv/range", {"key": ""}, "etcdserver: key is not provided"),
        ("/v3/kv/put", {"value": b64("v")}, "etcdserver: key is not provided"),
        ("/v3/kv/deleterange", {"key": None}, "etcdserver: key is not provided"),
        (
            "/v3/kv/put",
            {"key": b64("k"), "value": b64("v"), "ignore_value": True},
            "etcdserver: value is provided",
        ),
        (
            "/v3/kv/put",
            {"key": b64("k"), "lease": "5", "ignore_lease": True},
            "etcdserver: lease is provided",
        ),
        (
            "/v3/kv/txn",
            {
                "success": [
                    {"request_put": {"key": b64("k"), "value": b64("1")}},
                    {"request_put": {"key": b64("k"), "value": b64("2")}},
                ]
            },
            "etcdserver: duplicate key given in txn request",
        ),
        (
            "/v3/kv/txn",
            {
                "failure": [
                    {"request_delete_range": {"key": b64("a"), "range_end": b64("z")}},
                    {"request_put": {"key": b64("k"), "value": b64("2")}},
                ]
            },
            "etcdserver: duplicate key given in txn request",
        ),
        (
            "/v3/kv/txn",
            {"success": [{"request_put": {"key": b64(f"k{i}")}} for i in range(129)]},
            "etcdserver: too many operations in txn request",
        ),
        (
            "/v3/kv/txn",
            {"compare": [{"key": b64(f"k{i}"), "target": "VERSION"} for i in range(129)]},
            "etcdserver: too many operations in txn request",
        ),
        ("/v3/kv/txn", {"success": [{}]}, "etcdserver: key not found"),
    ],
)
def test_refusals_with_etcds_messages(
    api: Api, node: FakeNode, path: str, body: dict[str, Any], message: str
) -> None:
    etcd_error(api.post(path, body), 400, 3, message)
    assert node.calls == []  # refused before it reached the node


def test_too_many_operations_names_the_limit_and_the_count(api: Api) -> None:
    body = {"success": [{"request_put": {"key": b64(f"k{i}")}} for i in range(200)]}
    extra = etcd_error(
        api.post("/v3/kv/txn", body), 400, 3, "etcdserver: too many operations in txn request"
    )
    assert "200" in extra["detail"] and "txn_ops_max = 128" in extra["detail"]
    assert extra["error"] == "too_many_ops"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v3/kv/range", {"key": "@@@"}, "RangeRequest.key"),
        ("/v3/kv/range", {"key": "YQ"}, "RangeRequest.key"),  # no padding
        ("/v3/kv/range", {"key": 5}, "RangeRequest.key"),
        ("/v3/kv/range", {"key": b64("a"), "limit": "x"}, "RangeRequest.limit"),
        ("/v3/kv/range", {"key": b64("a"), "limit": 1.5}, "RangeRequest.limit"),
        ("/v3/kv/range", {"key": b64("a"), "limit": str(2**63)}, "RangeRequest.limit"),
        ("/v3/kv/range", {"key": b64("a"), "keys_only": "true"}, "RangeRequest.keys_only"),
        ("/v3/kv/range", {"key": b64("a"), "keys_only": 1}, "RangeRequest.keys_only"),
        ("/v3/kv/range", {"key": b64("a"), "sort_target": "BAD"}, "RangeRequest.sort_target"),
        ("/v3/kv/range", {"key": b64("a"), "sort_order": 7}, "RangeRequest.sort_order"),
        ("/v3/kv/put", {"key": b64("a"), "value": "not base64!"}, "PutRequest.value"),
        ("/v3/kv/put", {"key": b64("a"), "prev_kv": "yes"}, "PutRequest.prev_kv"),
        ("/v3/kv/txn", {"compare": [{"key": b64("a"), "target": "BOGUS"}]}, "target"),
        ("/v3/kv/txn", {"compare": [{"key": b64("a"), "result": "SAME"}]}, "result"),
        ("/v3/kv/txn", {"compare": {"key": b64("a")}}, "TxnRequest.compare"),
        ("/v3/kv/txn", {"success": [{"request_put": {"key": "%%"}}]}, "request_put.key"),
        (
            "/v3/kv/txn",
            {"success": [{"request_put": {"key": b64("a")}, "request_range": {"key": b64("a")}}]},
            "TxnRequest.success[0]",
        ),
        ("/v3/kv/compaction", {"revision": "two"}, "CompactionRequest.revision"),
    ],
)
def test_malformed_json_fields_are_invalid_arguments(
    api: Api, node: FakeNode, path: str, body: dict[str, Any], field: str
) -> None:
    reply = api.post(path, body)
    assert reply.status == 400, reply.body
    answer = reply.json
    assert answer["code"] == 3
    assert answer["error"] == answer["message"] and answer["message"].startswith("paxosd: ")
    assert field in answer["message"]
    assert node.calls == []


def test_a_compare_operand_other_than_its_target_is_refused(api: Api, node: FakeNode) -> None:
    body = {"compare": [{"key": b64("a"), "target": "VALUE", "version": "3"}]}
    reply = api.post("/v3/kv/txn", body)
    assert reply.status == 400 and reply.json["code"] == 3
    assert "set value instead" in reply.json["message"]
    assert node.calls == []


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b'"text"', b"{", b'{"key": NaN}', b"\xff\xfe", b"null"]
)
def test_bodies_that_are_not_a_json_object(api: Api, node: FakeNode, raw: bytes) -> None:
    reply = api.request("POST", "/v3/kv/put", data=raw)
    assert reply.status == 400, reply.body
    assert reply.json["code"] == 3 and reply.json["message"].startswith("paxosd: ")
    assert node.calls == []


def test_too_large_a_body_is_etcds_request_too_large(node: FakeNode) -> None:
    from paxosd.api.limits import HttpLimits

    harness = Api(node, limits=HttpLimits(body_bytes_max=1000))
    try:
        body = {"key": b64("k"), "value": b64("x" * 2000)}
        extra = etcd_error(
            harness.post("/v3/kv/put", body), 400, 3, "etcdserver: request is too large"
        )
        assert extra["error"] == "too_large"
    finally:
        harness.close()
    assert node.calls == []


@pytest.mark.parametrize(
    ("error", "status", "code", "message", "outcome"),
    [
        (Unavailable("no quorum"), 503, 14, "etcdserver: request timed out", "unknown"),
        (NotLeader("no leader known"), 503, 14, "etcdserver: no leader", "failed"),
        (Overloaded("too many in flight"), 429, 8, "etcdserver: too many requests", "failed"),
    ],
)
def test_node_conditions_as_etcd_names_them(
    api: Api,
    node: FakeNode,
    error: Exception,
    status: int,
    code: int,
    message: str,
    outcome: str,
) -> None:
    node.fail = error
    extra = etcd_error(
        api.post("/v3/kv/put", {"key": b64("k"), "value": b64("v")}), status, code, message
    )
    assert extra["outcome"] == outcome
    assert extra["error"] == getattr(error, "code")  # noqa: B009


def test_exactly_once_headers_are_honoured(api: Api, node: FakeNode) -> None:
    headers = {"Paxosd-Client-Id": "etcd-test", "Paxosd-Seq": "7"}
    api.post("/v3/kv/put", {"key": b64("k"), "value": b64("v")}, headers=headers)
    assert (node.calls[0].client_id, node.calls[0].seq) == ("etcd-test", 7)
    reply = api.post("/v3/kv/put", {"key": b64("k")}, headers={"Paxosd-Seq": "8"})
    assert reply.status == 400 and reply.json["code"] == 3


def test_serializable_and_camel_case_names_reach_the_request(api: Api, node: FakeNode) -> None:
    api.post(
        "/v3/kv/range",
        {"key": b64("a"), "rangeEnd": b64("b"), "serializable": True, "keysOnly": True, "x": 1},
    )
    op = node.calls[0].op
    assert op == Range(key=b"a", range_end=b"b", serializable=True, keys_only=True)


# ---------------------------------------------------------------------------------------------
# The store's answers in etcd's JSON


@needs_store
def test_put_and_range_shapes(api: Api, node: FakeNode) -> None:
    assert api.post("/v3/kv/range", {"key": b64("a")}).json == {"header": header(1, node)}
    assert put(api, "a", "1") == {"header": header(2, node)}
    assert put(api, "a", "2", prev_kv=True) == {
        "header": header(3, node),
        "prev_kv": {
            "key": b64("a"),
            "create_revision": "2",
            "mod_revision": "2",
            "version": "1",
            "value": b64("1"),
        },
    }
    put(api, "b", "")
    body = api.post("/v3/kv/range", {"key": b64("a"), "range_end": b64("c")}).json
    assert body == {
        "header": header(4, node),
        "kvs": [
            {
                "key": b64("a"),
                "create_revision": "2",
                "mod_revision": "3",
                "version": "2",
                "value": b64("2"),
            },
            # An empty value is left out, as etcd leaves it out.
            {"key": b64("b"), "create_revision": "4", "mod_revision": "4", "version": "1"},
        ],
        "count": "2",
    }


@needs_store
def test_range_options(api: Api) -> None:
    for i in range(5):
        put(api, f"k{i}", f"v{4 - i}")
    every = {"key": b64("k"), "range_end": b64("l")}
    body = api.post("/v3/kv/range", {**every, "limit": "2"}).json
    assert [kv["key"] for kv in body["kvs"]] == [b64("k0"), b64("k1")]
    assert body["more"] is True and body["count"] == "5"
    body = api.post("/v3/kv/range", {**every, "sort_order": "DESCEND", "limit": 1}).json
    assert body["kvs"][0]["key"] == b64("k4")
    body = api.post("/v3/kv/range", {**every, "sort_target": "VALUE", "limit": 1}).json
    assert body["kvs"][0]["key"] == b64("k4")  # v0, ascending by value
    body = api.post("/v3/kv/range", {**every, "keys_only": True}).json
    assert all("value" not in kv for kv in body["kvs"]) and len(body["kvs"]) == 5
    body = api.post("/v3/kv/range", {**every, "count_only": True}).json
    assert "kvs" not in body and body["count"] == "5"
    body = api.post("/v3/kv/range", {**every, "min_mod_revision": "4", "max_mod_revision": 5}).json
    assert [kv["key"] for kv in body["kvs"]] == [b64("k2"), b64("k3")]
    # range_end "\0": every key from key on; key "\0" too: every key.
    body = api.post("/v3/kv/range", {"key": b64("k3"), "range_end": b64("\0")}).json
    assert body["count"] == "2"
    body = api.post("/v3/kv/range", {"key": b64("\0"), "range_end": b64("\0")}).json
    assert body["count"] == "5"
    # An old revision.
    body = api.post("/v3/kv/range", {**every, "revision": "3"}).json
    assert body["count"] == "2" and body["header"]["revision"] == "6"


@needs_store
def test_delete_range(api: Api, node: FakeNode) -> None:
    put(api, "p/1", "a")
    put(api, "p/2", "b")
    assert api.post("/v3/kv/deleterange", {"key": b64("q")}).json == {"header": header(3, node)}
    body = api.post(
        "/v3/kv/deleterange", {"key": b64("p/"), "range_end": b64("p0"), "prev_kv": True}
    ).json
    assert body["header"]["revision"] == "4" and body["deleted"] == "2"
    assert [kv["value"] for kv in body["prev_kvs"]] == [b64("a"), b64("b")]


@needs_store
def test_txn_shapes(api: Api, node: FakeNode) -> None:
    create = {
        "compare": [{"key": b64("k"), "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
        "success": [{"request_put": {"key": b64("k"), "value": b64("1")}}],
        "failure": [{"request_range": {"key": b64("k")}}],
    }
    assert api.post("/v3/kv/txn", create).json == {
        "header": header(2, node),
        "succeeded": True,
        "responses": [{"response_put": {"header": {"revision": "2"}}}],
    }
    assert api.post("/v3/kv/txn", create).json == {
        "header": header(2, node),
        "responses": [
            {
                "response_range": {
                    "header": {"revision": "2"},
                    "kvs": [
                        {
                            "key": b64("k"),
                            "create_revision": "2",
                            "mod_revision": "2",
                            "version": "1",
                            "value": b64("1"),
                        }
                    ],
                    "count": "1",
                }
            }
        ],
    }
    nested = {
        "success": [
            {
                "request_txn": {
                    "compare": [{"key": b64("k"), "target": "VALUE", "value": b64("1")}],
                    "success": [{"request_put": {"key": b64("k"), "value": b64("2")}}],
                }
            },
            {"request_delete_range": {"key": b64("zz")}},
        ]
    }
    assert api.post("/v3/kv/txn", nested).json == {
        "header": header(3, node),
        "succeeded": True,
        "responses": [
            {
                "response_txn": {
                    "header": {},
                    "succeeded": True,
                    "responses": [{"response_put": {"header": {"revision": "3"}}}],
                }
            },
            {"response_delete_range": {"header": {"revision": "3"}}},
        ],
    }


@needs_store
def test_compaction_and_revisions_out_of_range(api: Api, node: FakeNode) -> None:
    for value in "abc":
        put(api, "k", value)
    assert api.post("/v3/kv/compaction", {"revision": "3"}).json == {"header": header(4, node)}
    compacted = "etcdserver: mvcc: required revision has been compacted"
    extra = etcd_error(
        api.post("/v3/kv/range", {"key": b64("k"), "revision": 2}), 400, 11, compacted
    )
    assert "3" in extra["detail"]  # names the oldest revision held
    etcd_error(api.post("/v3/kv/compaction", {"revision": "3"}), 400, 11, compacted)
    future = "etcdserver: mvcc: required revision is a future revision"
    etcd_error(api.post("/v3/kv/range", {"key": b64("k"), "revision": 99}), 400, 11, future)
    etcd_error(api.post("/v3/kv/compaction", {"revision": 99}), 400, 11, future)
    body = api.post("/v3/kv/range", {"key": b64("k"), "revision": 3}).json
    assert body["kvs"][0]["value"] == b64("b")
    assert revision_now(api) == 4


@needs_store
def test_refusals_from_the_state_change_nothing(api: Api) -> None:
    put(api, "k", "v")
    etcd_error(
        api.post("/v3/kv/put", {"key": b64("nope"), "ignore_value": True}),
        400,
        3,
        "etcdserver: key not found",
    )
    etcd_error(
        api.post("/v3/kv/put", {"key": b64("k"), "value": b64("v"), "lease": "5"}),
        404,
        5,
        "etcdserver: requested lease not found",
    )
    assert revision_now(api) == 2


@needs_store
def test_binary_keys_and_values(api: Api) -> None:
    key, value = b"\x00\xff\x80k", bytes(range(256))
    api.post("/v3/kv/put", {"key": b64(key), "value": b64(value)})
    body = api.post("/v3/kv/range", {"key": b64(key)}).json
    assert base64.b64decode(body["kvs"][0]["value"]) == value


# ---------------------------------------------------------------------------------------------
# Whatever arrives, an answer in etcd's shape


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(["YQ==", "AA==", "EQUAL", "CREATE", "-1", "0"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(
        st.sampled_from(
            ["key", "range_end", "value", "limit", "revision", "target", "result", "compare",
             "success", "failure", "request_put", "request_range", "request_txn",
             "request_delete_range", "create_revision", "prev_kv", "sort_order", "x"]
        ),
        children,
        max_size=4,
    ),
    max_leaves=16,
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_api() -> Iterator[Api]:
    harness = Api(FakeNode())
    try:
        yield harness
    finally:
        harness.close()


@needs_store
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(["range", "put", "deleterange", "txn", "compaction"]),
    body=st.dictionaries(st.sampled_from(["key", "compare", "success", "failure", "value",
                                          "revision", "range_end", "limit"]), _json, max_size=4)
    | _json,
)  # fmt: skip
def test_random_json_is_answered_in_etcds_shape(fuzz_api: Api, path: str, body: Any) -> None:
    reply = fuzz_api.post(f"/v3/kv/{path}", body if body is not None else {})
    assert reply.status < 500, reply.body
    answer = reply.json
    if reply.status >= 400:
        assert isinstance(answer["code"], int) and answer["error"] == answer["message"]
    else:
        assert "header" in answer
