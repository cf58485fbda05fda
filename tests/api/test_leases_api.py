"""Leases over HTTP against a FakeNode: /v1/leases (milliseconds, /v1's errors) and etcd's
Lease service on the JSON gateway (whole seconds, etcd's shapes and errors, as etcd 3.4's
gateway answered the same requests: docs/leases.md)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from .conftest import Api, FakeNode
from .test_etcd_gateway import etcd_error, header


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tick(node: FakeNode, api: Api, ms: int) -> None:
    """Move log time on by `ms`: the fake node stamps it before the next write."""
    node.clock_ms += ms
    assert api.put("/v1/kv/clock", {"value": node.clock_ms}).status == 200


# -- /v1 ------------------------------------------------------------------------------------


def test_a_key_put_with_a_lease_ends_with_it(api: Api, node: FakeNode) -> None:
    granted = api.post("/v1/leases", {"ttl_ms": 2000})
    assert granted.status == 200, granted.body
    lease = granted.json["id"]
    assert granted.json == {"id": lease, "ttl_ms": 2000, "revision": 1}
    written = api.put("/v1/kv/svc/a", {"value": "up", "lease": lease})
    assert written.status == 200 and written.json["lease"] == lease
    assert api.get("/v1/kv/svc/a").json["lease"] == lease
    assert api.get("/v1/leases").json == {"revision": 2, "leases": [lease]}
    tick(node, api, 1500)
    left = api.get(f"/v1/leases/{lease}?keys=true").json
    assert left == {
        "id": lease,
        "ttl_ms": 500,
        "granted_ttl_ms": 2000,
        "revision": 3,
        "keys": [{"key": "svc/a"}],
    }
    assert api.post(f"/v1/leases/{lease}/keepalive").json == {
        "id": lease,
        "ttl_ms": 2000,
        "revision": 3,
    }
    tick(node, api, 1999)
    assert api.get("/v1/kv/svc/a").status == 200
    tick(node, api, 2)
    assert api.get("/v1/kv/svc/a").status == 404
    gone = api.get(f"/v1/leases/{lease}")
    assert gone.status == 404 and gone.json["error"] == "lease_not_found"


def test_revoke_deletes_the_keys_at_once(api: Api) -> None:
    lease = api.post("/v1/leases", {"ttl_ms": 60_000, "id": 42}).json["id"]
    assert lease == 42
    for key in ("a", "b"):
        api.put(f"/v1/kv/{key}", {"value": 1, "lease": lease})
    revoked = api.request("DELETE", "/v1/leases/42")
    assert revoked.json == {"id": 42, "revision": 4}
    assert api.get("/v1/kv", params={"prefix": ""}).json["count"] == 0
    again = api.request("DELETE", "/v1/leases/42")
    assert again.status == 404 and again.json["error"] == "lease_not_found"
    assert again.json["etcd_message"] == "etcdserver: requested lease not found"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("POST", "/v1/leases", {"ttl_ms": 599}, 400, "ttl_out_of_range"),
        ("POST", "/v1/leases", {"ttl_ms": 9_000_000_000_001}, 400, "ttl_out_of_range"),
        ("POST", "/v1/leases", {"ttl_ms": "10s"}, 400, "bad_request"),
        ("POST", "/v1/leases", {}, 400, "bad_request"),
        ("POST", "/v1/leases", {"ttl_ms": 1000, "id": -4}, 400, "bad_command"),
        ("POST", "/v1/leases/abc/keepalive", None, 400, "bad_request"),
        ("POST", "/v1/leases/0/keepalive", None, 400, "bad_request"),
        ("POST", "/v1/leases/77/keepalive", None, 404, "lease_not_found"),
        ("GET", "/v1/leases/77?keys=yes", None, 400, "bad_request"),
        ("DELETE", "/v1/leases/99999999999999999999", None, 400, "bad_request"),
        ("PUT", "/v1/kv/k", {"value": 1, "lease": 77}, 404, "lease_not_found"),
        ("PUT", "/v1/kv/k", {"value": 1, "lease": "1"}, 400, "bad_request"),
    ],
)
def test_bad_lease_requests_are_refused_and_change_nothing(
    api: Api, node: FakeNode, method: str, path: str, body: Any, status: int, error: str
) -> None:
    options = {"json": body} if body is not None else {}
    reply = api.request(method, path, **options)
    assert reply.status == status, reply.body
    assert reply.json["error"] == error, reply.body
    assert node.machine.revision == 1 and not node.machine.kv.leases.leases
    assert reply.json.get("message")


def test_a_lease_id_in_use_is_refused(api: Api) -> None:
    api.post("/v1/leases", {"ttl_ms": 1000, "id": 5})
    reply = api.post("/v1/leases", {"ttl_ms": 3000, "id": 5})
    assert reply.status == 400 and reply.json["error"] == "lease_exist"
    assert api.get("/v1/leases/5").json["granted_ttl_ms"] == 1000


# -- etcd's gateway -------------------------------------------------------------------------


def test_etcd_lease_routes_answer_as_etcd(api: Api, node: FakeNode) -> None:
    granted = api.post("/v3/lease/grant", {"TTL": 30})
    assert granted.json == {"header": header(1, node), "ID": "1", "TTL": "30"}
    # TTLs under the minimum (here 600 ms: 1 s) are raised to it, as etcd raises them.
    assert api.post("/v3/lease/grant", {"TTL": 0, "ID": 7}).json["TTL"] == "1"
    assert api.post("/v3/lease/grant", {"TTL": "-5", "ID": "8"}).json["TTL"] == "1"
    put = api.post("/v3/kv/put", {"key": b64("a"), "value": b64("v"), "lease": "1"})
    assert put.status == 200
    kvs = api.post("/v3/kv/range", {"key": b64("a")}).json["kvs"]
    assert kvs[0]["lease"] == "1"
    for path in ("/v3/lease/timetolive", "/v3/kv/lease/timetolive"):
        ttl = api.post(path, {"ID": 1, "keys": True}).json
        assert ttl == {
            "header": header(2, node),
            "ID": "1",
            "TTL": "30",
            "grantedTTL": "30",
            "keys": [b64("a")],
        }
    assert api.post("/v3/lease/timetolive", {"ID": "99"}).json == {
        "header": header(2, node),
        "ID": "99",
        "TTL": "-1",
    }
    leases = api.post("/v3/lease/leases", {}).json
    assert leases == {"header": header(2, node), "leases": [{"ID": "1"}, {"ID": "7"}, {"ID": "8"}]}
    assert api.post("/v3/lease/revoke", {"ID": "1"}).json == {"header": header(3, node)}
    assert "kvs" not in api.post("/v3/kv/range", {"key": b64("a")}).json
    etcd_error(
        api.post("/v3/kv/lease/revoke", {"ID": 1}),
        404,
        5,
        "etcdserver: requested lease not found",
    )


def test_etcd_keepalive_answers_one_line_per_request(api: Api, node: FakeNode) -> None:
    api.post("/v3/lease/grant", {"TTL": 10, "ID": 3})
    body = json.dumps({"ID": 3}) + "\n" + json.dumps({"ID": "404"})
    reply = api.request("POST", "/v3/lease/keepalive", data=body)
    assert reply.status == 200
    lines = [json.loads(line) for line in reply.body.decode().splitlines()]
    assert lines == [
        {"result": {"header": header(1, node), "ID": "3", "TTL": "10"}},
        {"result": {"header": header(1, node), "ID": "404"}},  # no TTL: no such lease
    ]


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "message"),
    [
        ("/v3/lease/grant", {"TTL": 9_000_000_001}, 400, 11, "etcdserver: too large lease TTL"),
        ("/v3/lease/grant", {"TTL": "x"}, 400, 3, None),
        ("/v3/lease/grant", [1], 400, 3, None),
        ("/v3/lease/revoke", {"ID": 12}, 404, 5, "etcdserver: requested lease not found"),
        ("/v3/lease/keepalive", "", 400, 3, None),
        ("/v3/lease/keepalive", "{", 400, 3, None),
        ("/v3/lease/timetolive", {"ID": 1, "keys": "yes"}, 400, 3, None),
    ],
)
def test_bad_etcd_lease_requests_get_etcd_errors(
    api: Api, node: FakeNode, path: str, body: Any, status: int, code: int, message: str | None
) -> None:
    reply = api.request("POST", path, data=body if isinstance(body, str) else json.dumps(body))
    assert reply.status == status, reply.body
    assert reply.json["code"] == code, reply.body
    if message is not None:
        assert reply.json["message"] == message
    assert not node.machine.kv.leases.leases


def test_an_existing_id_is_etcd_s_lease_already_exists(api: Api) -> None:
    api.post("/v3/lease/grant", {"TTL": 5, "ID": 7})
    etcd_error(
        api.post("/v3/lease/grant", {"TTL": 5, "ID": 7}),
        412,
        9,
        "etcdserver: lease already exists",
    )


# -- /v1/elections ---------------------------------------------------------------------------


def test_elections_over_v1(api: Api, node: FakeNode) -> None:
    one = api.post("/v1/leases", {"ttl_ms": 5000}).json["id"]
    two = api.post("/v1/leases", {"ttl_ms": 5000}).json["id"]
    assert api.get("/v1/elections/jobs/leader").status == 404
    first = api.post("/v1/elections/jobs/campaign", {"value": "host-a", "lease": one})
    assert first.status == 200, first.body
    token = first.json["token"]
    assert first.json["key"] == f"jobs/{one:x}" and first.json["value"] == "host-a"
    waiting = api.post("/v1/elections/jobs/campaign", {"value": "host-b", "lease": two,
                                                        "wait_ms": 200})  # fmt: skip
    assert waiting.status == 409 and waiting.json["error"] == "not_leader"
    assert api.get("/v1/elections/jobs/leader").json["value"] == "host-a"
    body = {"value": "host-a2", "lease": one, "token": token}
    assert api.post("/v1/elections/jobs/proclaim", body).status == 200
    assert api.get("/v1/elections/jobs/leader").json["value"] == "host-a2"
    resigned = api.post("/v1/elections/jobs/resign", {"lease": one, "token": token})
    assert resigned.json["resigned"] is True
    second = api.post("/v1/elections/jobs/campaign", {"value": "host-b", "lease": two})
    assert second.status == 200 and second.json["token"] > token
    stale = api.post("/v1/elections/jobs/proclaim", body)
    assert stale.status == 409 and stale.json["error"] == "not_leader"  # fenced
    gone = api.post("/v1/elections/jobs/campaign", {"value": "x", "lease": 999})
    assert gone.status == 404 and gone.json["error"] == "lease_not_found"
