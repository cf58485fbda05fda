"""etcd v3's JSON, as its gRPC gateway reads and writes it, to and from paxosd's KV types.

Theory of operation: etcd's gateway turns a JSON body into a protobuf message and a message
back into JSON with the proto3 JSON mapping (etcd 3.4: original field names, defaults left
out). paxosd's key-value types (service/kv/types.py) ARE those messages, field for field, so
this module is only the mapping, in both directions, and it does no I/O:

* requests: a JSON object per message. A field may be named as in the .proto file
  (`range_end`) or in lowerCamelCase (`rangeEnd`); members the message does not have are
  ignored, as the gateway ignores them; `null` is the field's default. Bytes are standard
  base64 with padding; int64 a JSON integer or a decimal string; enums their name or number;
  bools only `true`/`false`. A `RequestOp` holds exactly one of `request_range`,
  `request_put`, `request_delete_range`, `request_txn` (none: etcd's "key not found").
* answers: field names as in the .proto file, in its order; every field at its default (0,
  false, empty bytes, an empty list, an enum's first value) left out; int64 and uint64 as
  decimal strings; bytes as base64; enums by name. A header is always present, even empty.

A request that does not fit the message (a wrong JSON type, bad base64, an int64 out of range,
an unknown enum name) raises `WireError`, which the gateway answers as etcd does such a
request: InvalidArgument (HTTP 400). The texts are paxosd's own (etcd's are Go's JSON
decoder's) and name the field, e.g. `Txn.success[0].request_put.key`.

The checks of the values themselves (an empty key, too many operations, a key written twice)
are not here: they are the key-value store's (kv/checks.py), which gives etcd's errors.

Watches (/v3/watch): a WatchRequest holds one of `create_request` (a paxosd.watch
WatchRequest and the id the client chose), `cancel_request` or `progress_request`; each item
of a watch's stream becomes one WatchResponse, wrapped in `{"result": ...}` as the gateway
streams it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from paxosd.service.kv.types import (
    Compact,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    RequestOp,
    ResponseOp,
    SortOrder,
    SortTarget,
    Txn,
    TxnResponse,
)
from paxosd.watch.types import Filter, WatchRequest

__all__ = [
    "Header",
    "WatchCancel",
    "WatchCreate",
    "WatchProgress",
    "WireError",
    "compact_request",
    "compaction_response",
    "delete_range_request",
    "delete_range_response",
    "key_value",
    "put_request",
    "put_response",
    "range_request",
    "range_response",
    "response_header",
    "splice_watch_id",
    "txn_request",
    "txn_response",
    "watch_events_line",
    "watch_request",
    "watch_response",
]

int64_min: Final = -(2**63)
int64_max: Final = 2**63 - 1
uint64_max: Final = 2**64 - 1

# An int64 sent as a JSON string: an optional minus sign and decimal digits, as the proto3
# JSON mapping writes it (no "+", no spaces, no exponent).
_DECIMAL: Final = re.compile(r"-?[0-9]+")

JsonObject: TypeAlias = dict[str, Any]


class WireError(ValueError):
    """A JSON request that does not fit etcd's message; `field` names where (dotted path)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Requests: JSON -> types


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) in (int, float):
        return "a number"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "an array"
    return "an object"


def _bytes(value: object, where: str) -> bytes:
    if type(value) is not str:
        raise WireError(where, f"expected base64 text (a JSON string), got {_json_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(
            where,
            f"{_shown(value)} is not standard base64 with padding "
            "(etcd's API carries keys and values base64-encoded: 'foo' is \"Zm9v\")",
        ) from None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _int64(value: object, where: str) -> int:
    if type(value) is int:
        number = value
    elif type(value) is str and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise WireError(
            where,
            f"expected an int64 (a JSON integer or a decimal string), got {_json_kind(value)}"
            + (f" {_shown(value)}" if type(value) is str else ""),
        )
    if not int64_min <= number <= int64_max:
        raise WireError(where, f"{number} is outside the int64 range")
    return number


