"""The key-value store over many keys, for both clients: ranges, deletes of a range,
transactions and compaction - their requests, their answers, and the builders of a
transaction. No I/O: `Client` and `AsyncClient` send what this builds.

Transactions, in etcd's terms::

    from paxosd.client.kv import create, get, put, value

    result = (
        client.txn()
        .compare(create("jobs/7") == 0)               # nobody took the job yet
        .success(put("jobs/7", {"owner": "w1"}))
        .failure(get("jobs/7"))
        .commit()                                     # await ... .commit() with AsyncClient
    )
    result.succeeded, result.revision, result.responses[0]

Compare targets: `value`, `version`, `create`, `mod`, `lease` of a key (or of every key of a
`prefix`, or of [`start`, `end`)), compared with `==`, `!=`, `<`, `>`. Operations: `put`,
`get` (a range, with every option of `Client.range`), `delete`, and `Txn()` for a nested
transaction. Values are JSON values, or `bytes` stored as they are.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from paxosd.client.core import BadRequest, KeyValue, stored_value

__all__ = [
    "Comparison",
    "DeleteResult",
    "PutResult",
    "RangeResult",
    "Target",
    "Txn",
    "TxnResult",
    "create",
    "delete",
    "get",
    "lease",
    "mod",
    "put",
    "range_query",
    "selector",
    "to_key_value",
    "to_range",
    "to_txn",
    "value",
    "version",
]

_SORTS = ("key", "version", "create", "mod", "value")
_ORDERS = ("ascend", "descend")


# ---------------------------------------------------------------------------------------------
# Answers


@dataclass(frozen=True, slots=True)
class RangeResult:
    """The keys a range found (in the order asked), how many matched (`count`, before the
    limit), whether the limit cut some (`more`), and the store's revision."""

    kvs: list[KeyValue]
    count: int
    more: bool
    revision: int


