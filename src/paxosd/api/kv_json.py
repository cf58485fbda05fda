"""The key-value store on /v1: etcd's requests and answers in paxosd's own JSON.

Theory of operation: /v1 speaks the same data model as the etcd API (service/kv/types.py) in
a JSON meant for people and for paxosd's clients rather than for etcd's: keys are text,
values are JSON, revisions are numbers, and every field is always there. This module maps
that JSON to the store's requests and the answers back; it does no I/O.

Keys and values. A key on /v1 is UTF-8 text, stored as its bytes. A value is any JSON value,
stored as its JSON text (`paxosd.service.values.json_text`: compact, object members sorted
by name), so that a transaction's VALUE compare compares JSON values (1 and 1.0 stay two
numbers, as they are two texts); or, as `value_base64`, raw bytes stored as they are. An
answer shows a stored value as `value` when the bytes are JSON text and as `value_base64`
otherwise (a value written raw through /v1, the etcd API or RESP), and a key as `key`, or as
`key_base64` when it is not UTF-8: nothing is ever shown in a way that reads back as
something else.

Which keys (a range, a delete, a compare), exactly one of:

* `key`: that key alone;
* `prefix`: every key that starts with it (`prefix` "" is every key);
* `start`, and optionally `end`: the keys in [start, end); without `end`, every key from
  `start` on.

Range options (a GET's query or a transaction's range): `limit`, `revision` (0 or absent: now),
`sort` (key, version, create, mod, value), `order` (ascend, descend), `keys_only`,
`count_only`, `serializable`, `min_mod_revision`, `max_mod_revision`, `min_create_revision`,
`max_create_revision`. The store filters, then sorts, then cuts at `limit`; `count` counts
what the filters let through, `more` says whether the limit cut.

Everything malformed raises `KvJsonError` naming the field; the store's own checks (empty
keys, limits, a key written twice in a transaction) come after, with their own errors.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, Final

from paxosd.service.kv.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
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
    prefix_end,
)
from paxosd.service.values import from_json_text, json_text
from paxosd.watch.types import Filter, WatchRequest

__all__ = [
    "KvJsonError",
    "compare_request",
    "delete_request",
    "key_value",
    "put_request",
    "range_from_query",
    "range_request",
    "range_response",
    "response_op",
    "shown_value",
    "txn_request",
    "txn_response",
]

_int64_min: Final = -(2**63)
_int64_max: Final = 2**63 - 1
# How deep /v1 transactions may nest before the JSON is refused here (the store refuses more
# than kv/checks.py txn_depth_max itself; this only bounds this module's recursion).
_txn_depth_max: Final = 64

_SORT_TARGETS: Final = {
    "key": SortTarget.KEY,
    "version": SortTarget.VERSION,
    "create": SortTarget.CREATE,
    "mod": SortTarget.MOD,
    "modify": SortTarget.MOD,  # etcdctl's name
    "value": SortTarget.VALUE,
}
_ORDERS: Final = {
    "ascend": SortOrder.ASCEND,
    "descend": SortOrder.DESCEND,
    "none": SortOrder.NONE,
}
_TARGETS: Final = {
    "value": CompareTarget.VALUE,
    "version": CompareTarget.VERSION,
    "create": CompareTarget.CREATE,
    "mod": CompareTarget.MOD,
    "lease": CompareTarget.LEASE,
}
_RESULTS: Final = {
    "=": CompareResult.EQUAL,
    "==": CompareResult.EQUAL,
    "equal": CompareResult.EQUAL,
    "!=": CompareResult.NOT_EQUAL,
    "not_equal": CompareResult.NOT_EQUAL,
    "<": CompareResult.LESS,
    "less": CompareResult.LESS,
    ">": CompareResult.GREATER,
    "greater": CompareResult.GREATER,
}
# The operand of each compare target, named as etcd names it.
_OPERANDS: Final = {
    CompareTarget.VALUE: "value",
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.LEASE: "lease",
}
_RANGE_INTS: Final = (
    "limit",
    "revision",
    "min_mod_revision",
    "max_mod_revision",
    "min_create_revision",
    "max_create_revision",
)
_RANGE_FLAGS: Final = ("keys_only", "count_only", "serializable")
_SELECTOR: Final = ("key", "prefix", "start", "end")
RANGE_FIELDS: Final = (*_SELECTOR, *_RANGE_INTS, "sort", "order", *_RANGE_FLAGS)


class KvJsonError(ValueError):
    """A /v1 key-value request that is not well formed; `field` names the member."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Values


def _stored(value: Any, where: str) -> bytes:
    try:
        return json_text(value)
    except (ValueError, TypeError) as exc:
        raise KvJsonError(where, f"is not a JSON value: {exc}") from None