def _bool(value: object, where: str) -> bool:
    if type(value) is not bool:
        raise WireError(where, f"expected true or false, got {_json_kind(value)}")
    return value


def _enum(kind: type[enum.IntEnum], proto_name: str) -> Callable[[object, str], enum.IntEnum]:
    def parse(value: object, where: str) -> enum.IntEnum:
        names = ", ".join(member.name for member in kind)
        if type(value) is str:
            member = kind.__members__.get(value)
            if member is None:
                raise WireError(
                    where, f'unknown value "{value[:40]}" for enum {proto_name} (one of {names})'
                )
            return member
        if type(value) is int:
            try:
                return kind(value)
            except ValueError:
                raise WireError(
                    where, f"{value} is not a value of enum {proto_name} (one of {names})"
                ) from None
        raise WireError(where, f"expected an enum name or number, got {_json_kind(value)}")

    return parse


_sort_order: Final = _enum(SortOrder, "etcdserverpb.RangeRequest_SortOrder")
_sort_target: Final = _enum(SortTarget, "etcdserverpb.RangeRequest_SortTarget")
_compare_target: Final = _enum(CompareTarget, "etcdserverpb.Compare_CompareTarget")
_compare_result: Final = _enum(CompareResult, "etcdserverpb.Compare_CompareResult")

_Parse: TypeAlias = Callable[[object, str], Any]


@dataclass(frozen=True, slots=True)
class _Message:
    """One request message: its name and its fields' parsers, by proto name."""

    name: str
    fields: dict[str, _Parse]

    def read(self, document: object, where: str) -> dict[str, Any]:
        """The fields `document` sets, parsed, by proto name (defaults and nulls left out)."""
        if type(document) is not dict:
            raise WireError(
                where, f"expected a JSON object ({self.name}), got {_json_kind(document)}"
            )
        values: dict[str, Any] = {}
        for member, value in document.items():
            name: str = _ALIASES.get(member) or member
            parse = self.fields.get(name)
            if parse is None or value is None:
                continue  # unknown members are ignored, as etcd's gateway ignores them
            if name in values:
                raise WireError(f"{where}.{name}", f"given twice (as {name} and {_camel(name)})")
            values[name] = parse(value, f"{where}.{name}")
        return values


_RANGE: Final = _Message(
    "RangeRequest",
    {
        "key": _bytes,
        "range_end": _bytes,
        "limit": _int64,
        "revision": _int64,
        "sort_order": _sort_order,
        "sort_target": _sort_target,
        "serializable": _bool,
        "keys_only": _bool,
        "count_only": _bool,
        "min_mod_revision": _int64,
        "max_mod_revision": _int64,
        "min_create_revision": _int64,
        "max_create_revision": _int64,
    },
)
_PUT: Final = _Message(
    "PutRequest",
    {
        "key": _bytes,
        "value": _bytes,
        "lease": _int64,
        "prev_kv": _bool,
        "ignore_value": _bool,
        "ignore_lease": _bool,
    },
)
_DELETE_RANGE: Final = _Message(
    "DeleteRangeRequest", {"key": _bytes, "range_end": _bytes, "prev_kv": _bool}
)
_COMPARE: Final = _Message(
    "Compare",
    {
        "result": _compare_result,
        "target": _compare_target,
        "key": _bytes,
        "version": _int64,
        "create_revision": _int64,
        "mod_revision": _int64,
        "value": _bytes,
        "lease": _int64,
        "range_end": _bytes,
    },
)
_COMPACT: Final = _Message("CompactionRequest", {"revision": _int64, "physical": _bool})


def _list(value: object, where: str) -> list[Any]:
    if type(value) is not list:
        raise WireError(where, f"expected a JSON array, got {_json_kind(value)}")
    return value


def _txn_fields(depth: int) -> _Message:
    return _Message(
        "TxnRequest",
        {
            "compare": lambda value, where: tuple(
                compare_request(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where))
            ),
            "success": lambda value, where: _request_ops(value, where, depth),
            "failure": lambda value, where: _request_ops(value, where, depth),
        },
    )


