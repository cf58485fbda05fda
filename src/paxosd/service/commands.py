"""Commands of the replicated state machine and their wire encoding.

Theory of operation: the Multi-Paxos engine chooses opaque `bytes` per slot; this module is the
only place that turns commands into those bytes and back. Every replica decodes the same bytes
with the same code, so decoding is part of the deterministic state machine: it must accept and
reject exactly the same inputs everywhere and it may raise nothing but `BadCommand`.

What goes into the log is one of:

* `Request(client_id, seq, op)`: a client operation with exactly-once identity (sessions.py);
* a bare client operation (`Put(...)`, ...): applied with no deduplication, so a retried bare
  write may apply twice; meant for tools and tests, clients should always send a `Request`;
* `AdvanceTime(now_ms)`: proposed by the leader; the only clock leases ever see;
* `Noop()`: encoded as the empty payload `b""`, which the engine also uses for filler slots.

Wire format (msgpack, positional, no field names): an op is `[tag, field, ...]` with the small
integer tags its namespace's codecs declare (registry.py lists who owns which); a request is
`[0, client_id, seq, [tag, field, ...]]`. Tags are the format's version: new commands get new
tags, existing tags never change meaning.

Validation is shared by `encode` (so a bad command is refused before it reaches the log) and
`decode` (so a bad payload in the log becomes a deterministic `Error` result on every replica
instead of an exception). `validate(op, limits)` adds the limits a node may configure
(kv/checks.py `KvLimits`), which the log itself does not enforce. Reads are told from writes
by the operation itself: `is_read(op)` (a key-value transaction reads if none of its
operations writes).

Cost: decoding is O(payload size); a small put request decodes in 1.5-2.5 microseconds. Sizes
of JSON values are only measured (by re-packing) when the whole payload exceeds
`value_bytes_max`, because a value can never be larger than the payload that carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .codec import (
    OpCodec,
    check_owner,
    check_seq,
    check_time,
    command_bytes_max,
    key_bytes_max,
    owner_bytes_max,
    seq_max,
    time_ms_max,
    value_bytes_max,
)
from .coordination import (
    DecisionGet,
    DecisionPropose,
    LockAcquire,
    LockRefresh,
    LockRelease,
    LockStatus,
    NameLookup,
    NameRegister,
    ttl_ms_max,
    ttl_ms_min,
)
from .errors import BadCommand
from .kv.checks import DEFAULT_LIMITS, KvLimits, check_txn
from .kv.codec import encode_range
from .kv.legacy import Cas, Delete, Get, Put
from .kv.types import Range, Txn
from .registry import NAMESPACES
from .values import pack, unpack

# ---------------------------------------------------------------------------------------------
# The router's own commands and the client envelope


@dataclass(frozen=True, slots=True, kw_only=True)
class AdvanceTime:
    """Log time is now `now_ms` (ignored unless it moves time forward). Leader-proposed."""

    now_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Noop:
    """Does nothing. Encodes as b"", the engine's filler payload."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A client op with exactly-once identity: `seq` increases per `client_id` (gaps allowed)."""

    client_id: str
    seq: int
    op: Any


ReadOp: TypeAlias = Get | LockStatus | NameLookup | DecisionGet
WriteOp: TypeAlias = (
    Put | Delete | Cas | LockAcquire | LockRefresh | LockRelease | NameRegister | DecisionPropose
)
Op: TypeAlias = ReadOp | WriteOp
Command: TypeAlias = Request | AdvanceTime | Noop | Any

# ---------------------------------------------------------------------------------------------
# The table of every namespace's codecs

_REQUEST_TAG: Final = 0
_TIME_TAG: Final = 13


def _decode_time(raw: list[Any]) -> AdvanceTime:
    if len(raw) != 2:
        raise BadCommand("AdvanceTime", f"expected 1 fields, got {len(raw) - 1}")
    check_time(raw[1], "AdvanceTime.now_ms")
    return AdvanceTime(now_ms=raw[1])


def _encode_time(command: AdvanceTime) -> list[Any]:
    check_time(command.now_ms, "AdvanceTime.now_ms")
    return [_TIME_TAG, command.now_ms]


def _build_tables() -> tuple[dict[type, OpCodec], dict[int, OpCodec]]:
    by_class: dict[type, OpCodec] = {}
    by_tag: dict[int, OpCodec] = {}
    for namespace in NAMESPACES:
        for codec in namespace.codecs:
            assert codec.tag not in by_tag, f"tag {codec.tag} claimed twice"
            assert codec.tag not in (_REQUEST_TAG, _TIME_TAG), f"tag {codec.tag} is the router's"
            assert codec.cls not in by_class, f"{codec.cls.__name__} registered twice"
            by_class[codec.cls] = codec
            by_tag[codec.tag] = codec
    return by_class, by_tag


# Client ops only: the router's own commands (AdvanceTime) are handled apart.
_BY_CLASS, _BY_TAG = _build_tables()


def is_read(op: object) -> bool:
    """Whether `op` only reads: then it is answered by `read` (after read-index), not through
    the log. False for anything that is not a client op."""
    codec = _BY_CLASS.get(type(op))
    return codec is not None and codec.is_read(op)


