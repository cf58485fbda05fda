"""Checks of key-value requests that do not depend on the state, and the limits they enforce.

Theory of operation: etcd checks a request before proposing it (etcdserver/api/v3rpc/key.go)
and paxosd does the same, in `encode` (so an invalid request never reaches the log, and the
client gets etcd's error for it) and again in `decode` (so a payload that was never encoded
by this code cannot reach the store). The checks:

* types: keys, values and range ends are `bytes`, counters are int64, flags are bools, enums
  are one of their values;
* etcd's own: a key must not be empty; `ignore_value` with a value, or `ignore_lease` with a
  lease, is refused; a transaction has at most `txn_ops_max` compares, and at most that many
  operations per branch; a nested transaction gets what its parent left of the budget
  (etcd's checkTxnRequest); no key is written twice in one branch: two puts, or a put and a
  delete that covers it, are refused; a nested transaction's two branches may write the same
  key, since only one of them runs (etcd's checkIntervals). Two deletes may overlap, as in
  etcd 3.4: the second deletes what the first left. Unlike etcd 3.4, a put is also refused
  when a delete to the end of the keyspace (`range_end` b"\\0") covers it;
* paxosd's: sizes (`key_bytes_max`, `value_bytes_max`), and `txn_bytes_max`, the bytes of
  keys, values and range ends in a whole transaction.

The limits a node may configure (`KvLimits`) are applied where the node takes the request;
the state machine applies only the largest values they may take, which are the same on every
replica. Every error names the limit and the request's count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from paxosd.service.codec import key_bytes_max, value_bytes_max

from .errors import (
    DUPLICATE_KEY,
    EMPTY_KEY,
    INVALID_ARGUMENT,
    KEY_NOT_FOUND,
    LEASE_PROVIDED,
    REQUEST_TOO_LARGE,
    TOO_MANY_OPS,
    VALUE_PROVIDED,
    InvalidRequest,
    kv_error,
)
from .types import (
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    Put,
    Range,
    SortOrder,
    SortTarget,
    Txn,
    in_range,
)

int64_min: Final = -(2**63)
int64_max: Final = 2**63 - 1

# Defaults (etcd's --max-txn-ops is 128; its --max-request-bytes is 1.5 MiB).
txn_ops_max_default: Final = 128
txn_bytes_max_default: Final = 1536 * 1024
range_keys_max_default: Final = 100_000
range_bytes_max_default: Final = 32 * 1024 * 1024
history_revisions_max_default: Final = 100_000
history_bytes_max_default: Final = 64 * 1024 * 1024
# The largest values a node may configure: what the state machine itself enforces.
txn_ops_max_limit: Final = 10_000
txn_bytes_max_limit: Final = 2 * 1024 * 1024
# How deep transactions may nest (etcd has no bound; this keeps every walk of a transaction
# far from Python's recursion limit).
txn_depth_max: Final = 32


@dataclass(frozen=True, slots=True)
class KvLimits:
    """Limits on key-value requests a node takes, with units last (see docs/data-model.md).

    `txn_ops_max`: compares, and operations per branch, of one transaction (each nesting level
    counts against what its parent left); `txn_bytes_max`: bytes of keys, values and range ends
    in one transaction; `range_keys_max` / `range_bytes_max`: keys, and bytes of keys and
    values, in the answer to one read; `history_revisions_max` / `history_bytes_max`: how many
    revisions, and how many bytes of superseded versions, the store keeps for reads in the
    past before the leader compacts it (compaction.py).
    """

    txn_ops_max: int = txn_ops_max_default
    txn_bytes_max: int = txn_bytes_max_default
    range_keys_max: int = range_keys_max_default
    range_bytes_max: int = range_bytes_max_default
    history_revisions_max: int = history_revisions_max_default
    history_bytes_max: int = history_bytes_max_default

    def __post_init__(self) -> None:
        for name, value, high in (
            ("txn_ops_max", self.txn_ops_max, txn_ops_max_limit),
            ("txn_bytes_max", self.txn_bytes_max, txn_bytes_max_limit),
            ("range_keys_max", self.range_keys_max, 2**31),
            ("range_bytes_max", self.range_bytes_max, 2**40),
            ("history_revisions_max", self.history_revisions_max, 2**62),
            ("history_bytes_max", self.history_bytes_max, 2**50),
        ):
            if type(value) is not int or not 1 <= value <= high:
                raise ValueError(f"{name} must be an int in [1, {high}], got {value!r}")


DEFAULT_LIMITS: Final = KvLimits()
# What decode (the state machine) enforces: the most a node may be configured to accept.
LOG_LIMITS: Final = KvLimits(txn_ops_max=txn_ops_max_limit, txn_bytes_max=txn_bytes_max_limit)


def _invalid(where: str, reason: str) -> InvalidRequest:
    return InvalidRequest(where, kv_error(INVALID_ARGUMENT, f"{where}: {reason}"))


def check_bytes(value: object, where: str, limit: int) -> None:
    if type(value) is not bytes:
        raise _invalid(where, f"expected bytes, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidRequest(
            where,
            kv_error(REQUEST_TOO_LARGE, f"{where} is {len(value)} bytes, more than {limit}"),
        )


def check_key(value: object, where: str) -> None:
    check_bytes(value, where, key_bytes_max)
    if not value:
        raise InvalidRequest(where, kv_error(EMPTY_KEY, f"{where} is empty"))


def check_int64(value: object, where: str) -> None:
    if type(value) is not int:
        raise _invalid(where, f"expected int, got {type(value).__name__}")
    if not int64_min <= value <= int64_max:
        raise _invalid(where, f"{value} is outside the 64-bit range")


def check_bool(value: object, where: str) -> None:
    if type(value) is not bool:
        raise _invalid(where, f"expected bool, got {type(value).__name__}")


def check_enum(value: object, enum: Any, where: str) -> None:
    if type(value) is not int and not isinstance(value, enum):
        raise _invalid(where, f"expected one of {_names(enum)}, got {type(value).__name__}")
    if type(value) is int and value not in enum._value2member_map_:
        raise _invalid(where, f"{value} is not one of {_names(enum)}")


def _names(enum: Any) -> str:
    return ", ".join(f"{member.name} ({member.value})" for member in enum)


# ---------------------------------------------------------------------------------------------
# Ops


def check_range(op: Range, where: str = "Range") -> None:
    check_key(op.key, f"{where}.key")
    check_bytes(op.range_end, f"{where}.range_end", key_bytes_max)
    for name in ("limit", "revision"):
        check_int64(getattr(op, name), f"{where}.{name}")
    check_enum(op.sort_order, SortOrder, f"{where}.sort_order")
    check_enum(op.sort_target, SortTarget, f"{where}.sort_target")
    for name in ("serializable", "keys_only", "count_only"):
        check_bool(getattr(op, name), f"{where}.{name}")
    for name in ("min_mod_revision", "max_mod_revision"):
        check_int64(getattr(op, name), f"{where}.{name}")
    for name in ("min_create_revision", "max_create_revision"):
        check_int64(getattr(op, name), f"{where}.{name}")


def check_put(op: Put, where: str = "Put") -> None:
    check_key(op.key, f"{where}.key")
    check_bytes(op.value, f"{where}.value", value_bytes_max)
    check_int64(op.lease, f"{where}.lease")
    check_bool(op.prev_kv, f"{where}.prev_kv")
    check_bool(op.ignore_value, f"{where}.ignore_value")
    check_bool(op.ignore_lease, f"{where}.ignore_lease")
    if op.ignore_value and op.value:
        raise InvalidRequest(
            f"{where}.value",
            kv_error(VALUE_PROVIDED, f"{where} has ignore_value set and a value too"),
        )
    if op.ignore_lease and op.lease:
        raise InvalidRequest(
            f"{where}.lease",
            kv_error(LEASE_PROVIDED, f"{where} has ignore_lease set and lease {op.lease} too"),
        )


def check_delete_range(op: DeleteRange, where: str = "DeleteRange") -> None:
    check_key(op.key, f"{where}.key")
    check_bytes(op.range_end, f"{where}.range_end", key_bytes_max)
    check_bool(op.prev_kv, f"{where}.prev_kv")


def check_compact(op: Compact, where: str = "Compact") -> None:
    check_int64(op.revision, f"{where}.revision")
    check_bool(op.physical, f"{where}.physical")


_OPERANDS: Final = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.VALUE: "value",
    CompareTarget.LEASE: "lease",
}


def check_compare(compare: object, where: str) -> None:
    if type(compare) is not Compare:
        raise _invalid(where, f"expected a Compare, got {type(compare).__name__}")
    check_key(compare.key, f"{where}.key")
    check_bytes(compare.range_end, f"{where}.range_end", key_bytes_max)
    check_enum(compare.target, CompareTarget, f"{where}.target")
    check_enum(compare.result, CompareResult, f"{where}.result")
    operand = _OPERANDS[CompareTarget(compare.target)]
    for name in _OPERANDS.values():
        value = getattr(compare, name)
        if name == "value":
            check_bytes(value, f"{where}.value", value_bytes_max)
        else:
            check_int64(value, f"{where}.{name}")
        if name != operand and value:
            raise _invalid(
                f"{where}.{name}",
                f"is set, but the target is {CompareTarget(compare.target).name}: "
                f"set {operand} instead",
            )


def check_txn(op: Txn, limits: KvLimits = DEFAULT_LIMITS, where: str = "Txn") -> None:
    """Every check of a transaction: its ops, the operation budget, its bytes, and keys
    written twice in one branch."""
    size = _check_txn(op, limits.txn_ops_max, where, 0)
    if size > limits.txn_bytes_max:
        raise InvalidRequest(
            where,
            kv_error(
                REQUEST_TOO_LARGE,
                f"the transaction carries {size} bytes of keys, values and range ends, "
                f"more than txn_bytes_max = {limits.txn_bytes_max}",
            ),
        )
    for branch in ("success", "failure"):
        _check_intervals(getattr(op, branch), f"{where}.{branch}")


def _check_txn(op: Txn, budget: int, where: str, depth: int) -> int:
    """Check `op` against `budget` operations; the bytes it carries."""
    if depth >= txn_depth_max:
        raise _invalid(where, f"transactions nested deeper than {txn_depth_max} levels")
    for name in ("compare", "success", "failure"):
        if type(getattr(op, name)) is not tuple:
            raise _invalid(f"{where}.{name}", "expected a tuple")
    count = max(len(op.compare), len(op.success), len(op.failure))
    if count > budget:
        lists = ", ".join(
            f"{len(getattr(op, name))} {name}" for name in ("compare", "success", "failure")
        )
        limit = (
            f"txn_ops_max = {budget}"
            if depth == 0
            else f"the {budget} operations its parent left of txn_ops_max"
        )
        raise InvalidRequest(
            where,
            kv_error(
                TOO_MANY_OPS,
                f"{where} has {count} operations in one list ({lists}), more than {limit}",
            ),
        )
    size = 0
    for i, compare in enumerate(op.compare):
        check_compare(compare, f"{where}.compare[{i}]")
        size += len(compare.key) + len(compare.range_end) + len(compare.value)
    for name in ("success", "failure"):
        for i, child in enumerate(getattr(op, name)):
            size += _check_request_op(child, budget - count, f"{where}.{name}[{i}]", depth)
    return size


def _check_request_op(op: object, budget: int, where: str, depth: int) -> int:
    kind = type(op)
    if kind is Range:
        assert isinstance(op, Range)
        check_range(op, where)
        return len(op.key) + len(op.range_end)
    if kind is Put:
        assert isinstance(op, Put)
        check_put(op, where)
        return len(op.key) + len(op.value)
    if kind is DeleteRange:
        assert isinstance(op, DeleteRange)
        check_delete_range(op, where)
        return len(op.key) + len(op.range_end)
    if kind is Txn:
        assert isinstance(op, Txn)
        return _check_txn(op, budget, where, depth + 1)
    if op is None:
        # etcd's answer to an empty RequestOp.
        raise InvalidRequest(where, kv_error(KEY_NOT_FOUND, f"{where} is empty"))
    raise _invalid(where, f"{kind.__name__} is not a Range, Put, DeleteRange or Txn")


def _check_intervals(ops: tuple[Any, ...], where: str) -> tuple[set[bytes], list[DeleteRange]]:
    """etcd's checkIntervals: the keys this list of ops puts, and its deletes, refusing a key
    put twice or put and deleted by one run of the list."""
    deletes = [op for op in ops if type(op) is DeleteRange]
    puts: set[bytes] = set()

    def refuse(key: bytes, how: str) -> InvalidRequest:
        return InvalidRequest(
            where,
            kv_error(DUPLICATE_KEY, f"{where} {how} key {key!r}; write each key once"),
        )

    def deleted(key: bytes) -> bool:
        return any(in_range(key, d.key, d.range_end) for d in deletes)

    for i, op in enumerate(ops):
        if type(op) is not Txn:
            continue
        puts_then, deletes_then = _check_intervals(op.success, f"{where}[{i}].success")
        puts_else, deletes_else = _check_intervals(op.failure, f"{where}[{i}].failure")
        for key in sorted(puts_then):
            if key in puts:
                raise refuse(key, "puts twice")
            if deleted(key):
                raise refuse(key, "puts and deletes")
            puts.add(key)
        for key in sorted(puts_else):
            if key in puts and key not in puts_then:
                raise refuse(key, "puts twice")
            if deleted(key):
                raise refuse(key, "puts and deletes")
            puts.add(key)
        deletes += deletes_then + deletes_else
    for op in ops:
        if type(op) is not Put:
            continue
        if op.key in puts:
            raise refuse(op.key, "puts twice")
        if deleted(op.key):
            raise refuse(op.key, "puts and deletes")
        puts.add(op.key)
    return puts, deletes