# How deep a JSON transaction may nest before it is refused here, without recursing further
# (the store refuses deeper than kv/checks.py txn_depth_max with its own error; this bound
# only keeps the parser's recursion far from Python's limit).
_json_txn_depth_max: Final = 64

_REQUEST_OPS: Final = ("request_range", "request_put", "request_delete_range", "request_txn")


def _request_ops(value: object, where: str, depth: int) -> tuple[RequestOp | None, ...]:
    return tuple(
        _request_op(item, f"{where}[{i}]", depth) for i, item in enumerate(_list(value, where))
    )


def _request_op(document: object, where: str, depth: int) -> RequestOp | None:
    if type(document) is not dict:
        raise WireError(where, f"expected a JSON object (RequestOp), got {_json_kind(document)}")
    found: list[tuple[str, object]] = []
    for member, value in document.items():
        name: str = _ALIASES.get(member) or member
        if name in _REQUEST_OPS and value is not None:
            found.append((name, value))
    if not found:
        return None  # an empty RequestOp: the store refuses it as etcd does
    if len(found) > 1:
        names = " and ".join(name for name, _ in found)
        raise WireError(where, f"a RequestOp holds one request, this one holds {names}")
    name, value = found[0]
    where = f"{where}.{name}"
    if name == "request_range":
        return range_request(value, where)
    if name == "request_put":
        return put_request(value, where)
    if name == "request_delete_range":
        return delete_range_request(value, where)
    if depth >= _json_txn_depth_max:
        raise WireError(where, f"transactions nested deeper than {_json_txn_depth_max} levels")
    return _txn(value, where, depth + 1)


def range_request(document: object, where: str = "RangeRequest") -> Range:
    return Range(**{"key": b"", **_RANGE.read(document, where)})


def put_request(document: object, where: str = "PutRequest") -> Put:
    return Put(**{"key": b"", **_PUT.read(document, where)})


def delete_range_request(document: object, where: str = "DeleteRangeRequest") -> DeleteRange:
    return DeleteRange(**{"key": b"", **_DELETE_RANGE.read(document, where)})


def compare_request(document: object, where: str = "Compare") -> Compare:
    values = _COMPARE.read(document, where)
    values.setdefault("key", b"")
    values.setdefault("target", CompareTarget.VERSION)
    return Compare(**values)


def compact_request(document: object, where: str = "CompactionRequest") -> Compact:
    return Compact(**{"revision": 0, **_COMPACT.read(document, where)})


def txn_request(document: object, where: str = "TxnRequest") -> Txn:
    return _txn(document, where, 0)


def _txn(document: object, where: str, depth: int) -> Txn:
    # An empty RequestOp stays None in the tuple: kv/checks.py refuses it with etcd's error.
    return Txn(**_txn_fields(depth).read(document, where))


_filter: Final = _enum(Filter, "etcdserverpb.WatchCreateRequest_FilterType")


def _filters(value: object, where: str) -> frozenset[Filter]:
    return frozenset(
        Filter(_filter(item, f"{where}[{i}]")) for i, item in enumerate(_list(value, where))
    )


_WATCH_CREATE: Final = _Message(
    "WatchCreateRequest",
    {
        "key": _bytes,
        "range_end": _bytes,
        "start_revision": _int64,
        "progress_notify": _bool,
        "filters": _filters,
        "prev_kv": _bool,
        "watch_id": _int64,
        "fragment": _bool,
    },
)
_WATCH_CANCEL: Final = _Message("WatchCancelRequest", {"watch_id": _int64})
_WATCH_REQUESTS: Final = ("create_request", "cancel_request", "progress_request")


@dataclass(frozen=True, slots=True)
class WatchCreate:
    """A WatchCreateRequest: the watch, and the id the client chose for it (0: any).
    `start_revision` may be negative here: the stream refuses it with its reason."""

    request: WatchRequest
    watch_id: int


@dataclass(frozen=True, slots=True)
class WatchCancel:
    watch_id: int


@dataclass(frozen=True, slots=True)
class WatchProgress:
    pass


