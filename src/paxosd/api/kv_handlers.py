"""The /v1 routes of the key-value store over many keys: ranges, deletes of a range,
transactions and compaction (the JSON is kv_json.py's).

Theory of operation: like every /v1 handler, each builds one request of the store and runs
it with `Call.execute` (a read by read-index on any node, a write through the log), then
shapes its answer. The store's refusals become /v1 errors there (failures.py): `error` is the
store's code (`compacted`, `future_revision`, `too_many_ops`, `duplicate_key`, ...),
`message` paxosd's sentence naming the limit, the count or the oldest revision held, and
`etcd_message` etcd's own text.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from paxosd.service.kv.types import (
    Compact,
    CompactionResponse,
    DeleteRangeResponse,
    RangeResponse,
    TxnResponse,
)

from . import kv_json
from .calls import Call
from .failures import ApiError
from .schema import BAD_REQUEST

__all__ = ["compact", "delete_range", "range_", "txn"]


def _bad(exc: kv_json.KvJsonError) -> ApiError:
    return ApiError(400, BAD_REQUEST, str(exc), field=exc.field)


def _expect(result: Any, kind: type) -> Any:
    if not isinstance(result, kind):
        raise TypeError(f"expected {kind.__name__}, the store answered {type(result).__name__}")
    return result


async def range_(call: Call) -> web.Response:
    try:
        op = kv_json.range_from_query(call.request.query)
    except kv_json.KvJsonError as exc:
        raise _bad(exc) from None
    answer = _expect(await call.execute(op), RangeResponse)
    return web.json_response(kv_json.range_response(answer, op.keys_only))


async def delete_range(call: Call) -> web.Response:
    try:
        op = kv_json.delete_from_query(call.request.query)
    except kv_json.KvJsonError as exc:
        raise _bad(exc) from None
    answer = _expect(await call.execute(op), DeleteRangeResponse)
    return web.json_response(kv_json.delete_response(answer))


async def txn(call: Call) -> web.Response:
    try:
        op = kv_json.txn_request(call.body)
    except kv_json.KvJsonError as exc:
        raise _bad(exc) from None
    answer = _expect(await call.execute(op), TxnResponse)
    return web.json_response(kv_json.txn_response(answer, op))


async def compact(call: Call) -> web.Response:
    revision = call.body["revision"]
    answer = _expect(await call.execute(Compact(revision=revision)), CompactionResponse)
    return web.json_response({"revision": answer.revision, "compact_revision": revision})