def validate(command: object, limits: KvLimits = DEFAULT_LIMITS) -> None:
    """Raise `BadCommand` unless `command` is a valid command object (sizes included) within
    `limits` (what a node accepts; see kv/checks.py)."""
    op = command.op if isinstance(command, Request) else command
    if type(op) is Txn:
        check_txn(op, limits)
    elif type(command) is Range:
        # A read, validated by the node that takes it and by the state machine that answers
        # it: its encoding's checks are all it needs (it carries no value to measure, and
        # its keys cannot make a payload too large), without packing it.
        encode_range(command)
        return
    encode(command)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(command: object) -> bytes:
    """The log payload for `command`. Raises `BadCommand` for anything `decode` would refuse."""
    kind = type(command)
    if kind is Noop:
        return b""
    if kind is Request:
        request: Any = command
        # Every write passes here once, on the node that takes it: the usual client id and
        # seq are checked inline, anything else by the checks that say what is wrong.
        client_id = request.client_id
        if type(client_id) is not str or not client_id or len(client_id) * 4 > owner_bytes_max:
            check_owner(client_id, "Request.client_id")
        seq = request.seq
        if type(seq) is not int or not 0 <= seq <= seq_max:
            check_seq(seq, "Request.seq")
        inner: object = request.op
        codec = _BY_CLASS.get(type(inner))
        if codec is None:
            raise BadCommand("Request.op", f"{type(inner).__name__} is not a client op")
        raw: list[Any] = [_REQUEST_TAG, client_id, seq, codec.encode(inner)]
    elif kind is AdvanceTime:
        assert isinstance(command, AdvanceTime)
        return _pack(_encode_time(command), "AdvanceTime")
    else:
        codec = _BY_CLASS.get(kind)
        if codec is None:
            raise BadCommand("command", f"{kind.__name__} is not a command")
        raw = codec.encode(command)
        inner = command
    try:
        data = pack(raw)
    except (ValueError, TypeError, OverflowError):
        data = _pack(raw, codec.cls.__name__)  # raises, naming the op
    if len(data) > value_bytes_max:
        codec.measure(inner)
        if len(data) > command_bytes_max:
            raise BadCommand("payload", f"{len(data)} bytes, more than {command_bytes_max}")
    return data


def _pack(raw: list[Any], name: str) -> bytes:
    try:
        return pack(raw)
    except (ValueError, TypeError, OverflowError) as exc:
        # Checked fields cannot fail to pack except through a lone surrogate in a value string.
        raise BadCommand(name, f"cannot be encoded: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Decoding

_NOOP: Final = Noop()


def decode(data: bytes) -> Command:
    """The command in a log payload. Raises `BadCommand` and nothing else, whatever `data` is."""
    client_id, seq, command = decode_parts(data)
    if client_id is None:
        return command
    return Request(client_id=client_id, seq=seq, op=command)


def decode_parts(data: bytes) -> tuple[str | None, int, Any]:
    """`decode`, for the state machine's apply: a `Request` as (client_id, seq, op), without
    building the `Request` object (which costs as much as the rest of decoding a plain put);
    any other command as (None, 0, command). Raises `BadCommand` and nothing else."""
    if type(data) is not bytes and not isinstance(data, bytearray | memoryview):
        raise BadCommand("payload", f"expected bytes, got {type(data).__name__}")
    if not data:
        return None, 0, _NOOP
    if len(data) > command_bytes_max:
        raise BadCommand("payload", f"{len(data)} bytes, more than {command_bytes_max}")
    try:
        raw = unpack(data)
    except Exception as exc:  # msgpack raises several unrelated types; all mean "not msgpack".
        raise BadCommand("payload", f"not a msgpack document ({type(exc).__name__})") from None
    try:
        if type(raw) is list and raw and type(raw[0]) is int:
            if raw[0] == _REQUEST_TAG:
                return _decode_request(raw, len(data) > value_bytes_max)
            if raw[0] == _TIME_TAG:
                return None, 0, _decode_time(raw)
        return None, 0, _decode_op(raw, "command", len(data) > value_bytes_max)
    except BadCommand:
        raise
    except Exception as exc:
        # Unreachable by design (the fuzz tests look for this message); kept because the engine
        # must never see anything but BadCommand from decode.
        raise BadCommand("payload", f"internal validation error: {exc!r}") from None


def _decode_request(raw: list[Any], measure: bool) -> tuple[str, int, Any]:
    if len(raw) != 4:
        raise BadCommand("Request", f"expected 3 fields, got {len(raw) - 1}")
    client_id = raw[1]
    seq = raw[2]
    # Inline first, as `encode` does: every write decodes here on every replica.
    if type(client_id) is not str or not client_id or len(client_id) * 4 > owner_bytes_max:
        check_owner(client_id, "Request.client_id")
    if type(seq) is not int or not 0 <= seq <= seq_max:
        check_seq(seq, "Request.seq")
    return client_id, seq, _decode_op(raw[3], "Request.op", measure)


def _decode_op(raw: object, where: str, measure: bool) -> Any:
    if type(raw) is not list or not raw:
        raise BadCommand(where, "expected a non-empty array [tag, field, ...]")
    tag = raw[0]
    # type() check first: True == 1 would otherwise select tag 1.
    codec = _BY_TAG.get(tag) if type(tag) is int else None
    if codec is None:
        raise BadCommand(f"{where}.tag", f"unknown command tag {tag!r}")
    op = codec.decode(raw)
    if measure:
        codec.measure(op)
    return op


__all__ = [
    "AdvanceTime",
    "Cas",
    "Command",
    "DecisionGet",
    "DecisionPropose",
    "Delete",
    "Get",
    "LockAcquire",
    "LockRefresh",
    "LockRelease",
    "LockStatus",
    "NameLookup",
    "NameRegister",
    "Noop",
    "Op",
    "Put",
    "ReadOp",
    "Request",
    "WriteOp",
    "command_bytes_max",
    "decode",
    "decode_parts",
    "encode",
    "is_read",
    "key_bytes_max",
    "owner_bytes_max",
    "seq_max",
    "time_ms_max",
    "ttl_ms_max",
    "ttl_ms_min",
    "validate",
    "value_bytes_max",
]