def watch_request(
    document: object, where: str = "WatchRequest"
) -> WatchCreate | WatchCancel | WatchProgress | None:
    """One WatchRequest of a /v3/watch stream; None for one that holds no request (etcd
    ignores those)."""
    if type(document) is not dict:
        raise WireError(where, f"expected a JSON object (WatchRequest), got {_json_kind(document)}")
    found = [
        (name, value)
        for member, value in document.items()
        if (name := _ALIASES.get(member) or member) in _WATCH_REQUESTS and value is not None
    ]
    if not found:
        return None
    if len(found) > 1:
        names = " and ".join(name for name, _ in found)
        raise WireError(where, f"a WatchRequest holds one request, this one holds {names}")
    name, value = found[0]
    where = f"{where}.{name}"
    if name == "create_request":
        fields = _WATCH_CREATE.read(value, where)
        watch_id = fields.pop("watch_id", 0)
        request = WatchRequest(
            key=fields.get("key", b""),
            range_end=fields.get("range_end", b""),
            start_revision=fields.get("start_revision", 0),
            prev_kv=fields.get("prev_kv", False),
            filters=fields.get("filters", frozenset()),
            progress_notify=fields.get("progress_notify", False),
            fragment=fields.get("fragment", False),
        )
        return WatchCreate(request, watch_id)
    if name == "cancel_request":
        return WatchCancel(_WATCH_CANCEL.read(value, where).get("watch_id", 0))
    if type(value) is not dict:
        raise WireError(where, f"expected a JSON object, got {_json_kind(value)}")
    return WatchProgress()


_ALIASES: Final[dict[str, str]] = {
    _camel(name): name
    for message in (_RANGE, _PUT, _DELETE_RANGE, _COMPARE, _COMPACT, _WATCH_CREATE)
    for name in message.fields
    if "_" in name
} | {_camel(name): name for name in (*_REQUEST_OPS, *_WATCH_REQUESTS)}

# ---------------------------------------------------------------------------------------------
# Answers: types -> JSON


@dataclass(frozen=True, slots=True)
class Header:
    """What the answering node adds to every answer's header (etcd's ResponseHeader without
    the revision, which comes from the answer): ids as uint64, the term as uint64."""

    cluster_id: int
    member_id: int
    raft_term: int


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def response_header(revision: int, node: Header | None) -> JsonObject:
    """etcd's ResponseHeader: the node's fields (None: a header inside a transaction, which
    carries only the revision) and the answer's revision, each left out when 0."""
    header: JsonObject = {}
    if node is not None:
        if node.cluster_id:
            header["cluster_id"] = str(node.cluster_id)
        if node.member_id:
            header["member_id"] = str(node.member_id)
    if revision:
        header["revision"] = str(revision)
    if node is not None and node.raft_term:
        header["raft_term"] = str(node.raft_term)
    return header


def key_value(kv: KeyValue) -> JsonObject:
    """mvccpb.KeyValue."""
    out: JsonObject = {}
    if kv.key:
        out["key"] = _b64(kv.key)
    if kv.create_revision:
        out["create_revision"] = str(kv.create_revision)
    if kv.mod_revision:
        out["mod_revision"] = str(kv.mod_revision)
    if kv.version:
        out["version"] = str(kv.version)
    if kv.value:
        out["value"] = _b64(kv.value)
    if kv.lease:
        out["lease"] = str(kv.lease)
    return out


def range_response(answer: RangeResponse, node: Header | None) -> JsonObject:
    out: JsonObject = {"header": response_header(answer.revision, node)}
    if answer.kvs:
        out["kvs"] = [key_value(kv) for kv in answer.kvs]
    if answer.more:
        out["more"] = True
    if answer.count:
        out["count"] = str(answer.count)
    return out


def put_response(answer: PutResponse, node: Header | None) -> JsonObject:
    out: JsonObject = {"header": response_header(answer.revision, node)}
    if answer.prev_kv is not None:
        out["prev_kv"] = key_value(answer.prev_kv)
    return out


