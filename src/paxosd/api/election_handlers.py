"""The /v1 routes of elections, on etcd's concurrency recipe (docs/leases.md): who leads,
campaign, proclaim, resign. The keys are those of paxosd.client.election and of etcd's
Election: `NAME/<lease id in hex>`, the lowest create revision leading; a leadership's
fencing token is its key's create revision.

Theory of operation: each handler is a few key-value requests, run like any other
(`Call.execute`). A campaign creates the candidate's key (a transaction: only if absent,
attached to the caller's lease), then waits, up to `wait_ms`, until no key under the prefix
was created before it, reading again every `poll_ms` (the node is not blocked: the handler
awaits). It answers 200 with the token once the candidate leads, or 409 `not_leader` when
the wait ran out (the key stays: campaigning again with the same lease resumes the wait). To
observe an election, watch its prefix (`GET /v1/watch?prefix=NAME/`) and read the leader
after each change.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from aiohttp import web

from paxosd.service.kv.types import (
    Compare,
    CompareTarget,
    DeleteRange,
    Put,
    Range,
    RangeResponse,
    SortOrder,
    SortTarget,
    Txn,
    TxnResponse,
    prefix_end,
)

from .calls import Call
from .failures import ApiError
from .schema import BAD_REQUEST, NOT_FOUND

__all__ = ["campaign", "leader", "proclaim", "resign"]

poll_ms: Final = 50
wait_ms_default: Final = 30_000
wait_ms_max: Final = 300_000


def _prefix(call: Call) -> bytes:
    return call.param("name").rstrip("/").encode() + b"/"


def _key(call: Call, lease: int) -> bytes:
    if not 1 <= lease < 2**63:
        raise ApiError(400, BAD_REQUEST, f"lease {lease} is not a lease id", field="lease")
    return _prefix(call) + b"%x" % lease


def _leader_range(prefix: bytes, **options: Any) -> Range:
    return Range(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_target=SortTarget.CREATE,
        sort_order=SortOrder.ASCEND,
        limit=1,
        **options,
    )


def _shown(kv: Any) -> dict[str, Any]:
    # Values are text stored as their UTF-8 bytes, as etcd's clients store them.
    return {
        "key": kv.key.decode("utf-8", "replace"),
        "value": kv.value.decode("utf-8", "replace"),
        "token": kv.create_revision,
        "lease": kv.lease,
    }


async def leader(call: Call) -> web.Response:
    answer = await call.execute(_leader_range(_prefix(call)))
    assert isinstance(answer, RangeResponse)
    if not answer.kvs:
        raise ApiError(404, NOT_FOUND, f"nobody campaigns in election {call.param('name')!r}")
    return web.json_response({**_shown(answer.kvs[0]), "revision": answer.revision})


async def campaign(call: Call) -> web.Response:
    lease: int = call.body["lease"]
    value = str(call.body["value"]).encode()
    wait_ms = call.body.get("wait_ms", wait_ms_default)
    if not 0 <= wait_ms <= wait_ms_max:
        raise ApiError(400, BAD_REQUEST, f"wait_ms must be in [0, {wait_ms_max}]", field="wait_ms")
    key = _key(call, lease)
    absent = Compare(key=key, target=CompareTarget.CREATE, create_revision=0)
    stand = Txn(
        compare=(absent,),
        success=(Put(key=key, value=value, lease=lease),),
        failure=(Range(key=key),),
    )
    answer = await call.execute(stand)
    assert isinstance(answer, TxnResponse)
    if answer.succeeded:
        token = answer.revision
    else:
        found = answer.responses[0]
        assert isinstance(found, RangeResponse)
        if not found.kvs:
            raise ApiError(409, "not_leader", f"{key!r} vanished while campaigning")
        token = found.kvs[0].create_revision
    deadline = time.monotonic() + wait_ms / 1000
    prefix = _prefix(call)
    while True:
        before = await call.execute(
            Range(
                key=prefix,
                range_end=prefix_end(prefix),
                max_create_revision=token - 1,
                limit=1,
                keys_only=True,
            )
        )
        assert isinstance(before, RangeResponse)
        if not before.kvs:
            break
        if time.monotonic() >= deadline:
            raise ApiError(
                409,
                "not_leader",
                f"not leading after {wait_ms} ms: {before.kvs[0].key!r} was created before "
                "this candidate's key, which stays (campaign again to go on waiting)",
            )
        await asyncio.sleep(poll_ms / 1000)
    mine = await call.execute(Range(key=key))
    assert isinstance(mine, RangeResponse)
    if not mine.kvs or mine.kvs[0].create_revision != token:
        raise ApiError(409, "not_leader", f"{key!r} is gone: the lease ended while waiting")
    return web.json_response({**_shown(mine.kvs[0]), "revision": mine.revision})


def _leadership(call: Call) -> tuple[bytes, int]:
    key = _key(call, call.body["lease"])
    token: int = call.body["token"]
    return key, token


async def proclaim(call: Call) -> web.Response:
    key, token = _leadership(call)
    lease: int = call.body["lease"]
    still = Compare(key=key, target=CompareTarget.CREATE, create_revision=token)
    put = Put(key=key, value=str(call.body["value"]).encode(), lease=lease)
    answer = await call.execute(Txn(compare=(still,), success=(put,)))
    assert isinstance(answer, TxnResponse)
    if not answer.succeeded:
        raise ApiError(409, "not_leader", f"{key!r} with token {token} no longer leads")
    return web.json_response({"revision": answer.revision})


async def resign(call: Call) -> web.Response:
    key, token = _leadership(call)
    still = Compare(key=key, target=CompareTarget.CREATE, create_revision=token)
    answer = await call.execute(Txn(compare=(still,), success=(DeleteRange(key=key),)))
    assert isinstance(answer, TxnResponse)
    return web.json_response({"resigned": answer.succeeded, "revision": answer.revision})