@dataclass(frozen=True, slots=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    deleted: int
    revision: int
    prev_kvs: list[KeyValue] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Which list ran (`succeeded`: the success list), the answer of each of its operations
    in order (RangeResult, PutResult, DeleteResult, TxnResult), the store's revision after."""

    succeeded: bool
    revision: int
    responses: list[Any]


def to_key_value(data: dict[str, Any]) -> KeyValue:
    key = (
        data["key"]
        if "key" in data
        else base64.b64decode(data["key_base64"]).decode("utf-8", "backslashreplace")
    )
    return KeyValue(
        key,
        stored_value(data),
        int(data.get("mod_revision", 0)),
        create_revision=int(data.get("create_revision", 0)),
        version=int(data.get("version", 0)),
        lease=int(data.get("lease", 0)),
    )


def to_range(data: dict[str, Any]) -> RangeResult:
    return RangeResult(
        [to_key_value(kv) for kv in data.get("kvs", [])],
        int(data.get("count", 0)),
        bool(data.get("more")),
        int(data.get("revision", 0)),
    )


def to_delete(data: dict[str, Any]) -> DeleteResult:
    return DeleteResult(
        int(data.get("deleted", 0)),
        int(data.get("revision", 0)),
        [to_key_value(kv) for kv in data.get("prev_kvs", [])],
    )


def to_txn(data: dict[str, Any]) -> TxnResult:
    responses: list[Any] = []
    for item in data.get("responses", []):
        [(kind, answer)] = item.items()
        if kind == "range":
            responses.append(to_range(answer))
        elif kind == "put":
            prev = answer.get("prev_kv")
            responses.append(
                PutResult(int(answer["revision"]), to_key_value(prev) if prev else None)
            )
        elif kind == "delete":
            responses.append(to_delete(answer))
        else:
            responses.append(to_txn(answer))
    return TxnResult(bool(data.get("succeeded")), int(data.get("revision", 0)), responses)


# ---------------------------------------------------------------------------------------------
# Which keys, and a range's options


def selector(
    key: str | None = None,
    *,
    prefix: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, str]:
    """One of key, prefix, start (with an optional end), as the API names them."""
    given = {name: text for name, text in (("key", key), ("prefix", prefix), ("start", start))
             if text is not None}  # fmt: skip
    if len(given) != 1:
        raise BadRequest("name the keys with one of key, prefix and start (with end)")
    for name, text in given.items():
        if not isinstance(text, str):
            raise BadRequest(f"{name} must be a str, got {type(text).__name__}")
    if end is not None:
        if start is None:
            raise BadRequest("end goes with start")
        given["end"] = end
    return given


def range_query(
    *,
    limit: int = 0,
    revision: int = 0,
    sort_by: str = "key",
    order: str | None = None,
    keys_only: bool = False,
    count_only: bool = False,
    serializable: bool = False,
    min_mod_revision: int = 0,
    max_mod_revision: int = 0,
    min_create_revision: int = 0,
    max_create_revision: int = 0,
) -> dict[str, Any]:
    """A range's options, as the API names them (defaults left out)."""
    sort = sort_by.lower()
    if sort not in _SORTS:
        raise BadRequest(f"sort_by must be one of {', '.join(_SORTS)}, got {sort_by!r}")
    if order is not None and order.lower() not in _ORDERS:
        raise BadRequest(f"order must be ascend or descend, got {order!r}")
    out: dict[str, Any] = {}
    for name, number in (
        ("limit", limit),
        ("revision", revision),
        ("min_mod_revision", min_mod_revision),
        ("max_mod_revision", max_mod_revision),
        ("min_create_revision", min_create_revision),
        ("max_create_revision", max_create_revision),
    ):
        if type(number) is not int:
            raise BadRequest(f"{name} must be an int, got {type(number).__name__}")
        if number:
            out[name] = number
    if sort != "key":
        out["sort"] = sort
    if order is not None:
        out["order"] = order.lower()
    for name, flag in (
        ("keys_only", keys_only),
        ("count_only", count_only),
        ("serializable", serializable),
    ):
        if flag:
            out[name] = True
    return out


def stored(value: Any) -> dict[str, Any]:
    """A value as a request carries it: bytes raw (base64), anything else as JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"value_base64": base64.b64encode(bytes(value)).decode("ascii")}
    return {"value": value}


# ---------------------------------------------------------------------------------------------
# Transactions


@dataclass(frozen=True, slots=True, eq=False)
class Comparison:
    """One condition of a transaction, as the API takes it."""

    body: dict[str, Any]


class Target:
    """What a compare reads of a key (or of every key of a range); compare it with ==, !=,
    <, > to make a `Comparison`."""

    __slots__ = ("keys", "operand", "target")
    __hash__ = None  # type: ignore[assignment]  # == builds a Comparison, not a bool

    def __init__(self, target: str, operand: str, keys: dict[str, str]) -> None:
        self.target = target
        self.operand = operand
        self.keys = keys

    def _compare(self, result: str, other: Any) -> Comparison:
        if self.operand == "value":
            operand = stored(other)
        else:
            if type(other) is not int:
                raise BadRequest(f"{self.target}(...) compares with an int, got {other!r}")
            operand = {self.operand: other}
        return Comparison({**self.keys, "target": self.target, "result": result, **operand})

    def __eq__(self, other: Any) -> Comparison:  # type: ignore[override]
        return self._compare("=", other)

    def __ne__(self, other: Any) -> Comparison:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: Any) -> Comparison:
        return self._compare("<", other)

    def __gt__(self, other: Any) -> Comparison:
        return self._compare(">", other)


def _target(target: str, operand: str) -> Any:
    def make(
        key: str | None = None,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> Target:
        return Target(target, operand, selector(key, prefix=prefix, start=start, end=end))

    make.__name__ = target
    make.__doc__ = f"The {target} of a key (or of every key of a prefix or range) to compare."
    return make


value = _target("value", "value")
version = _target("version", "version")
create = _target("create", "create_revision")
mod = _target("mod", "mod_revision")
lease = _target("lease", "lease")


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a transaction's list."""

    body: dict[str, Any]


def put(key: str, value: Any, *, prev_kv: bool = False, lease: int = 0) -> Operation:
    body: dict[str, Any] = {"key": key, **stored(value)}
    if prev_kv:
        body["prev_kv"] = True
    if lease:
        body["lease"] = lease
    return Operation({"put": body})


def get(
    key: str | None = None,
    *,
    prefix: str | None = None,
    start: str | None = None,
    end: str | None = None,
    **options: Any,
) -> Operation:
    """A range in a transaction: the keys, and any option of `Client.range`."""
    keys = selector(key, prefix=prefix, start=start, end=end)
    return Operation({"range": {**keys, **range_query(**options)}})


def delete(
    key: str | None = None,
    *,
    prefix: str | None = None,
    start: str | None = None,
    end: str | None = None,
    prev_kv: bool = False,
) -> Operation:
    body: dict[str, Any] = selector(key, prefix=prefix, start=start, end=end)
    if prev_kv:
        body["prev_kv"] = True
    return Operation({"delete": body})


T = TypeVar("T", bound="Txn")


class Txn:
    """A transaction being built: `.compare(...)`, `.success(...)`, `.failure(...)`, each
    adding to its list. A `Txn` is also an operation, for a nested transaction."""

    def __init__(self) -> None:
        self.compares: list[Comparison] = []
        self.successes: list[Operation | Txn] = []
        self.failures: list[Operation | Txn] = []

    def compare(self: T, *comparisons: Comparison) -> T:
        for comparison in comparisons:
            if not isinstance(comparison, Comparison):
                raise BadRequest(
                    f"compare() takes comparisons such as version('k') == 0, got {comparison!r}"
                )
        self.compares.extend(comparisons)
        return self

    def success(self: T, *operations: Operation | Txn) -> T:
        self.successes.extend(_operations(operations))
        return self

    def failure(self: T, *operations: Operation | Txn) -> T:
        self.failures.extend(_operations(operations))
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "compare": [comparison.body for comparison in self.compares],
            "success": [_op_json(op) for op in self.successes],
            "failure": [_op_json(op) for op in self.failures],
        }


def _operations(operations: Iterable[Any]) -> list[Operation | Txn]:
    out = []
    for operation in operations:
        if not isinstance(operation, Operation | Txn):
            raise BadRequest(
                f"a transaction's list takes put(), get(), delete() or a Txn, got {operation!r}"
            )
        out.append(operation)
    return out


def _op_json(operation: Operation | Txn) -> dict[str, Any]:
    if isinstance(operation, Txn):
        return {"txn": operation.to_json()}
    return operation.body


R = TypeVar("R")


class BoundTxn(Txn, Generic[R]):
    """A transaction built on a client: `.commit()` sends it (for `AsyncClient`, await it).
    With `request` (/v1/txn's JSON), what it builds is added to that."""

    def __init__(self, send: Any, request: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._send = send
        self._request = request or {}

    def to_json(self) -> dict[str, Any]:
        built = super().to_json()
        return {
            name: [*self._request.get(name, []), *built[name]]
            for name in ("compare", "success", "failure")
        } | {name: value for name, value in self._request.items()
             if name not in ("compare", "success", "failure")}  # fmt: skip

    def commit(self) -> R:
        result: R = self._send(self.to_json())
        return result
