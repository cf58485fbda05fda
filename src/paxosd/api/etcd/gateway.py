"""The etcd v3 JSON API on the node's HTTP port, as etcd's gRPC gateway serves it.

Theory of operation: each route handler reads the body, maps it to one key-value request
(wire.py), checks it as etcd checks a request before proposing it (commands.validate, which
gives etcd's errors for an empty key, too many operations, a key written twice), runs it on
the node like any other request - a write through the log, a read (a Range, or a Txn that
only reads) by read-index on any node - and renders the store's answer in etcd's JSON with
the answering node's header. Every refusal is etcd's error in the gateway's shape
(errors.py); no handler lets an exception out.

The header, as paxosd fills it:

* `cluster_id`: the first 8 bytes of SHA-256 of the cluster's id (the `cluster_id` of
  `paxosd status`) as a uint64: the same on every member, different for another cluster;
* `member_id`: the node's id (1, 2, 3, ...), also the `ID` of the member list;
* `revision`: the store's revision in the answer (the state machine's, the same on every
  replica for the same request);
* `raft_term`: the round of the highest ballot the node has promised. Like raft's term it
  grows with every election and is the same on every member that follows one leader, but it
  counts rounds of Multi-Paxos, not raft's terms.

`/v3/maintenance/status` and `/v3/cluster/member/list` answer from the node's own status
(as etcd answers them from the member asked). Watches are watch.py's, leases lease.py's.
Other etcd services (auth, ...) answer Unimplemented (HTTP 501) naming the path: paxosd
does not serve them yet.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from paxosd.runtime.errors import ServiceError, Unavailable
from paxosd.service.commands import validate
from paxosd.service.errors import BadCommand
from paxosd.service.kv.errors import GrpcCode, InvalidRequest, KvError
from paxosd.service.kv.types import (
    CompactionResponse,
    DeleteRangeResponse,
    KvOp,
    PutResponse,
    RangeResponse,
    TxnResponse,
)
from paxosd.service.results import Error as ResultError

from ..calls import Call, parse_exactly_once, parse_json, read_raw_body
from ..failures import ApiError, retry_after_s
from ..member_handlers import members_view
from ..version import VERSION
from . import wire
from .errors import EtcdError

__all__ = [
    "compaction",
    "delete_range",
    "etcd_api_version",
    "member_list",
    "put",
    "range_",
    "status",
    "txn",
    "unimplemented",
    "version",
]

# The etcd API paxosd serves: etcd 3.4's (its JSON gateway at /v3/), as `GET /version` tells
# clients that pick their API path from it.
etcd_api_version: Final = "3.4.0"
etcd_cluster_version: Final = "3.4.0"


@functools.lru_cache(maxsize=16)
def cluster_uint64(cluster_id: str) -> int:
    """The cluster id as etcd's uint64 (see the module docstring); never 0."""
    digest = hashlib.sha256(cluster_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def _header(call: Call) -> wire.Header:
    node = call.node
    return wire.Header(cluster_uint64(node.cluster_id), node.node_id, node.term())


async def _document(call: Call) -> Any:
    """The body as a JSON object, or an EtcdError; an empty body is {} (as the gateway reads
    it)."""
    try:
        document = parse_json(await read_raw_body(call.request, call.body_timeout_s))
    except ApiError as exc:
        raise EtcdError.invalid(exc.message, exc.code) from None
    except web.HTTPRequestEntityTooLarge as exc:
        raise EtcdError(
            GrpcCode.INVALID_ARGUMENT,
            "etcdserver: request is too large",
            error="too_large",
            detail=exc.text or "the request body is over the node's limit",
        ) from None
    if type(document) is not dict:
        raise EtcdError.invalid("the body must be a JSON object")
    return document


async def _run(call: Call, op: Any) -> Any:
    """Check `op` and run it on the node: its answer, never an error value."""
    try:
        validate(op, call.node.kv_limits)
    except InvalidRequest as exc:
        raise EtcdError.from_kv(exc.error) from None
    except BadCommand as exc:
        raise EtcdError.invalid(str(exc), "bad_command") from None
    try:
        client_id, seq = parse_exactly_once(call.request)
    except ApiError as exc:
        raise EtcdError.invalid(exc.message, exc.code) from None
    try:
        result = await call.node.execute(op, client_id=client_id, seq=seq)
    except ServiceError as exc:
        raise EtcdError.from_node(exc, retry_after_s) from None
    except TimeoutError:
        timed_out = Unavailable("no answer in time; the outcome is unknown")
        raise EtcdError.from_node(timed_out, retry_after_s) from None
    if isinstance(result, KvError):
        raise EtcdError.from_kv(result)
    if isinstance(result, ResultError):
        raise EtcdError.from_result(result)
    return result


_Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def _kv_route(
    parse: Callable[[Any], KvOp],
    answer: type,
    render: Callable[[Any, wire.Header | None], dict[str, Any]],
) -> _Handler:
    async def handler(call: Call) -> web.StreamResponse:
        try:
            document = await _document(call)
            try:
                op = parse(document)
            except wire.WireError as exc:
                raise EtcdError.invalid(str(exc)) from None
            result = await _run(call, op)
            if not isinstance(result, answer):
                raise TypeError(f"{type(op).__name__} answered {type(result).__name__}")
            return web.json_response(render(result, _header(call)))
        except EtcdError as exc:
            return exc.response()

    return handler


range_: Final = _kv_route(wire.range_request, RangeResponse, wire.range_response)
put: Final = _kv_route(wire.put_request, PutResponse, wire.put_response)
delete_range: Final = _kv_route(
    wire.delete_range_request, DeleteRangeResponse, wire.delete_range_response
)
txn: Final = _kv_route(wire.txn_request, TxnResponse, wire.txn_response)
compaction: Final = _kv_route(wire.compact_request, CompactionResponse, wire.compaction_response)


async def version(call: Call) -> web.StreamResponse:
    return web.json_response(
        {"etcdserver": etcd_api_version, "etcdcluster": etcd_cluster_version, "paxosd": VERSION}
    )


async def status(call: Call) -> web.StreamResponse:
    """Maintenance.Status, from this node's own status: its store's revision as this node has
    applied it (it answers without a quorum, as etcd's does)."""
    try:
        await _document(call)
    except EtcdError as exc:
        return exc.response()
    node = call.node
    info = node.status()
    kv = info.get("kv")
    revision = kv.get("revision", 0) if isinstance(kv, dict) else 0  # this node's store
    header = wire.response_header(revision, _header(call))
    body: dict[str, Any] = {"header": header, "version": etcd_api_version}
    fields = (
        ("dbSize", info.get("disk_bytes")),
        ("leader", info.get("leader")),
        ("raftIndex", info.get("commit")),
        ("raftTerm", node.term()),
        ("raftAppliedIndex", info.get("applied")),
        ("dbSizeInUse", info.get("disk_bytes")),
    )
    for name, value in fields:
        if isinstance(value, int) and value > 0:
            body[name] = str(value)
    damage = info.get("damage")
    if damage:
        body["errors"] = [f"paxosd: node {node.node_id} is damaged: {damage}"]
    return web.json_response(body)


async def member_list(call: Call) -> web.StreamResponse:
    """Cluster.MemberList: the members of the node's configuration (a learner with
    `isLearner`, as etcd marks its learners; a removed node is no member), each with its
    HTTP address as its client URL."""
    try:
        await _document(call)
    except EtcdError as exc:
        return exc.response()
    status = call.node.status()
    known = "configuration" in status  # (a node that is damaged knows no configuration)
    members = []
    for member in members_view(status)["members"] if known else call.node.members():
        if member.get("voting") == "removed":
            continue
        entry: dict[str, Any] = {"ID": str(member["id"]), "name": f"node{member['id']}"}
        if member.get("voting") == "learner":
            entry["isLearner"] = True
        if member.get("peer"):
            entry["peerURLs"] = [f"tcp://{member['peer']}"]
        if member.get("http"):
            entry["clientURLs"] = [f"http://{member['http']}"]
        members.append(entry)
    header = wire.response_header(0, _header(call))
    return web.json_response({"header": header, "members": members})


async def unimplemented(call: Call) -> web.StreamResponse:
    path = call.request.path
    return EtcdError(
        GrpcCode.UNIMPLEMENTED,
        f"paxosd: {path} is not supported by paxosd",
        error="unimplemented",
        detail=f"{path} is part of etcd's API that paxosd does not serve yet; it serves "
        "/v3/kv/range, put, deleterange, txn and compaction, /v3/watch, /v3/lease/*, "
        "/v3/maintenance/status and /v3/cluster/member/list",
    ).response()
