"""The key-value store's errors, as etcd reports them: a gRPC code and etcd's exact message.

Theory of operation: etcd's clients recognise an error by its gRPC status message, so where
etcd has an error for a condition paxosd answers with the same code and the same text
(etcdserver/api/v3rpc/rpctypes). etcd's texts name no numbers, and its users' most common
complaint about limits is an error that does not say which limit or by how much, so each
error also carries `detail`: paxosd's own sentence naming the limit, the request's count, the
oldest revision held. Interfaces show `message` where a client matches on it (the etcd API)
and `detail` where a person reads it.

Two ways an error arises:

* `KvError` is an answer: the state machine refused a well-formed request because of the
  state (a compacted revision, a missing key for `ignore_value`). Every replica reaches the
  same answer, so it is a value, cached like any answer.
* `InvalidRequest` is an exception: the request itself is invalid whatever the state (an
  empty key, too many operations, a key written twice in a transaction). It is a
  `BadCommand`, raised before the request reaches the log, carrying the same `KvError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from paxosd.service.errors import BadCommand


class GrpcCode(enum.IntEnum):
    """gRPC status codes (google.golang.org/grpc/codes)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class KvError:
    """A request the key-value store refused: `code` is paxosd's stable name for the error,
    `grpc_code` and `message` are etcd's, `detail` is paxosd's explanation."""

    code: str
    grpc_code: GrpcCode
    message: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "message": self.detail,
            "etcd_message": self.message,
            "grpc_code": int(self.grpc_code),
        }


class InvalidRequest(BadCommand):
    """A request that is invalid whatever the state; `error` is how etcd would refuse it."""

    def __init__(self, field: str, error: KvError) -> None:
        super().__init__(field, error.detail)
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.error))


# The errors, by paxosd code: (gRPC code, etcd's message). etcd has no error for an answer
# larger than a server-side limit (its answers are bounded only by gRPC's message size), nor
# for a malformed field it would have refused at the protocol level; those are paxosd's own.
_ETCD: Final[dict[str, tuple[GrpcCode, str]]] = {
    "empty_key": (GrpcCode.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    "key_not_found": (GrpcCode.INVALID_ARGUMENT, "etcdserver: key not found"),
    "value_provided": (GrpcCode.INVALID_ARGUMENT, "etcdserver: value is provided"),
    "lease_provided": (GrpcCode.INVALID_ARGUMENT, "etcdserver: lease is provided"),
    "too_many_ops": (
        GrpcCode.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
    ),
    "duplicate_key": (
        GrpcCode.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
    ),
    "request_too_large": (GrpcCode.INVALID_ARGUMENT, "etcdserver: request is too large"),
    "compacted": (
        GrpcCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision has been compacted",
    ),
    "future_revision": (
        GrpcCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    ),
    "lease_not_found": (GrpcCode.NOT_FOUND, "etcdserver: requested lease not found"),
    "lease_exist": (GrpcCode.FAILED_PRECONDITION, "etcdserver: lease already exists"),
    "lease_ttl_too_large": (GrpcCode.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    "answer_too_large": (
        GrpcCode.RESOURCE_EXHAUSTED,
        "paxosd: the answer is larger than the server's limit",
    ),
    "invalid_argument": (GrpcCode.INVALID_ARGUMENT, "paxosd: invalid argument"),
}

EMPTY_KEY: Final = "empty_key"
KEY_NOT_FOUND: Final = "key_not_found"
VALUE_PROVIDED: Final = "value_provided"
LEASE_PROVIDED: Final = "lease_provided"
TOO_MANY_OPS: Final = "too_many_ops"
DUPLICATE_KEY: Final = "duplicate_key"
REQUEST_TOO_LARGE: Final = "request_too_large"
COMPACTED: Final = "compacted"
FUTURE_REVISION: Final = "future_revision"
LEASE_NOT_FOUND: Final = "lease_not_found"
LEASE_EXIST: Final = "lease_exist"
LEASE_TTL_TOO_LARGE: Final = "lease_ttl_too_large"
ANSWER_TOO_LARGE: Final = "answer_too_large"
INVALID_ARGUMENT: Final = "invalid_argument"

KV_ERROR_CODES: Final = frozenset(_ETCD)


def kv_error(code: str, detail: str) -> KvError:
    """The error `code` (one of the constants above) with paxosd's `detail`."""
    grpc_code, message = _ETCD[code]
    if code == INVALID_ARGUMENT:
        message = f"paxosd: {detail}"  # no etcd text to match: the detail is the message
    return KvError(code=code, grpc_code=grpc_code, message=message, detail=detail)


def compacted(revision: int, compact_revision: int) -> KvError:
    return kv_error(
        COMPACTED,
        f"revision {revision} has been compacted: the oldest revision held is "
        f"{compact_revision}; read at {compact_revision} or later",
    )


def future_revision(revision: int, current: int) -> KvError:
    return kv_error(
        FUTURE_REVISION,
        f"revision {revision} is in the future: the store is at revision {current}",
    )


def key_not_found(key: bytes, flag: str) -> KvError:
    return kv_error(KEY_NOT_FOUND, f"{flag} needs the key to exist, and key {key!r} does not exist")


def lease_not_found(lease: int) -> KvError:
    return kv_error(
        LEASE_NOT_FOUND,
        f"lease {lease} does not exist (never granted, revoked, or expired in log time)",
    )


def lease_exist(lease: int) -> KvError:
    return kv_error(LEASE_EXIST, f"lease {lease} exists already: ask for another id, or 0")


def answer_too_large(what: str, count: int, limit_name: str, limit: int) -> KvError:
    return kv_error(
        ANSWER_TOO_LARGE,
        f"the answer would hold {count} {what}, more than {limit_name} = {limit}; "
        "ask for less (a limit, a smaller range, keys_only or count_only)",
    )