def shown_value(data: bytes) -> dict[str, Any]:
    """{"value": JSON} if `data` is JSON text, else {"value_base64": ...}."""
    ok, value = from_json_text(data)
    if ok:
        return {"value": value}
    return {"value_base64": base64.b64encode(data).decode("ascii")}


def shown_key(key: bytes) -> dict[str, str]:
    """{"key": text} if `key` is UTF-8, else {"key_base64": ...}."""
    return _shown_key(key)


def _shown_key(key: bytes) -> dict[str, str]:
    try:
        return {"key": key.decode("utf-8")}
    except UnicodeDecodeError:
        return {"key_base64": base64.b64encode(key).decode("ascii")}


def _value_of(document: Mapping[str, Any], where: str, required: bool) -> bytes | None:
    """The value a request carries: `value` (JSON) or `value_base64` (raw bytes)."""
    if "value" in document and "value_base64" in document:
        raise KvJsonError(f"{where}.value", "give value or value_base64, not both")
    if "value_base64" in document:
        raw = document["value_base64"]
        if type(raw) is not str:
            raise KvJsonError(f"{where}.value_base64", "must be base64 text (a JSON string)")
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise KvJsonError(
                f"{where}.value_base64", "is not standard base64 with padding"
            ) from None
    if "value" in document:
        return _stored(document["value"], f"{where}.value")
    if required:
        raise KvJsonError(f"{where}.value", "missing (give value or value_base64)")
    return None


# ---------------------------------------------------------------------------------------------
# Reading requests


