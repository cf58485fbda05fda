"""The /v1 routes of leases (kv/leases.py): grant, list, time-to-live, keep-alive, revoke.

Theory of operation: each handler builds one lease request of the key-value store, runs it
with `Call.execute` (grant, keep-alive and revoke through the log; time-to-live and the list
by read-index on any node) and renders the answer. TTLs are milliseconds of log time. A grant
shorter than the node's minimum (`NodeService.lease_ttl_ms_min`, from its election timeout:
docs/leases.md) is refused with the minimum named, since a lease shorter than an election
would end whenever the leader changes. A lease that does not exist (never granted, revoked,
or expired) is a 404 `lease_not_found` on every route, time-to-live included (etcd's API
answers TTL -1 there instead; /v1 says it plainly).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from paxosd.service.kv.leases import (
    LeaseGrant,
    LeaseGrantResponse,
    LeaseKeepAlive,
    LeaseKeepAliveResponse,
    LeaseLeases,
    LeaseLeasesResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    LeaseTimeToLive,
    LeaseTimeToLiveResponse,
    lease_ttl_ms_max,
)

from .calls import Call
from .failures import ApiError
from .kv_json import shown_key
from .schema import BAD_REQUEST

__all__ = ["grant", "keepalive", "leases", "revoke", "time_to_live"]

LEASE_NOT_FOUND = "lease_not_found"


def _expect(result: Any, kind: type) -> Any:
    if not isinstance(result, kind):
        raise TypeError(f"expected {kind.__name__}, the store answered {type(result).__name__}")
    return result


def _lease_id(call: Call) -> int:
    text = call.param("id")
    if not text.isdigit() or not 1 <= int(text) < 2**63:
        raise ApiError(
            400, BAD_REQUEST, f"lease id {text[:40]!r} is not an integer in [1, 2^63)", field="id"
        )
    return int(text)


def _not_found(lease_id: int) -> ApiError:
    return ApiError(
        404,
        LEASE_NOT_FOUND,
        f"lease {lease_id} does not exist (never granted, revoked, or expired in log time)",
        etcd_message="etcdserver: requested lease not found",
    )


def _granted(lease_id: int, ttl_ms: int, revision: int) -> web.Response:
    return web.json_response({"id": lease_id, "ttl_ms": ttl_ms, "revision": revision})


async def grant(call: Call) -> web.Response:
    ttl_ms = call.body["ttl_ms"]
    lease_id = call.body.get("id", 0)
    low = call.node.lease_ttl_ms_min
    if not low <= ttl_ms <= lease_ttl_ms_max:
        raise ApiError(
            400,
            "ttl_out_of_range",
            f"ttl_ms {ttl_ms} is outside [{low}, {lease_ttl_ms_max}]: this node's shortest "
            "lease is 1.5 times its longest election timeout (a shorter one would end at "
            "every leader change)",
            field="ttl_ms",
        )
    op = LeaseGrant(ttl_ms=ttl_ms, id=lease_id)
    answer = _expect(await call.execute(op), LeaseGrantResponse)
    return _granted(answer.id, answer.ttl_ms, answer.revision)


async def leases(call: Call) -> web.Response:
    answer = _expect(await call.execute(LeaseLeases()), LeaseLeasesResponse)
    return web.json_response({"revision": answer.revision, "leases": list(answer.ids)})


async def time_to_live(call: Call) -> web.Response:
    lease_id = _lease_id(call)
    keys = call.request.query.get("keys", "false")
    if keys not in ("true", "false"):
        raise ApiError(400, BAD_REQUEST, f"keys must be true or false, not {keys[:20]!r}")
    op = LeaseTimeToLive(id=lease_id, keys=keys == "true")
    answer = _expect(await call.execute(op), LeaseTimeToLiveResponse)
    if answer.ttl_ms < 0:
        raise _not_found(lease_id)
    body: dict[str, Any] = {
        "id": answer.id,
        "ttl_ms": answer.ttl_ms,
        "granted_ttl_ms": answer.granted_ttl_ms,
        "revision": answer.revision,
    }
    if op.keys:
        body["keys"] = [shown_key(key) for key in answer.keys]
    return web.json_response(body)


async def keepalive(call: Call) -> web.Response:
    lease_id = _lease_id(call)
    answer = _expect(await call.execute(LeaseKeepAlive(id=lease_id)), LeaseKeepAliveResponse)
    return _granted(answer.id, answer.ttl_ms, answer.revision)


async def revoke(call: Call) -> web.Response:
    lease_id = _lease_id(call)
    answer = _expect(await call.execute(LeaseRevoke(id=lease_id)), LeaseRevokeResponse)
    return web.json_response({"id": lease_id, "revision": answer.revision})
