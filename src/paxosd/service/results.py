"""Answers of the replicated state machine, their JSON shapes and their snapshot encoding.

Theory of operation: `apply` and `read` return one frozen dataclass per kind of answer (or None
for commands without a client: AdvanceTime, Noop). Results are values, so the exactly-once table
can cache them and snapshots can carry them; `to_json()` gives the HTTP API's JSON object for
each. Results share JSON values with the store instead of copying them (copies would dominate
the cost of a read), so callers must treat them, and what `to_json` returns, as read-only.

JSON shapes:

* `Value` / `NotFound`: {"key", "value", "revision"}; NotFound has value null, revision 0 (as in
  etcd, revision 0 means "no such key");
* `Written`: {"key", "revision"}; `Deleted`: {"key", "existed", "revision"};
* `CasResult`: {"succeeded", "key", "value", "revision"}, with the key's value and revision after
  the operation (on failure: the current ones, null/0 if absent, so the client can retry);
* `LockResult`: {"acquired", "owner", "fencing_token", "expires_in_ms"}, the lease left, in
  milliseconds of log time, when the answer was made;
  `Released`: {"released", "name", "owner"};
* `NameResult`: {"registered", "name", "owner"}; `DecisionResult`: {"id", "chosen"};
* `Error`: {"error": code, "message"}.

Snapshot encoding: `result_to_raw` / `result_from_raw` map a result to `[tag, field, ...]` and
back, validating every field by its annotation so a snapshot can never restore a malformed
cached answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .errors import BadCommand, CorruptSnapshot
from .kv import codec as kv_codec
from .kv.errors import KvError
from .kv.leases import LeaseResponse
from .kv.types import KvResponse
from .sql import codec as sql_codec
from .sql.types import SqlAnswer
from .values import JsonValue, check_value

# Error codes (Error.code).
NOT_HOLDER: Final = "not_holder"
STALE_REQUEST: Final = "stale_request"
REQUEST_MISMATCH: Final = "request_mismatch"
BAD_COMMAND: Final = "bad_command"


@dataclass(frozen=True, slots=True, kw_only=True)
class Value:
    """A key's value with its `revision` (mod_revision) and `create_revision`."""

    key: str
    value: JsonValue
    revision: int
    create_revision: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "revision": self.revision}


@dataclass(frozen=True, slots=True, kw_only=True)
class NotFound:
    """The key does not exist."""

    key: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": None, "revision": 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Written:
    """A Put took effect at store revision `revision`."""

    key: str
    revision: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "revision": self.revision}


@dataclass(frozen=True, slots=True, kw_only=True)
class Deleted:
    """A Delete: `revision` is the new store revision, or the unchanged one if not `existed`."""

    key: str
    existed: bool
    revision: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "existed": self.existed, "revision": self.revision}


@dataclass(frozen=True, slots=True, kw_only=True)
class CasResult:
    """A compare-and-swap: the key's value and mod revision after it (0 if absent)."""

    succeeded: bool
    key: str
    value: JsonValue
    revision: int

    def to_json(self) -> dict[str, Any]:
        return {
            "succeeded": self.succeeded,
            "key": self.key,
            "value": self.value,
            "revision": self.revision,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LockResult:
    """A lock's holder after an acquire/refresh, or at a status read.

    `acquired` is whether `owner` holds the lock now. A failed acquire names the current holder,
    its token and expiry; a status read of a free lock has owner/token/expiry None.
    """

    acquired: bool
    name: str
    owner: str | None
    fencing_token: int | None
    expires_in_ms: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "acquired": self.acquired,
            "owner": self.owner,
            "fencing_token": self.fencing_token,
            "expires_in_ms": self.expires_in_ms,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    """A release: `released` is False when the lock was already free (expired or released)."""

    released: bool
    name: str
    owner: str

    def to_json(self) -> dict[str, Any]:
        return {"released": self.released, "name": self.name, "owner": self.owner}


@dataclass(frozen=True, slots=True, kw_only=True)
class NameResult:
    """A name's owner: `registered` is whether the asking owner holds it (lookup: it exists)."""

    registered: bool
    name: str
    owner: str | None

    def to_json(self) -> dict[str, Any]:
        return {"registered": self.registered, "name": self.name, "owner": self.owner}


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionResult:
    """Decision `id`'s chosen value, or None if nothing was proposed yet."""

    id: str
    chosen: JsonValue

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "chosen": self.chosen}


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """A well-formed command that could not take effect; `code` is machine-readable."""

    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


