"""etcd's Lease service on the JSON gateway: /v3/lease/grant, revoke, keepalive, timetolive
and leases, and the /v3/kv/lease/revoke and /v3/kv/lease/timetolive aliases gateway clients
use (etcd3gw among them).

Theory of operation: the same requests as /v1's (service/kv/leases.py), in etcd's units and
shapes. etcd counts TTLs in whole seconds and paxosd in milliseconds, so:

* a grant's TTL is raised to the node's minimum, as etcd raises it to its own (etcd: 1.5
  election timeouts; paxosd: `NodeService.lease_ttl_ms_min`, rounded up to whole seconds),
  and a TTL of 0 or less is raised too, as etcd does; over etcd's MaxLeaseTTL
  (9,000,000,000 s) it is etcd's "too large lease TTL";
* answers give seconds: a granted TTL rounded up (a lease granted over /v1 for 1,500 ms
  shows 2), the time left rounded down as etcd's `int64(Remaining().Seconds())` does.

Answers as etcd 3.4's gateway writes them: `ID` and `TTL` as decimal strings, `grantedTTL`,
`keys` base64; time-to-live of a lease that does not exist answers `TTL: "-1"` (no error);
revoke of one answers etcd's NotFound "requested lease not found". Keep-alive is a stream in
etcd's gRPC API: the gateway reads every LeaseKeepAliveRequest of the body and answers each
with one `{"result": LeaseKeepAliveResponse}` line; a lease that does not exist answers a
response without TTL (TTL 0), as etcd's server does.

paxosd refuses lease ids below 1 (etcd takes a negative id it is asked for; its own ids and
its clients' are positive) and from 2^62 up (the locks' leases), with InvalidArgument.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

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

from ..calls import Call, read_raw_body
from ..failures import ApiError
from . import wire
from .errors import EtcdError
from .gateway import _document, _header, _run

__all__ = ["grant", "keepalive", "leases", "revoke", "time_to_live", "ttl_seconds_min"]

# etcd's MaxLeaseTTL, in seconds.
ttl_seconds_max: Final = lease_ttl_ms_max // 1000
# A keep-alive body holds at most this many requests (a stream of them, in one body).
keepalive_requests_max: Final = 1000

_GRANT: Final = wire._Message("LeaseGrantRequest", {"TTL": wire._int64, "ID": wire._int64})
_BY_ID: Final = wire._Message("LeaseRequest", {"ID": wire._int64})
_TIME_TO_LIVE: Final = wire._Message(
    "LeaseTimeToLiveRequest", {"ID": wire._int64, "keys": wire._bool}
)


def ttl_seconds_min(ttl_ms_min: int) -> int:
    """The shortest TTL in seconds for a node whose shortest lease is `ttl_ms_min`."""
    return max(1, -(-ttl_ms_min // 1000))


def _seconds_up(ms: int) -> int:
    return -(-ms // 1000)


def _id(values: dict[str, Any]) -> int:
    """The ID of a request (0 if absent: the store refuses it as an invalid id)."""
    lease_id: int = values.get("ID", 0)
    return lease_id


def _route(
    parse: Callable[[Call, Any], Any], render: Callable[[Any, wire.Header], dict[str, Any]]
) -> Callable[[Call], Awaitable[web.StreamResponse]]:
    async def handler(call: Call) -> web.StreamResponse:
        try:
            document = await _document(call)
            try:
                op = parse(call, document)
            except wire.WireError as exc:
                raise EtcdError.invalid(str(exc)) from None
            answer = await _run(call, op)
            return web.json_response(render(answer, _header(call)))
        except EtcdError as exc:
            return exc.response()

    return handler


def _grant_request(call: Call, document: Any) -> LeaseGrant:
    values = _GRANT.read(document, "LeaseGrantRequest")
    seconds = max(values.get("TTL", 0), ttl_seconds_min(call.node.lease_ttl_ms_min))
    # Over the longest TTL: the store refuses it with etcd's "too large lease TTL".
    return LeaseGrant(ttl_ms=seconds * 1000, id=values.get("ID", 0))


def _grant_response(answer: LeaseGrantResponse, node: wire.Header) -> dict[str, Any]:
    return {
        "header": wire.response_header(answer.revision, node),
        "ID": str(answer.id),
        "TTL": str(_seconds_up(answer.ttl_ms)),
    }


def _revoke_request(call: Call, document: Any) -> LeaseRevoke:
    return LeaseRevoke(id=_id(_BY_ID.read(document, "LeaseRevokeRequest")))


def _revoke_response(answer: LeaseRevokeResponse, node: wire.Header) -> dict[str, Any]:
    return {"header": wire.response_header(answer.revision, node)}


def _time_to_live_request(call: Call, document: Any) -> LeaseTimeToLive:
    values = _TIME_TO_LIVE.read(document, "LeaseTimeToLiveRequest")
    return LeaseTimeToLive(id=_id(values), keys=values.get("keys", False))


def _time_to_live_response(answer: LeaseTimeToLiveResponse, node: wire.Header) -> dict[str, Any]:
    out: dict[str, Any] = {"header": wire.response_header(answer.revision, node)}
    out["ID"] = str(answer.id)
    out["TTL"] = str(answer.ttl_ms // 1000 if answer.ttl_ms >= 0 else -1)
    if answer.granted_ttl_ms:
        out["grantedTTL"] = str(_seconds_up(answer.granted_ttl_ms))
    if answer.keys:
        out["keys"] = [wire._b64(key) for key in answer.keys]
    return out


def _leases_response(answer: LeaseLeasesResponse, node: wire.Header) -> dict[str, Any]:
    out: dict[str, Any] = {"header": wire.response_header(answer.revision, node)}
    if answer.ids:
        out["leases"] = [{"ID": str(lease_id)} for lease_id in answer.ids]
    return out


grant: Final = _route(_grant_request, _grant_response)
revoke: Final = _route(_revoke_request, _revoke_response)
time_to_live: Final = _route(_time_to_live_request, _time_to_live_response)
leases: Final = _route(lambda call, document: LeaseLeases(), _leases_response)


async def keepalive(call: Call) -> web.StreamResponse:
    """POST /v3/lease/keepalive: every LeaseKeepAliveRequest of the body, one answer line each
    (module docstring). A refusal before the first answer is an error response; after it, an
    `{"error": ...}` line ends the stream, as the gateway ends a broken stream."""
    try:
        text = await _raw_text(call)
        requests = _objects(text)
        if not requests:
            raise EtcdError.invalid('the body holds no LeaseKeepAliveRequest: send {"ID": ...}')
        if len(requests) > keepalive_requests_max:
            raise EtcdError.invalid(
                f"the body holds {len(requests)} LeaseKeepAliveRequests, more than "
                f"{keepalive_requests_max}"
            )
        ops = []
        for index, document in enumerate(requests):
            try:
                values = _BY_ID.read(document, f"LeaseKeepAliveRequest[{index}]")
            except wire.WireError as exc:
                raise EtcdError.invalid(str(exc)) from None
            ops.append(LeaseKeepAlive(id=_id(values)))
    except EtcdError as exc:
        return exc.response()
    lines: list[bytes] = []
    for op in ops:
        try:
            answer = await _run(call, op)
        except EtcdError as exc:
            if exc.error != "lease_not_found":
                if not lines:
                    return exc.response()
                error = exc.to_json()
                lines.append(json.dumps({"error": {**error, "http_code": 0}}).encode())
                break
            # No TTL: the lease does not exist (etcd's answer), with the store's revision,
            # which the refusal does not carry: a read gives it.
            try:
                now = await _run(call, LeaseTimeToLive(id=op.id))
                revision = now.revision if isinstance(now, LeaseTimeToLiveResponse) else 0
            except EtcdError:
                revision = 0
            result: dict[str, Any] = {"header": wire.response_header(revision, _header(call))}
            result["ID"] = str(op.id)
        else:
            assert isinstance(answer, LeaseKeepAliveResponse)
            result = {
                "header": wire.response_header(answer.revision, _header(call)),
                "ID": str(answer.id),
                "TTL": str(_seconds_up(answer.ttl_ms)),
            }
        lines.append(json.dumps({"result": result}, separators=(",", ":")).encode())
    return web.Response(body=b"\n".join(lines) + b"\n", content_type="application/json")


async def _raw_text(call: Call) -> str:
    try:
        raw = await read_raw_body(call.request, call.body_timeout_s)
    except ApiError as exc:
        raise EtcdError.invalid(exc.message, exc.code) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EtcdError.invalid("the body is not UTF-8") from None


def _objects(text: str) -> list[Any]:
    """The JSON values of `text`, one after the other (a stream of requests)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return found
        try:
            document, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise EtcdError.invalid(f"LeaseKeepAliveRequest: not JSON: {exc.msg}") from None
        found.append(document)