class _Members:
    """A request's members, typed: from a JSON object (`query` False) or from a URL's query
    (`query` True: every member is text, numbers and flags are parsed from it)."""

    def __init__(self, document: Mapping[str, Any], where: str, query: bool = False) -> None:
        self.document = document
        self.where = where
        self.query = query

    def has(self, name: str) -> bool:
        return name in self.document

    def text(self, name: str) -> str | None:
        value = self.document.get(name)
        if value is None:
            return None
        if type(value) is not str:
            raise KvJsonError(self._at(name), "must be a string")
        return value

    def integer(self, name: str) -> int:
        value = self.document.get(name)
        if value is None:
            return 0
        if self.query and type(value) is str:
            text: str = value
            try:
                value = int(text, 10)
            except ValueError:
                raise KvJsonError(
                    self._at(name), f"must be an integer, got {text[:40]!r}"
                ) from None
        if type(value) is not int:
            raise KvJsonError(self._at(name), "must be an integer")
        if not _int64_min <= value <= _int64_max:
            raise KvJsonError(self._at(name), f"{value} is outside the 64-bit range")
        return value

    def flag(self, name: str) -> bool:
        value = self.document.get(name)
        if value is None:
            return False
        if self.query and type(value) is str:
            lowered = value.lower()
            if lowered in ("", "true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise KvJsonError(self._at(name), f"must be true or false, got {value[:40]!r}")
        if type(value) is not bool:
            raise KvJsonError(self._at(name), "must be true or false")
        return value

    def choice(self, name: str, table: Mapping[str, Any], default: Any) -> Any:
        value = self.text(name)
        if value is None:
            return default
        found = table.get(value.lower())
        if found is None:
            raise KvJsonError(self._at(name), f"{value[:40]!r} is not one of {', '.join(table)}")
        return found

    def only(self, allowed: tuple[str, ...]) -> None:
        for name in self.document:
            if name not in allowed:
                raise KvJsonError(
                    self._at(name), f"unknown member (expected: {', '.join(allowed)})"
                )

    def _at(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name


def _keys(members: _Members) -> tuple[bytes, bytes]:
    """(key, range_end) of the selector: key, prefix, or start with an optional end."""
    given = [name for name in ("key", "prefix", "start") if members.has(name)]
    if len(given) != 1:
        if not given:
            why = "name the keys: key, prefix, or start (with end)"
        else:
            why = f"give one of key, prefix and start, not {' and '.join(given)}"
        raise KvJsonError(members.where or "keys", why)
    name = given[0]
    text = members.text(name) or ""
    if name != "start" and members.has("end"):
        raise KvJsonError(members._at("end"), "goes with start, not with key or prefix")
    data = text.encode()
    if name == "key":
        return data, b""
    if name == "prefix":
        if not data:
            return b"\0", b"\0"  # every key
        return data, prefix_end(data)
    end = members.text("end")
    if not data:
        data = b"\0"  # the first key there can be
    return data, b"\0" if end is None else end.encode()


def _range(members: _Members) -> Range:
    key, range_end = _keys(members)
    return Range(
        key=key,
        range_end=range_end,
        limit=members.integer("limit"),
        revision=members.integer("revision"),
        sort_order=members.choice("order", _ORDERS, SortOrder.NONE),
        sort_target=members.choice("sort", _SORT_TARGETS, SortTarget.KEY),
        keys_only=members.flag("keys_only"),
        count_only=members.flag("count_only"),
        serializable=members.flag("serializable"),
        min_mod_revision=members.integer("min_mod_revision"),
        max_mod_revision=members.integer("max_mod_revision"),
        min_create_revision=members.integer("min_create_revision"),
        max_create_revision=members.integer("max_create_revision"),
    )


def range_from_query(query: Mapping[str, str]) -> Range:
    """GET /v1/kv's query as a Range."""
    members = _Members(query, "", query=True)
    members.only(RANGE_FIELDS)
    return _range(members)


WATCH_FIELDS: Final = (
    *_SELECTOR,
    "start_revision",
    "prev_kv",
    "filters",
    "progress_notify",
    "last_event_id",
)
_FILTERS: Final = {"noput": Filter.NOPUT, "nodelete": Filter.NODELETE}


def watch_from_query(query: Mapping[str, str], last_event_id: str | None = None) -> WatchRequest:
    """GET /v1/watch's query as a WatchRequest. `last_event_id` (the Last-Event-ID header of
    a reconnecting EventSource, or the query's `last_event_id`) is the last revision the
    client saw: the watch starts at the next one."""
    members = _Members(query, "", query=True)
    members.only(WATCH_FIELDS)
    key, range_end = _keys(members)
    start = members.integer("start_revision")
    if start < 0:
        raise KvJsonError("start_revision", f"{start} is not a revision (0: the next one)")
    resume = last_event_id if last_event_id is not None else members.text("last_event_id")
    if resume is not None and resume.strip():
        try:
            seen = int(resume.strip(), 10)
        except ValueError:
            raise KvJsonError(
                "last_event_id", f"must be a revision (an integer), got {resume[:40]!r}"
            ) from None
        if not 0 <= seen < _int64_max:
            raise KvJsonError("last_event_id", f"{seen} is not a revision")
        start = seen + 1
    filters: set[Filter] = set()
    for name in (members.text("filters") or "").split(","):
        name = name.strip().lower()
        if not name:
            continue
        if name not in _FILTERS:
            raise KvJsonError(
                "filters", f"unknown filter {name[:40]!r}: the filters are noput and nodelete"
            )
        filters.add(_FILTERS[name])
    return WatchRequest(
        key=key,
        range_end=range_end,
        start_revision=start,
        prev_kv=members.flag("prev_kv"),
        filters=frozenset(filters),
        progress_notify=members.flag("progress_notify"),
    )


def delete_from_query(query: Mapping[str, str]) -> DeleteRange:
    """DELETE /v1/kv's query as a DeleteRange."""
    members = _Members(query, "", query=True)
    members.only((*_SELECTOR, "prev_kv"))
    key, range_end = _keys(members)
    return DeleteRange(key=key, range_end=range_end, prev_kv=members.flag("prev_kv"))


def _object(document: object, where: str) -> Mapping[str, Any]:
    if type(document) is not dict:
        raise KvJsonError(where, "must be a JSON object")
    return document


def range_request(document: object, where: str = "range") -> Range:
    members = _Members(_object(document, where), where)
    members.only(RANGE_FIELDS)
    return _range(members)


def put_request(document: object, where: str = "put") -> Put:
    members = _Members(_object(document, where), where)
    members.only(("key", "value", "value_base64", "prev_kv", "ignore_value", "lease"))
    key = members.text("key")
    if key is None:
        raise KvJsonError(members._at("key"), "missing")
    ignore_value = members.flag("ignore_value")
    value = _value_of(members.document, where, required=not ignore_value)
    return Put(
        key=key.encode(),
        value=value or b"",
        lease=members.integer("lease"),
        prev_kv=members.flag("prev_kv"),
        ignore_value=ignore_value,
    )


def delete_request(document: object, where: str = "delete") -> DeleteRange:
    members = _Members(_object(document, where), where)
    members.only((*_SELECTOR, "prev_kv"))
    key, range_end = _keys(members)
    return DeleteRange(key=key, range_end=range_end, prev_kv=members.flag("prev_kv"))


def compare_request(document: object, where: str = "compare") -> Compare:
    members = _Members(_object(document, where), where)
    members.only((*_SELECTOR, "target", "result", *_OPERANDS.values(), "value_base64"))
    key, range_end = _keys(members)
    target = members.choice("target", _TARGETS, None)
    if target is None:
        raise KvJsonError(members._at("target"), f"missing (one of {', '.join(_TARGETS)})")
    result = members.choice("result", _RESULTS, None)
    if result is None:
        raise KvJsonError(members._at("result"), f"missing (one of {', '.join(_RESULTS)})")
    operand = _OPERANDS[target]
    for name in (*_OPERANDS.values(), "value_base64"):
        if members.has(name) and name != operand and not (operand == "value" and
                                                         name == "value_base64"):  # fmt: skip
            raise KvJsonError(
                members._at(name), f"does not go with target {target.name.lower()}: give {operand}"
            )
    fields: dict[str, Any] = {}
    if target is CompareTarget.VALUE:
        fields["value"] = _value_of(members.document, where, required=True)
    else:
        fields[operand] = members.integer(operand)
    return Compare(key=key, range_end=range_end, target=target, result=result, **fields)


_OPS: Final[dict[str, Callable[[object, str, int], RequestOp]]] = {
    "range": lambda document, where, depth: range_request(document, where),
    "put": lambda document, where, depth: put_request(document, where),
    "delete": lambda document, where, depth: delete_request(document, where),
    "txn": lambda document, where, depth: _txn(document, where, depth + 1),
}


def _request_op(document: object, where: str, depth: int) -> RequestOp:
    operation = _object(document, where)
    if len(operation) != 1 or next(iter(operation)) not in _OPS:
        raise KvJsonError(where, f"must be one of {{{', '.join(_OPS)}: ...}}")
    [(kind, body)] = operation.items()
    return _OPS[kind](body, f"{where}.{kind}", depth)


def txn_request(document: object) -> Txn:
    """POST /v1/txn's body as a Txn."""
    return _txn(document, "", 0)


def _txn(document: object, where: str, depth: int) -> Txn:
    if depth > _txn_depth_max:
        raise KvJsonError(where, f"transactions nested deeper than {_txn_depth_max} levels")
    members = _Members(_object(document, where or "body"), where)
    members.only(("compare", "success", "failure"))
    lists: dict[str, tuple[Any, ...]] = {}
    for name in ("compare", "success", "failure"):
        items = members.document.get(name, [])
        if type(items) is not list:
            raise KvJsonError(members._at(name), "must be a JSON array")
        at = members._at(name)
        if name == "compare":
            lists[name] = tuple(compare_request(c, f"{at}[{i}]") for i, c in enumerate(items))
        else:
            lists[name] = tuple(_request_op(op, f"{at}[{i}]", depth) for i, op in enumerate(items))
    return Txn(compare=lists["compare"], success=lists["success"], failure=lists["failure"])


# ---------------------------------------------------------------------------------------------
# Writing answers


def key_value(kv: KeyValue, keys_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = _shown_key(kv.key)
    if not keys_only:
        out.update(shown_value(kv.value))
    out["create_revision"] = kv.create_revision
    out["mod_revision"] = kv.mod_revision
    out["version"] = kv.version
    out["lease"] = kv.lease
    return out


def range_response(answer: RangeResponse, keys_only: bool = False) -> dict[str, Any]:
    return {
        "revision": answer.revision,
        "count": answer.count,
        "more": answer.more,
        "kvs": [key_value(kv, keys_only) for kv in answer.kvs],
    }


def put_response(answer: PutResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"revision": answer.revision}
    if answer.prev_kv is not None:
        out["prev_kv"] = key_value(answer.prev_kv)
    return out


def delete_response(answer: DeleteRangeResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"revision": answer.revision, "deleted": answer.deleted}
    if answer.prev_kvs:
        out["prev_kvs"] = [key_value(kv) for kv in answer.prev_kvs]
    return out


def txn_response(answer: TxnResponse, request: Txn | None = None) -> dict[str, Any]:
    """A Txn's answer; `request` (the transaction asked) tells which ranges were keys_only."""
    branch: tuple[Any, ...] = ()
    if request is not None:
        branch = request.success if answer.succeeded else request.failure
    ops = [
        response_op(response, branch[i] if i < len(branch) else None)
        for i, response in enumerate(answer.responses)
    ]
    return {"revision": answer.revision, "succeeded": answer.succeeded, "responses": ops}


def response_op(answer: ResponseOp, request: Any = None) -> dict[str, Any]:
    kind = type(answer)
    if kind is RangeResponse:
        assert isinstance(answer, RangeResponse)
        keys_only = isinstance(request, Range) and request.keys_only
        return {"range": range_response(answer, keys_only)}
    if kind is PutResponse:
        assert isinstance(answer, PutResponse)
        return {"put": put_response(answer)}
    if kind is DeleteRangeResponse:
        assert isinstance(answer, DeleteRangeResponse)
        return {"delete": delete_response(answer)}
    assert isinstance(answer, TxnResponse), answer
    return {"txn": txn_response(answer, request if isinstance(request, Txn) else None)}