def delete_range_response(answer: DeleteRangeResponse, node: Header | None) -> JsonObject:
    out: JsonObject = {"header": response_header(answer.revision, node)}
    if answer.deleted:
        out["deleted"] = str(answer.deleted)
    if answer.prev_kvs:
        out["prev_kvs"] = [key_value(kv) for kv in answer.prev_kvs]
    return out


def txn_response(answer: TxnResponse, node: Header | None) -> JsonObject:
    out: JsonObject = {"header": response_header(answer.revision, node)}
    if answer.succeeded:
        out["succeeded"] = True
    if answer.responses:
        out["responses"] = [_response_op(response) for response in answer.responses]
    return out


def compaction_response(answer: CompactionResponse, node: Header | None) -> JsonObject:
    return {"header": response_header(answer.revision, node)}


def _response_op(answer: ResponseOp) -> JsonObject:
    """etcdserverpb.ResponseOp: an answer inside a transaction, whose header holds only its
    revision (as etcd fills it)."""
    kind = type(answer)
    if kind is RangeResponse:
        assert isinstance(answer, RangeResponse)
        return {"response_range": range_response(answer, None)}
    if kind is PutResponse:
        assert isinstance(answer, PutResponse)
        return {"response_put": put_response(answer, None)}
    if kind is DeleteRangeResponse:
        assert isinstance(answer, DeleteRangeResponse)
        return {"response_delete_range": delete_range_response(answer, None)}
    assert isinstance(answer, TxnResponse), answer
    return {"response_txn": txn_response(answer, None)}


def _event_json(event: Event, prev_kv: bool) -> JsonObject:
    """mvccpb.Event: `type` left out for a PUT (the enum's first value)."""
    out: JsonObject = {}
    if event.type == EventType.DELETE:
        out["type"] = "DELETE"
    out["kv"] = key_value(event.kv)
    if prev_kv and event.prev_kv is not None:
        out["prev_kv"] = key_value(event.prev_kv)
    return out


def watch_response(
    node: Header,
    revision: int,
    watch_id: int,
    *,
    created: bool = False,
    canceled: bool = False,
    compact_revision: int = 0,
    cancel_reason: str = "",
    fragment: bool = False,
    events: tuple[Event, ...] = (),
    prev_kv: bool = False,
) -> JsonObject:
    """etcdserverpb.WatchResponse, as the gateway streams it: inside {"result": ...}."""
    out: JsonObject = {"header": response_header(revision, node)}
    if watch_id:
        out["watch_id"] = str(watch_id)
    if created:
        out["created"] = True
    if canceled:
        out["canceled"] = True
    if compact_revision:
        out["compact_revision"] = str(compact_revision)
    if cancel_reason:
        out["cancel_reason"] = cancel_reason
    if fragment:
        out["fragment"] = True
    if events:
        out["events"] = [_event_json(e, prev_kv) for e in events]
    return {"result": out}


def watch_events_line(
    node: Header,
    revision: int,
    events: tuple[Event, ...],
    *,
    fragment: bool = False,
    prev_kv: bool = False,
) -> tuple[bytes, bytes]:
    """The line of an events WatchResponse, exactly as `json.dumps(watch_response(...),
    separators=(",", ":"))` writes it, in two parts: before and after the watch id. A
    revision's events go to every watcher of their key alike, so a stream renders them once
    and `splice_watch_id` makes each watcher's line from the parts."""
    head = '{"result":{"header":' + _dumps(response_header(revision, node))
    rest: JsonObject = {}
    if fragment:
        rest["fragment"] = True
    if events:
        rest["events"] = [_event_json(e, prev_kv) for e in events]
    tail = "," + _dumps(rest)[1:] if rest else "}"
    return head.encode(), tail.encode() + b"}"


def splice_watch_id(parts: tuple[bytes, bytes], watch_id: int) -> bytes:
    """One watcher's line from `watch_events_line`'s parts (watch id 0 is left out, as
    every field at its default)."""
    head, tail = parts
    if not watch_id:
        return head + tail
    return b"".join((head, b',"watch_id":"', str(watch_id).encode(), b'"', tail))


def _dumps(document: JsonObject) -> str:
    return json.dumps(document, separators=(",", ":"))