Answer: TypeAlias = (
    Value
    | NotFound
    | Written
    | Deleted
    | CasResult
    | LockResult
    | Released
    | NameResult
    | DecisionResult
    | Error
)
Result: TypeAlias = Answer | KvResponse | LeaseResponse | KvError | SqlAnswer | None

# ---------------------------------------------------------------------------------------------
# Snapshot encoding. Tags are part of the snapshot format: never renumber, only append.
# Tags 11-21 are the key-value store's answers (kv/codec.py, kv/leases.py).

_TAGS: Final[dict[type, int]] = {
    Value: 1,
    NotFound: 2,
    Written: 3,
    Deleted: 4,
    CasResult: 5,
    LockResult: 6,
    Released: 7,
    NameResult: 8,
    DecisionResult: 9,
    Error: 10,
}


def _is_str(value: object) -> bool:
    return type(value) is str


def _is_int(value: object) -> bool:
    return type(value) is int and value >= 0


def _is_json(value: object) -> bool:
    try:
        check_value(value, "result")
    except BadCommand:
        return False
    return True


# Field validators by annotation text (annotations are strings under `from __future__`).
_FIELD_CHECKS: Final[dict[str, Callable[[object], bool]]] = {
    "str": _is_str,
    "str | None": lambda value: value is None or _is_str(value),
    "int": _is_int,
    "int | None": lambda value: value is None or _is_int(value),
    "bool": lambda value: type(value) is bool,
    "JsonValue": _is_json,
}
_LAYOUTS: Final[dict[int, tuple[type, tuple[tuple[str, Callable[[object], bool]], ...]]]] = {
    tag: (cls, tuple((f.name, _FIELD_CHECKS[str(f.type)]) for f in dataclasses.fields(cls)))
    for cls, tag in _TAGS.items()
}


def result_to_raw(result: Result) -> list[Any] | None:
    """`result` as a msgpack-ready list `[tag, field, ...]` (None stays None)."""
    if result is None:
        return None
    tag = _TAGS.get(type(result))
    if tag is None:
        if type(result) is SqlAnswer:
            return sql_codec.answer_to_raw(result)
        return kv_codec.response_to_raw(result)
    return [tag, *(getattr(result, name) for name, _ in _LAYOUTS[tag][1])]


def result_from_raw(raw: object) -> Result:
    """Inverse of `result_to_raw`; raises `CorruptSnapshot` for anything it did not produce."""
    if raw is None:
        return None
    if type(raw) is list and raw and type(raw[0]) is int and raw[0] in kv_codec.RESPONSE_TAGS:
        answer: Result = kv_codec.response_from_raw(raw)
        return answer
    if type(raw) is list and len(raw) > 1 and raw[0] == sql_codec.ANSWER_TAG:
        return sql_codec.answer_from_raw(raw)
    if type(raw) is not list or not raw or type(raw[0]) is not int or raw[0] not in _LAYOUTS:
        raise CorruptSnapshot(f"malformed cached result {raw!r:.80}")
    cls, layout = _LAYOUTS[raw[0]]
    if len(raw) != len(layout) + 1:
        raise CorruptSnapshot(f"cached {cls.__name__} has {len(raw) - 1} fields")
    fields: dict[str, Any] = {}
    for (name, ok), value in zip(layout, raw[1:], strict=True):
        if not ok(value):
            raise CorruptSnapshot(f"cached {cls.__name__}.{name} is malformed")
        fields[name] = value
    built: Result = cls(**fields)
    return built
