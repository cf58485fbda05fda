"""The /v1 routes of the key-value store over many keys: ranges, deletes of a range,
transactions and compaction (the JSON is kv_json.py's).

Theory of operation: like every /v1 handler, each builds one request of the store, runs it
on the node (a read by read-index on any node, a write through the log) and shapes its
answer. The store's refusals (`KvError`, or `InvalidRequest` before the request is proposed)
become /v1 errors whose `error` is the store's code (`compacted`, `future_revision`,
`too_many_ops`, `duplicate_key`, ...), whose `message` is paxosd's sentence naming the limit,
the count or the oldest revision held, and which carry etcd's own message as
`etcd_message`.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from paxosd.service.commands import validate
from paxosd.service.errors import BadCommand
from paxosd.service.kv.errors import KEY_NOT_FOUND, LEASE_NOT_FOUND, InvalidRequest, KvError
from paxosd.service.kv.types import (
    Compact,
    CompactionResponse,
    DeleteRangeResponse,
    RangeResponse,
    TxnResponse,
)
from paxosd.service.results import Error as ResultError

from . import kv_json
from .calls import Call
from .failures import ApiError, from_bad_command, from_result
from .schema import BAD_REQUEST

__all__ = ["compact", "delete_range", "kv_error", "range_", "txn"]

# A /v1 status for each of the store's refusals that is not a 400.
_STATUS: Final = {KEY_NOT_FOUND: 404, LEASE_NOT_FOUND: 404}


def kv_error(error: KvError) -> ApiError:
    """The store's refusal as a /v1 error."""
    return ApiError(
        _STATUS.get(error.code, 400),
        error.code,
        error.detail,
        etcd_message=error.message,
    )


async def execute_kv(call: Call, op: Any) -> Any:
    """Check `op` (as etcd does before proposing), run it, and return the store's answer;
    refusals raise ApiError."""
    try:
        validate(op)
    except InvalidRequest as exc:
        raise kv_error(exc.error) from None
    except BadCommand as exc:
        raise from_bad_command(exc) from None
    result = await call.node.execute(op, client_id=call.client_id, seq=call.seq)
    if isinstance(result, KvError):
        raise kv_error(result)
    if isinstance(result, ResultError):
        raise from_result(result)
    return result


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
    answer = _expect(await execute_kv(call, op), RangeResponse)
    return web.json_response(kv_json.range_response(answer, op.keys_only))


async def delete_range(call: Call) -> web.Response:
    try:
        op = kv_json.delete_from_query(call.request.query)
    except kv_json.KvJsonError as exc:
        raise _bad(exc) from None
    answer = _expect(await execute_kv(call, op), DeleteRangeResponse)
    return web.json_response(kv_json.delete_response(answer))


async def txn(call: Call) -> web.Response:
    try:
        op = kv_json.txn_request(call.body)
    except kv_json.KvJsonError as exc:
        raise _bad(exc) from None
    answer = _expect(await execute_kv(call, op), TxnResponse)
    return web.json_response(kv_json.txn_response(answer, op))


async def compact(call: Call) -> web.Response:
    revision = call.body["revision"]
    answer = _expect(await execute_kv(call, Compact(revision=revision)), CompactionResponse)
    return web.json_response({"revision": answer.revision, "compact_revision": revision})
