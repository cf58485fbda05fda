"""The client's operations, once: each builds a `Call` and names how to read its answer.
The sync and async clients only differ in how they send a call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from paxosd.client.core import (
    BadRequest,
    Call,
    CasOutcome,
    KeyValue,
    LockGrant,
    Registration,
    kv_path,
    named,
    to_cas,
    to_grant,
    to_kv,
    to_registration,
)
from paxosd.client.kv import stored, to_delete, to_range, to_txn

Operation = tuple[Call, Callable[[Any], Any]]


def get(key: str) -> Operation:
    return Call("GET", kv_path(key), None, False, absent_statuses=(404,)), to_kv


def put(key: str, value: Any, lease: int = 0) -> Operation:
    body: dict[str, Any] = stored(value)  # bytes travel raw (value_base64), else as JSON
    if lease:
        body["lease"] = lease
    return Call("PUT", kv_path(key), body, True), lambda d: int(d["revision"])


def delete(key: str) -> Operation:
    return Call("DELETE", kv_path(key), None, True), lambda d: bool(d.get("existed"))


def cas(key: str, expected: Any, value: Any) -> Operation:
    old = stored(expected)
    body = {**{f"expected{k.removeprefix('value')}": v for k, v in old.items()}, **stored(value)}
    return Call("POST", kv_path(key) + "/cas", body, True, ok_statuses=(200, 409)), to_cas


def range_(keys: dict[str, str], options: dict[str, Any]) -> Operation:
    query = urlencode({**keys, **{k: _query_value(v) for k, v in options.items()}})
    return Call("GET", f"/v1/kv?{query}", None, False), to_range


def delete_range(keys: dict[str, str], prev_kv: bool) -> Operation:
    query = urlencode({**keys, **({"prev_kv": "true"} if prev_kv else {})})
    return Call("DELETE", f"/v1/kv?{query}", None, True), to_delete


def txn(body: dict[str, Any]) -> Operation:
    # One that writes is applied once however often it is retried (exactly-once headers).
    return Call("POST", "/v1/txn", body, _writes(body)), to_txn


def _writes(txn: dict[str, Any]) -> bool:
    for branch in ("success", "failure"):
        for op in txn.get(branch, ()):
            if "put" in op or "delete" in op or ("txn" in op and _writes(op["txn"])):
                return True
    return False


def compact(revision: int) -> Operation:
    return Call("POST", "/v1/compact", {"revision": revision}, True), lambda d: int(d["revision"])


def _query_value(value: Any) -> str:
    if value is True:
        return "true"
    return str(value)


def acquire(name: str, owner: str, ttl_ms: int) -> Operation:
    body = {"owner": owner, "ttl_ms": ttl_ms}
    return Call("POST", named("locks", name, "/acquire"), body, True), to_grant


def refresh(name: str, owner: str, ttl_ms: int) -> Operation:
    body = {"owner": owner, "ttl_ms": ttl_ms}
    return Call("POST", named("locks", name, "/refresh"), body, True), to_grant


def release(name: str, owner: str) -> Operation:
    call = Call("POST", named("locks", name, "/release"), {"owner": owner}, True)
    return call, lambda d: bool(d.get("released"))


def lock_status(name: str) -> Operation:
    return Call("GET", named("locks", name), None, False), to_grant


def register(name: str, owner: str) -> Operation:
    call = Call("POST", named("names", name), {"owner": owner}, True, ok_statuses=(200, 201))
    return call, to_registration


def lookup(name: str) -> Operation:
    call = Call("GET", named("names", name), None, False, absent_statuses=(404,))
    return call, lambda d: None if d is None else d.get("owner")


def propose(decision: str, value: Any) -> Operation:
    call = Call("POST", named("decisions", decision), {"value": value}, True)
    return call, lambda d: d.get("chosen")


def query(decision: str) -> Operation:
    return Call("GET", named("decisions", decision), None, False), lambda d: d.get("chosen")


def lease_grant(ttl_ms: int, lease_id: int = 0) -> Operation:
    body: dict[str, Any] = {"ttl_ms": ttl_ms, **({"id": lease_id} if lease_id else {})}
    return Call("POST", "/v1/leases", body, True), lambda d: int(d["id"])


def lease_keepalive(lease_id: int) -> Operation:
    call = Call("POST", f"/v1/leases/{_lease(lease_id)}/keepalive", None, True)
    return call, lambda d: int(d["ttl_ms"])


def lease_revoke(lease_id: int) -> Operation:
    call = Call("DELETE", f"/v1/leases/{_lease(lease_id)}", None, True, absent_statuses=(404,))
    return call, lambda d: d is not None


def lease_ttl(lease_id: int, keys: bool) -> Operation:
    query = "?keys=true" if keys else ""
    call = Call("GET", f"/v1/leases/{_lease(lease_id)}{query}", None, False, absent_statuses=(404,))
    return call, lambda d: d


def lease_list() -> Operation:
    return Call("GET", "/v1/leases", None, False), lambda d: [int(i) for i in d["leases"]]


def _lease(lease_id: int) -> int:
    if type(lease_id) is not int or lease_id < 1:
        raise BadRequest(f"a lease id is a positive int, not {lease_id!r}")
    return lease_id


def status() -> Operation:
    return Call("GET", "/v1/status", None, False), lambda d: d


def health() -> Operation:
    # 503 is an answer here, not a failure: the node is up and says it is unhealthy.
    return Call("GET", "/healthz", None, False, ok_statuses=(200, 503)), lambda d: d


__all__ = [
    "CasOutcome",
    "KeyValue",
    "LockGrant",
    "Operation",
    "Registration",
    "acquire",
    "cas",
    "compact",
    "delete",
    "delete_range",
    "get",
    "health",
    "lock_status",
    "lookup",
    "propose",
    "put",
    "query",
    "range_",
    "refresh",
    "register",
    "release",
    "status",
    "txn",
]  # fmt: skip
