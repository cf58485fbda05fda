"""The route handlers: build a state-machine operation, execute it, shape the answer.

Theory of operation: by the time a handler runs, `http.py` has parsed and type-checked the
body and the exactly-once headers (see `calls.py`), so a handler is only the mapping between
HTTP and one operation of `paxosd.service.commands`. Results come back as the dataclasses of
`paxosd.service.results`; their `to_json()` is the body, with two additions: lock answers name
the lock, and "absent" answers (no key, no name) become 404s. Answers meant for machines other
than API clients (status, metrics, the OpenAPI document, the dashboard) need no operation.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from paxosd.service.commands import (
    Cas,
    DecisionGet,
    DecisionPropose,
    Delete,
    Get,
    LockAcquire,
    LockRefresh,
    LockRelease,
    LockStatus,
    NameLookup,
    NameRegister,
    Put,
)
from paxosd.service.results import NameResult, NotFound

from . import dashboard
from .calls import Call
from .failures import ApiError
from .schema import METRICS_TYPE, NOT_FOUND

OPENAPI_DOCUMENT: Final = web.AppKey("paxosd_openapi_bytes", bytes)

# Status answers change every second; a cached one would show a stale leader.
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


# ---------------------------------------------------------------------------------------------
# Key-value store


async def kv_get(call: Call) -> web.Response:
    key = call.param("key")
    result = await call.execute(Get(key=key))
    if isinstance(result, NotFound):
        raise ApiError(404, NOT_FOUND, f"key {key!r} does not exist", key=key)
    return _json(result.to_json())


async def kv_put(call: Call) -> web.Response:
    result = await call.execute(Put(key=call.param("key"), value=call.body["value"]))
    return _json(result.to_json())


async def kv_delete(call: Call) -> web.Response:
    result = await call.execute(Delete(key=call.param("key")))
    return _json(result.to_json())


async def kv_cas(call: Call) -> web.Response:
    body = call.body
    op = Cas(key=call.param("key"), expected=body["expected"], value=body["value"])
    # succeeded:false is a 200, as in etcd: the comparison ran and its answer is the result.
    result = await call.execute(op)
    return _json(result.to_json())


# ---------------------------------------------------------------------------------------------
# Locks


async def lock_acquire(call: Call) -> web.Response:
    name = call.param("name")
    body = call.body
    result = await call.execute(LockAcquire(name=name, owner=body["owner"], ttl_ms=body["ttl_ms"]))
    # acquired:false is a 200 naming the holder: a busy lock is an answer, not an error.
    return _json({"name": name, **result.to_json()})


async def lock_refresh(call: Call) -> web.Response:
    name = call.param("name")
    body = call.body
    result = await call.execute(LockRefresh(name=name, owner=body["owner"], ttl_ms=body["ttl_ms"]))
    return _json({"name": name, **result.to_json()})


async def lock_release(call: Call) -> web.Response:
    result = await call.execute(LockRelease(name=call.param("name"), owner=call.body["owner"]))
    return _json(result.to_json())


async def lock_status(call: Call) -> web.Response:
    name = call.param("name")
    result = await call.execute(LockStatus(name=name))
    return _json({"name": name, **result.to_json()})


# ---------------------------------------------------------------------------------------------
# Names and decisions


async def name_register(call: Call) -> web.Response:
    name = call.param("name")
    result = await call.execute(NameRegister(name=name, owner=call.body["owner"]))
    if not isinstance(result, NameResult):
        raise TypeError(f"NameRegister answered {result!r}")
    if result.registered:
        return _json(result.to_json(), 201)
    raise ApiError(
        409,
        "name_taken",
        f"name {name!r} is registered to {result.owner!r}",
        registered=False,
        name=name,
        owner=result.owner,
    )


async def name_lookup(call: Call) -> web.Response:
    name = call.param("name")
    result = await call.execute(NameLookup(name=name))
    if not isinstance(result, NameResult):
        raise TypeError(f"NameLookup answered {result!r}")
    if not result.registered:
        raise ApiError(404, NOT_FOUND, f"name {name!r} is not registered", name=name)
    return _json(result.to_json())


async def decision_propose(call: Call) -> web.Response:
    # One log entry does the book's "propose, then query": the answer is what was chosen,
    # which is this value only if nobody proposed first.
    result = await call.execute(DecisionPropose(id=call.param("id"), value=call.body["value"]))
    return _json(result.to_json())


async def decision_get(call: Call) -> web.Response:
    result = await call.execute(DecisionGet(id=call.param("id")))
    return _json(result.to_json())


# ---------------------------------------------------------------------------------------------
# Operations


async def status(call: Call) -> web.Response:
    return web.json_response(call.node.status(), headers=_NO_STORE)


async def healthz(call: Call) -> web.Response:
    """200 while this node knows a leader (it can serve or forward), 503 otherwise."""
    status = call.node.status()
    leader = status.get("leader")
    body: dict[str, Any] = {
        "ok": leader is not None,
        "node_id": status.get("node_id", call.node.node_id),
        "leader": leader,
        "role": status.get("role"),
    }
    if status.get("role") == "damaged":
        # The damage is why, not the missing leader it causes: say it (without the node's
        # paths: `/v1/status` and the node's log have the rest).
        body["ok"] = False
        body["reason"] = f"damaged: {status.get('damage') or 'its store failed its checks'}"
    elif leader is None:
        body["reason"] = "no known leader"
    return web.json_response(body, status=200 if body["ok"] else 503, headers=_NO_STORE)


async def metrics(call: Call) -> web.Response:
    return web.Response(body=call.node.metrics_text(), headers={"Content-Type": METRICS_TYPE})


async def openapi(call: Call) -> web.Response:
    return web.Response(body=call.request.app[OPENAPI_DOCUMENT], content_type="application/json")


async def dashboard_page(call: Call) -> web.Response:
    return web.Response(
        body=dashboard.page(), content_type="text/html", charset="utf-8", headers=_NO_STORE
    )
