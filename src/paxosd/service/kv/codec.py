"""The key-value store's requests and answers in the log and in snapshots.

Theory of operation: an op travels as the msgpack array `[tag, field, ...]`, its fields in
etcd's field order, with the fields at their defaults dropped from the end (a plain put is
`[15, key, value]`, 3 items). Keys, values and range ends are msgpack `bin`, enums and
revisions integers, flags booleans. A transaction nests its compares and ops:
`[17, [[target, result, key, operand, range_end], ...], [op, ...], [op, ...]]`, where each op
is an array as above. Tags (commands.py's table, shared by every namespace):

    14 Range   15 Put   16 DeleteRange   17 Txn   18 Compact
    19-23 the lease requests (leases.py; their answers' tags are 17-21)

Decoding checks everything encoding checks (kv/checks.py), with the largest limits a node may
be configured with, and raises `BadCommand` (as `InvalidRequest`) and nothing else.

Answers are cached by the exactly-once table and carried in snapshots: `response_to_raw` and
`response_from_raw` map them to arrays and back, `response_from_raw` refusing (with
`CorruptSnapshot`) anything `response_to_raw` could not have written.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from paxosd.service.codec import OpCodec, always, key_bytes_max, value_bytes_max
from paxosd.service.errors import BadCommand, CorruptSnapshot

from .checks import (
    LOG_LIMITS,
    _invalid,
    check_compact,
    check_delete_range,
    check_put,
    check_range,
    check_txn,
    txn_depth_max,
)
from .errors import KV_ERROR_CODES, GrpcCode, KvError
from .leases import CODECS as LEASE_CODECS
from .leases import FROM_RAW as LEASE_FROM_RAW
from .leases import response_to_raw as lease_response_to_raw
from .types import (
    Compact,
    CompactionResponse,
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
    SortOrder,
    SortTarget,
    Txn,
    TxnResponse,
)

RANGE_TAG: Final = 14
PUT_TAG: Final = 15
DELETE_RANGE_TAG: Final = 16
TXN_TAG: Final = 17
COMPACT_TAG: Final = 18

_RANGE_FIELDS: Final = (
    ("key", None),
    ("range_end", b""),
    ("limit", 0),
    ("revision", 0),
    ("sort_order", SortOrder.NONE),
    ("sort_target", SortTarget.KEY),
    ("serializable", False),
    ("keys_only", False),
    ("count_only", False),
    ("min_mod_revision", 0),
    ("max_mod_revision", 0),
    ("min_create_revision", 0),
    ("max_create_revision", 0),
)
_PUT_FIELDS: Final = (
    ("key", None),
    ("value", b""),
    ("lease", 0),
    ("prev_kv", False),
    ("ignore_value", False),
    ("ignore_lease", False),
)
_DELETE_FIELDS: Final = (("key", None), ("range_end", b""), ("prev_kv", False))
_COMPACT_FIELDS: Final = (("revision", None), ("physical", False))
_ENUMS: Final = {"sort_order": SortOrder, "sort_target": SortTarget}


def _same(value: object, default: object) -> bool:
    """`value` is the default (type-aware: False is not 0, and 0 is not False)."""
    if type(default) is bool:
        return value is default
    if isinstance(default, int):
        return isinstance(value, int) and type(value) is not bool and value == default
    return type(value) is type(default) and value == default


def _flat(tag: int, op: Any, fields: tuple[tuple[str, Any], ...]) -> list[Any]:
    raw: list[Any] = [tag, *(getattr(op, name) for name, _ in fields)]
    while len(raw) > 2 and _same(raw[-1], fields[len(raw) - 2][1]):
        raw.pop()
    return raw


def _unflat(raw: list[Any], cls: type, fields: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    if not 2 <= len(raw) <= len(fields) + 1:
        raise _invalid(cls.__name__, f"expected 1 to {len(fields)} fields, got {len(raw) - 1}")
    values: dict[str, Any] = {}
    for (name, _), value in zip(fields, raw[1:], strict=False):
        values[name] = value
    for name, default in fields[len(raw) - 1 :]:
        values[name] = default
    for name, enum in _ENUMS.items():
        value = values.get(name)
        if type(value) is int and value in enum._value2member_map_:
            values[name] = enum(value)
    return values


# ---------------------------------------------------------------------------------------------
# Requests


# A plain range (one key, every option at its default) is what a single-key read is (RESP
# GET, etcd's range of one key): it is validated twice per read (by the node that takes it,
# and by the state machine that answers it), so it is checked at once: its options, read in
# C, equal the defaults and have their types.
_RANGE_DEFAULTS: Final = tuple(default for _, default in _RANGE_FIELDS[1:])
_RANGE_DEFAULT_TYPES: Final = tuple(map(type, _RANGE_DEFAULTS))
_range_options = operator.attrgetter(*(name for name, _ in _RANGE_FIELDS[1:]))


_new_object = object.__new__
_RANGE_SLOTS: Final = tuple(getattr(Range, name).__set__ for name, _ in _RANGE_FIELDS)
assert tuple(Range.__slots__) == tuple(name for name, _ in _RANGE_FIELDS)


def plain_range(key: bytes) -> Range:
    """`Range(key=key)` (a single-key read, every option at its default), through its slots
    at half the cost of the dataclass's __init__ (every RESP GET builds one). Checks nothing
    (validation does)."""
    op: Range = _new_object(Range)
    (
        set_key,
        set_range_end,
        set_limit,
        set_revision,
        set_sort_order,
        set_sort_target,
        set_serializable,
        set_keys_only,
        set_count_only,
        set_min_mod,
        set_max_mod,
        set_min_create,
        set_max_create,
    ) = _RANGE_SLOTS
    (
        range_end,
        limit,
        revision,
        sort_order,
        sort_target,
        serializable,
        keys_only,
        count_only,
        min_mod,
        max_mod,
        min_create,
        max_create,
    ) = _RANGE_DEFAULTS
    set_key(op, key)
    set_range_end(op, range_end)
    set_limit(op, limit)
    set_revision(op, revision)
    set_sort_order(op, sort_order)
    set_sort_target(op, sort_target)
    set_serializable(op, serializable)
    set_keys_only(op, keys_only)
    set_count_only(op, count_only)
    set_min_mod(op, min_mod)
    set_max_mod(op, max_mod)
    set_min_create(op, min_create)
    set_max_create(op, max_create)
    return op


def encode_range(op: Range) -> list[Any]:
    key = op.key
    if type(key) is bytes and 0 < len(key) <= key_bytes_max:
        options = _range_options(op)
        if options == _RANGE_DEFAULTS and tuple(map(type, options)) == _RANGE_DEFAULT_TYPES:
            return [RANGE_TAG, key]  # what `_flat` makes of it
    check_range(op)
    return _flat(RANGE_TAG, op, _RANGE_FIELDS)


def decode_range(raw: list[Any]) -> Range:
    op = Range(**_unflat(raw, Range, _RANGE_FIELDS))
    check_range(op)
    return op


def encode_put(op: Put) -> list[Any]:
    # The commit path's write, once per write on the node that takes it: a plain put (no
    # lease, no flags) is checked inline and built as `_flat` would build it, [15, key, value]
    # ([15, key] for an empty value). Anything else takes the general checks.
    key = op.key
    value = op.value
    if (
        type(key) is bytes
        and 0 < len(key) <= key_bytes_max
        and type(value) is bytes
        and len(value) <= value_bytes_max
        and op.lease == 0
        and type(op.lease) is int
        and op.prev_kv is False
        and op.ignore_value is False
        and op.ignore_lease is False
    ):
        return [PUT_TAG, key, value] if value else [PUT_TAG, key]
    check_put(op)
    return _flat(PUT_TAG, op, _PUT_FIELDS)


# A plain put built field by field through its slots: the commit path decodes one per write on
# every replica (and the RESP server builds one per SET), and this costs half of the frozen
# dataclass's __init__ (measured: 0.54 against 1.03 us on the 2-core machine). The fields are
# exactly Put's, in its order.
_PUT_SLOTS: Final = tuple(
    getattr(Put, name).__set__
    for name in ("key", "value", "lease", "prev_kv", "ignore_value", "ignore_lease")
)
assert tuple(Put.__slots__) == ("key", "value", "lease", "prev_kv", "ignore_value", "ignore_lease")


def plain_put(key: bytes, value: bytes) -> Put:
    """`Put(key=key, value=value)`, at half the cost. Checks nothing (encoding does)."""
    put: Put = _new_object(Put)
    set_key, set_value, set_lease, set_prev_kv, set_ignore_value, set_ignore_lease = _PUT_SLOTS
    set_key(put, key)
    set_value(put, value)
    set_lease(put, 0)
    set_prev_kv(put, False)
    set_ignore_value(put, False)
    set_ignore_lease(put, False)
    return put


def decode_put(raw: list[Any]) -> Put:
    # The commit path's write: a plain put is [15, key, value], checked inline.
    if len(raw) == 3:
        key = raw[1]
        value = raw[2]
        if (
            type(key) is bytes
            and 0 < len(key) <= key_bytes_max
            and type(value) is bytes
            and len(value) <= value_bytes_max
        ):
            return plain_put(key, value)
    op = Put(**_unflat(raw, Put, _PUT_FIELDS))
    check_put(op)
    return op


def encode_delete_range(op: DeleteRange) -> list[Any]:
    check_delete_range(op)
    return _flat(DELETE_RANGE_TAG, op, _DELETE_FIELDS)


def decode_delete_range(raw: list[Any]) -> DeleteRange:
    op = DeleteRange(**_unflat(raw, DeleteRange, _DELETE_FIELDS))
    check_delete_range(op)
    return op


def encode_compact(op: Compact) -> list[Any]:
    check_compact(op)
    return _flat(COMPACT_TAG, op, _COMPACT_FIELDS)


def decode_compact(raw: list[Any]) -> Compact:
    op = Compact(**_unflat(raw, Compact, _COMPACT_FIELDS))
    check_compact(op)
    return op


_OPERAND_NAMES: Final = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.VALUE: "value",
    CompareTarget.LEASE: "lease",
}


def encode_txn(op: Txn) -> list[Any]:
    check_txn(op, LOG_LIMITS)
    return _txn_raw(op)


def _txn_raw(op: Txn) -> list[Any]:
    raw: list[Any] = [
        TXN_TAG,
        [_compare_raw(compare) for compare in op.compare],
        [_op_raw(child) for child in op.success],
        [_op_raw(child) for child in op.failure],
    ]
    while len(raw) > 1 and not raw[-1]:
        raw.pop()
    return raw


def _compare_raw(compare: Compare) -> list[Any]:
    raw = [int(compare.target), int(compare.result), compare.key, compare.operand]
    if compare.range_end:
        raw.append(compare.range_end)
    return raw


def _op_raw(op: Any) -> list[Any]:
    kind = type(op)
    if kind is Range:
        return _flat(RANGE_TAG, op, _RANGE_FIELDS)
    if kind is Put:
        return _flat(PUT_TAG, op, _PUT_FIELDS)
    if kind is DeleteRange:
        return _flat(DELETE_RANGE_TAG, op, _DELETE_FIELDS)
    assert kind is Txn, kind  # check_txn refused anything else
    return _txn_raw(op)


def decode_txn(raw: list[Any]) -> Txn:
    op = _decode_txn(raw, "Txn", 0)
    check_txn(op, LOG_LIMITS)
    return op


def _decode_txn(raw: list[Any], where: str, depth: int) -> Txn:
    if depth >= txn_depth_max:
        raise _invalid(where, f"transactions nested deeper than {txn_depth_max} levels")
    if not 1 <= len(raw) <= 4:
        raise _invalid(where, f"expected 0 to 3 fields, got {len(raw) - 1}")
    lists = [*raw[1:], *([[]] * (4 - len(raw)))]
    for name, value in zip(("compare", "success", "failure"), lists, strict=True):
        if type(value) is not list:
            raise _invalid(f"{where}.{name}", "expected an array")
    compares = tuple(
        _decode_compare(item, f"{where}.compare[{i}]") for i, item in enumerate(lists[0])
    )
    success = tuple(
        _decode_op(item, f"{where}.success[{i}]", depth) for i, item in enumerate(lists[1])
    )
    failure = tuple(
        _decode_op(item, f"{where}.failure[{i}]", depth) for i, item in enumerate(lists[2])
    )
    return Txn(compare=compares, success=success, failure=failure)


def _decode_compare(raw: object, where: str) -> Compare:
    if type(raw) is not list or not 4 <= len(raw) <= 5:
        raise _invalid(where, "expected an array [target, result, key, operand, range_end?]")
    target, result, key, operand = raw[:4]
    range_end = raw[4] if len(raw) == 5 else b""
    if type(target) is not int or target not in CompareTarget._value2member_map_:
        raise _invalid(f"{where}.target", f"{target!r:.40} is not a compare target")
    if type(result) is not int or result not in CompareResult._value2member_map_:
        raise _invalid(f"{where}.result", f"{result!r:.40} is not a compare result")
    name = _OPERAND_NAMES[CompareTarget(target)]
    fields: dict[str, Any] = {name: operand}
    return Compare(
        key=key,
        target=CompareTarget(target),
        result=CompareResult(result),
        range_end=range_end,
        **fields,
    )


def _decode_op(raw: object, where: str, depth: int) -> Any:
    if type(raw) is not list or not raw or type(raw[0]) is not int:
        raise _invalid(where, "expected an array [tag, field, ...]")
    tag = raw[0]
    if tag == RANGE_TAG:
        return Range(**_unflat(raw, Range, _RANGE_FIELDS))
    if tag == PUT_TAG:
        return Put(**_unflat(raw, Put, _PUT_FIELDS))
    if tag == DELETE_RANGE_TAG:
        return DeleteRange(**_unflat(raw, DeleteRange, _DELETE_FIELDS))
    if tag == TXN_TAG:
        return _decode_txn(raw, where, depth + 1)
    raise _invalid(f"{where}.tag", f"{tag} is not a Range, Put, DeleteRange or Txn")


def _measured_already(op: Any) -> None:
    return None  # every check measures bytes values whatever the payload's size


CODECS: Final = (
    OpCodec(Range, RANGE_TAG, encode_range, decode_range, _measured_already, always(True)),
    OpCodec(Put, PUT_TAG, encode_put, decode_put, _measured_already, always(False)),
    OpCodec(
        DeleteRange,
        DELETE_RANGE_TAG,
        encode_delete_range,
        decode_delete_range,
        _measured_already,
        always(False),
    ),
    OpCodec(Txn, TXN_TAG, encode_txn, decode_txn, _measured_already, Txn.is_read_only),
    OpCodec(Compact, COMPACT_TAG, encode_compact, decode_compact, _measured_already, always(False)),
    *LEASE_CODECS,
)

# ---------------------------------------------------------------------------------------------
# Answers (the exactly-once table's cached answers, in snapshots)

RANGE_RESPONSE_TAG: Final = 11
PUT_RESPONSE_TAG: Final = 12
DELETE_RANGE_RESPONSE_TAG: Final = 13
TXN_RESPONSE_TAG: Final = 14
COMPACTION_RESPONSE_TAG: Final = 15
KV_ERROR_TAG: Final = 16


def kv_to_raw(kv: KeyValue) -> list[Any]:
    return list(kv)


def kv_from_raw(raw: object) -> KeyValue:
    if type(raw) is not list or len(raw) != 6:
        raise CorruptSnapshot(f"malformed key-value {raw!r:.80}")
    key, create, mod, version, value, lease = raw
    if type(key) is not bytes or not key or type(value) is not bytes:
        raise CorruptSnapshot(f"malformed key-value {raw!r:.80}")
    for number in (create, mod, version):
        if type(number) is not int or number < 0:
            raise CorruptSnapshot(f"malformed key-value {raw!r:.80}")
    if type(lease) is not int:
        raise CorruptSnapshot(f"malformed key-value {raw!r:.80}")
    return KeyValue(key, create, mod, version, value, lease)


def response_to_raw(response: Any) -> list[Any]:
    """A key-value answer as `[tag, field, ...]`."""
    match response:
        case RangeResponse():
            return [
                RANGE_RESPONSE_TAG,
                response.revision,
                [list(kv) for kv in response.kvs],
                response.more,
                response.count,
            ]
        case PutResponse():
            prev = None if response.prev_kv is None else list(response.prev_kv)
            return [PUT_RESPONSE_TAG, response.revision, prev]
        case DeleteRangeResponse():
            kvs = [list(kv) for kv in response.prev_kvs]
            return [DELETE_RANGE_RESPONSE_TAG, response.revision, response.deleted, kvs]
        case TxnResponse():
            answers = [response_to_raw(answer) for answer in response.responses]
            return [TXN_RESPONSE_TAG, response.revision, response.succeeded, answers]
        case CompactionResponse():
            return [COMPACTION_RESPONSE_TAG, response.revision]
        case KvError():
            return [
                KV_ERROR_TAG,
                response.code,
                int(response.grpc_code),
                response.message,
                response.detail,
            ]
    raw = lease_response_to_raw(response)
    if raw is not None:
        return raw
    raise TypeError(f"not a key-value answer: {response!r:.80}")


def _revision(value: object) -> int:
    if type(value) is not int or value < 0:
        raise CorruptSnapshot(f"malformed revision {value!r:.40}")
    return value


def _flag(value: object) -> bool:
    if type(value) is not bool:
        raise CorruptSnapshot(f"malformed flag {value!r:.40}")
    return value


def _kvs(value: object) -> tuple[KeyValue, ...]:
    if type(value) is not list:
        raise CorruptSnapshot("malformed key-value list")
    return tuple(kv_from_raw(kv) for kv in value)


def _range_from_raw(raw: list[Any]) -> RangeResponse:
    _, revision, kvs, more, count = raw
    return RangeResponse(
        revision=_revision(revision), kvs=_kvs(kvs), more=_flag(more), count=_revision(count)
    )


def _put_from_raw(raw: list[Any]) -> PutResponse:
    _, revision, prev = raw
    return PutResponse(
        revision=_revision(revision), prev_kv=None if prev is None else kv_from_raw(prev)
    )


def _delete_from_raw(raw: list[Any]) -> DeleteRangeResponse:
    _, revision, deleted, kvs = raw
    return DeleteRangeResponse(
        revision=_revision(revision), deleted=_revision(deleted), prev_kvs=_kvs(kvs)
    )


def _txn_from_raw(raw: list[Any]) -> TxnResponse:
    _, revision, succeeded, answers = raw
    if type(answers) is not list:
        raise CorruptSnapshot("malformed transaction answers")
    responses = tuple(response_from_raw(answer) for answer in answers)
    if any(type(answer) in (CompactionResponse, KvError) for answer in responses):
        raise CorruptSnapshot("a transaction's answer holds a compaction or an error")
    return TxnResponse(
        revision=_revision(revision),
        succeeded=_flag(succeeded),
        responses=responses,
    )


def _compaction_from_raw(raw: list[Any]) -> CompactionResponse:
    return CompactionResponse(revision=_revision(raw[1]))


def _error_from_raw(raw: list[Any]) -> KvError:
    _, code, grpc_code, message, detail = raw
    if code not in KV_ERROR_CODES or type(grpc_code) is not int:
        raise CorruptSnapshot(f"malformed key-value error {raw!r:.80}")
    if grpc_code not in GrpcCode._value2member_map_:
        raise CorruptSnapshot(f"unknown gRPC code {grpc_code}")
    if type(message) is not str or type(detail) is not str:
        raise CorruptSnapshot(f"malformed key-value error {raw!r:.80}")
    return KvError(code=code, grpc_code=GrpcCode(grpc_code), message=message, detail=detail)


_FROM_RAW: Final[dict[int, tuple[int, Callable[[list[Any]], Any]]]] = {
    RANGE_RESPONSE_TAG: (5, _range_from_raw),
    PUT_RESPONSE_TAG: (3, _put_from_raw),
    DELETE_RANGE_RESPONSE_TAG: (4, _delete_from_raw),
    TXN_RESPONSE_TAG: (4, _txn_from_raw),
    COMPACTION_RESPONSE_TAG: (2, _compaction_from_raw),
    KV_ERROR_TAG: (5, _error_from_raw),
    **LEASE_FROM_RAW,
}
RESPONSE_TAGS: Final = frozenset(_FROM_RAW)


def response_from_raw(raw: object) -> Any:
    """Inverse of `response_to_raw`; `CorruptSnapshot` for anything it did not write."""
    if type(raw) is not list or not raw or type(raw[0]) is not int or raw[0] not in _FROM_RAW:
        raise CorruptSnapshot(f"malformed key-value answer {raw!r:.80}")
    length, build = _FROM_RAW[raw[0]]
    if len(raw) != length:
        raise CorruptSnapshot(f"key-value answer with {len(raw) - 1} fields")
    try:
        return build(raw)
    except BadCommand as error:  # pragma: no cover - builders raise CorruptSnapshot only
        raise CorruptSnapshot(str(error)) from None
