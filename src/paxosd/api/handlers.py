"""The route handlers: build a state-machine operation, execute it, shape the answer.

Theory of operation: by the time a handler runs, `http.py` has parsed and type-checked the
body and the exactly-once headers (see `calls.py`), so a handler is only the mapping between
HTTP and one operation of `paxosd.service`. Results come back as the dataclasses of
`paxosd.service.results` and `paxosd.service.kv`; the body is their `to_json()` (or, for the
key-value store, `_key_value` below), with two additions: lock answers name the lock, and
"absent" answers (no key, no name) become 404s. Answers meant for machines other than API
clients (status, metrics, the OpenAPI document, the dashboard) need no operation.

Keys on /v1 are UTF-8 text (the key-value store's keys are their bytes). Values are JSON:
the store keeps a value's JSON text (`paxosd.service.values.json_text`: compact, object members
sorted), and a read gives back the JSON. A value that is not JSON text (written as raw bytes,
over RESP or the etcd API, or here as `value_base64`) reads as `value_base64` instead.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from aiohttp import web

from paxosd.service.commands import (
    DecisionGet,
    DecisionPropose,
    LockAcquire,
    LockRefresh,
    LockRelease,
    LockStatus,
    NameLookup,
    NameRegister,
)
from paxosd.service.errors import BadCommand
from paxosd.service.kv import (
    Compare,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    KeyValue,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    TxnResponse,
)
from paxosd.service.kv import Txn as KvTxn
from paxosd.service.results import NameResult
from paxosd.service.values import check_value, from_json_text, json_text

from . import dashboard
from .calls import Call
from .failures import ApiError, from_bad_command
from .schema import BAD_REQUEST, METRICS_TYPE, NOT_FOUND

OPENAPI_DOCUMENT: Final = web.AppKey("paxosd_openapi_bytes", bytes)

# Status answers change every second; a cached one would show a stale leader.
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


# ---------------------------------------------------------------------------------------------
# Key-value store


def _key_value(key: str, kv: KeyValue | None, revision: int) -> dict[str, Any]:
    """A key on /v1: its value (JSON, or value_base64), `revision` (the key's mod revision,
    0 if absent) and etcd's fields."""
    body: dict[str, Any] = {"key": key}
    if kv is None:
        body.update(value=None, revision=0)
        return body
    ok, value = from_json_text(kv.value)
    if ok:
        body["value"] = value
    else:
        body["value_base64"] = base64.b64encode(kv.value).decode()
    body.update(
        revision=kv.mod_revision,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        lease=kv.lease,
    )
    return body


def _body_value(body: dict[str, Any], name: str = "value") -> bytes:
    """The value a body gives as JSON (`name`) or as base64 bytes (`name`_base64)."""
    raw = f"{name}_base64"
    if (name in body) == (raw in body):
        raise ApiError(400, BAD_REQUEST, f"give exactly one of {name!r} and {raw!r}", field=name)
    if name in body:
        try:
            check_value(body[name], name)  # the bounds JSON values have on /v1 (depth)
        except BadCommand as exc:
            raise from_bad_command(exc) from None
        return json_text(body[name])
    try:
        return base64.b64decode(body[raw], validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, BAD_REQUEST, f"{raw!r} is not base64", field=raw) from None


async def kv_get(call: Call) -> web.Response:
    key = call.param("key")
    result = await call.execute(Range(key=key.encode()))
    assert isinstance(result, RangeResponse)
    if not result.kvs:
        raise ApiError(404, NOT_FOUND, f"key {key!r} does not exist", key=key)
    return _json(_key_value(key, result.kvs[0], result.revision))


def _written(key: str, result: PutResponse, lease: int = 0) -> dict[str, Any]:
    """A put's answer: the store revision and the key as written."""
    previous = result.prev_kv
    revision = result.revision
    return {
        "key": key,
        "revision": revision,
        "create_revision": previous.create_revision if previous else revision,
        "mod_revision": revision,
        "version": previous.version + 1 if previous else 1,
        "lease": lease,
    }


async def kv_put(call: Call) -> web.Response:
    key = call.param("key")
    value = _body_value(call.body)
    # prev_kv: the answer names the key's create revision and version after the write.
    lease = call.body.get("lease", 0)
    result = await call.execute(Put(key=key.encode(), value=value, lease=lease, prev_kv=True))
    assert isinstance(result, PutResponse)
    return _json(_written(key, result, lease))


async def kv_delete(call: Call) -> web.Response:
    key = call.param("key")
    result = await call.execute(DeleteRange(key=key.encode()))
    assert isinstance(result, DeleteRangeResponse)
    body = {"key": key, "existed": result.deleted > 0, "revision": result.revision}
    return _json({**body, "deleted": result.deleted})


async def kv_cas(call: Call) -> web.Response:
    """A compare-and-swap is a transaction: if the key holds `expected` (its JSON text; null:
    the key must not exist), put `value`, else read the key."""
    key = call.param("key")
    data = key.encode()
    body = call.body
    value = _body_value(body)
    if body.get("expected", 0) is None and "expected_base64" not in body:
        condition = Compare(key=data, target=CompareTarget.CREATE, create_revision=0)
    else:
        expected = _body_value(body, "expected")
        condition = Compare(key=data, target=CompareTarget.VALUE, value=expected)
    op = KvTxn(
        compare=(condition,),
        success=(Put(key=data, value=value, prev_kv=True),),
        failure=(Range(key=data),),
    )
    # succeeded:false is a 200, as in etcd: the comparison ran and its answer is the result.
    result = await call.execute(op)
    assert isinstance(result, TxnResponse)
    (answer,) = result.responses
    if result.succeeded:
        assert isinstance(answer, PutResponse)
        written = _written(key, answer)
        ok, parsed = from_json_text(value)
        shown = {"value": parsed} if ok else {"value_base64": base64.b64encode(value).decode()}
        return _json({"succeeded": True, **written, **shown})
    assert isinstance(answer, RangeResponse)
    current = answer.kvs[0] if answer.kvs else None
    return _json({"succeeded": False, **_key_value(key, current, result.revision)})


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
