"""Commands of the replicated state machine and their wire encoding.

Theory of operation: the Multi-Paxos engine chooses opaque `bytes` per slot; this module is the
only place that turns commands into those bytes and back. Every replica decodes the same bytes
with the same code, so decoding is part of the deterministic state machine: it must accept and
reject exactly the same inputs everywhere and it may raise nothing but `BadCommand`.

What goes into the log is one of:

* `Request(client_id, seq, op)`: a client operation with exactly-once identity (see machine.py);
* a bare client operation (`Put(...)`, ...): applied with no deduplication, so a retried bare
  write may apply twice; meant for tools and tests, clients should always send a `Request`;
* `AdvanceTime(now_ms)`: proposed by the leader; the only clock lock leases ever see;
* `Noop()`: encoded as the empty payload `b""`, which the engine also uses for filler slots.

Wire format (msgpack, positional, no field names): an op is `[tag, field, ...]` with the small
integer tags in `_SPECS`; a request is `[0, client_id, seq, [tag, field, ...]]`. Tags are the
format's version: new commands get new tags, existing tags never change meaning.

Validation is shared by `encode` (so a bad command is refused before it reaches the log) and
`decode` (so a bad payload in the log becomes a deterministic `Error` result on every replica
instead of an exception). Limits, with units last:

* `key_bytes_max`: KV keys, lock names, registry names and decision ids, UTF-8 bytes, non-empty;
* `owner_bytes_max`: lock owners, name owners and client ids, UTF-8 bytes, non-empty;
* `value_bytes_max`: each JSON value (Put.value, Cas.expected/value, DecisionPropose.value),
  measured as its msgpack encoding;
* `ttl_ms_min`..`ttl_ms_max`: lock lease length. Out-of-range TTLs are a `BadCommand` at
  encode/decode (never an apply-time Error), so the HTTP layer can answer 400 before proposing.

Cost: decoding is O(payload size); a small Put request decodes in 1.5-2.5 microseconds. Sizes of
values are only measured (by re-packing) when the whole payload exceeds `value_bytes_max`,
because a value can never be larger than the payload that carries it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .errors import BadCommand
from .values import JsonValue, check_value, encoded_size, pack, unpack

key_bytes_max: Final = 1024
owner_bytes_max: Final = 256
value_bytes_max: Final = 1024 * 1024
ttl_ms_min: Final = 100
ttl_ms_max: Final = 3_600_000
# Upper bound for seq and for log time; well inside msgpack's int64 range.
seq_max: Final = 2**63 - 1
time_ms_max: Final = 2**62
# A Cas carries two values plus a key; anything bigger is refused before msgpack parses it.
command_bytes_max: Final = 2 * value_bytes_max + 64 * 1024

# ---------------------------------------------------------------------------------------------
# Key-value store


@dataclass(frozen=True, slots=True, kw_only=True)
class Get:
    """Read one key. Answers `Value` or `NotFound`."""

    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Put:
    """Set a key. Answers `Written` with the new revision."""

    key: str
    value: JsonValue


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete:
    """Remove a key. Answers `Deleted`; deleting a missing key succeeds with existed=False."""

    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Cas:
    """Compare-and-swap: set `value` if the key currently holds `expected` (JSON equality).

    `expected=None` means "the key must not exist" (so a key holding JSON null can only be
    replaced by Put or Delete). Answers `CasResult`.
    """

    key: str
    expected: JsonValue
    value: JsonValue


# ---------------------------------------------------------------------------------------------
# Locks (leases on log time)


@dataclass(frozen=True, slots=True, kw_only=True)
class LockAcquire:
    """Take the lock for `ttl_ms` of log time, or refresh it if `owner` already holds it."""

    name: str
    owner: str
    ttl_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRefresh:
    """Extend a held lock to now + `ttl_ms`; Error("not_holder") unless `owner` holds it."""

    name: str
    owner: str
    ttl_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRelease:
    """Free a held lock; Error("not_holder") unless `owner` holds or last held it."""

    name: str
    owner: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LockStatus:
    """Read who holds a lock at the current log time. Answers `LockResult`."""

    name: str


# ---------------------------------------------------------------------------------------------
# Name registry (write-once names)


@dataclass(frozen=True, slots=True, kw_only=True)
class NameRegister:
    """Claim a name forever. The first owner wins; the same owner may repeat the claim."""

    name: str
    owner: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NameLookup:
    """Read a name's owner. Answers `NameResult`."""

    name: str


# ---------------------------------------------------------------------------------------------
# Decisions (the book's single-decree propose/query, one per id)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionPropose:
    """Propose `value` for decision `id`; the first proposal wins and every answer names it.

    `value` must not be null: null is how `DecisionGet` says "not decided yet".
    """

    id: str
    value: JsonValue


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionGet:
    """Read decision `id`: the chosen value, or None if nobody proposed yet."""

    id: str


# ---------------------------------------------------------------------------------------------
# Engine commands and the client envelope


@dataclass(frozen=True, slots=True, kw_only=True)
class AdvanceTime:
    """Log time is now `now_ms` (ignored unless it moves time forward). Leader-proposed."""

    now_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Noop:
    """Does nothing. Encodes as b"", the engine's filler payload."""


ReadOp: TypeAlias = Get | LockStatus | NameLookup | DecisionGet
WriteOp: TypeAlias = (
    Put | Delete | Cas | LockAcquire | LockRefresh | LockRelease | NameRegister | DecisionPropose
)
Op: TypeAlias = ReadOp | WriteOp


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A client op with exactly-once identity: `seq` increases per `client_id` (gaps allowed)."""

    client_id: str
    seq: int
    op: Op


Command: TypeAlias = Request | AdvanceTime | Noop | Op

READ_OPS: Final[tuple[type, ...]] = (Get, LockStatus, NameLookup, DecisionGet)

# ---------------------------------------------------------------------------------------------
# Field checkers. Each takes the raw field and the "Class.field" name to blame.


def _check_str(value: object, where: str, limit_bytes: int) -> None:
    if type(value) is not str:
        raise BadCommand(where, f"expected str, got {type(value).__name__}")
    if not value:
        raise BadCommand(where, "must not be empty")
    # A UTF-8 character is at most 4 bytes, so short strings need no encoding to be measured.
    if len(value) * 4 > limit_bytes:
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise BadCommand(where, "not valid UTF-8 (lone surrogate)") from None
        if size > limit_bytes:
            raise BadCommand(where, f"{size} bytes, more than {limit_bytes}")


def _check_key(value: object, where: str) -> None:
    _check_str(value, where, key_bytes_max)


def _check_owner(value: object, where: str) -> None:
    _check_str(value, where, owner_bytes_max)


def _check_int(value: object, where: str, low: int, high: int) -> None:
    if type(value) is not int:
        raise BadCommand(where, f"expected int, got {type(value).__name__}")
    if not low <= value <= high:
        raise BadCommand(where, f"{value} is outside [{low}, {high}]")


def _check_ttl(value: object, where: str) -> None:
    _check_int(value, where, ttl_ms_min, ttl_ms_max)


def _check_time(value: object, where: str) -> None:
    _check_int(value, where, 0, time_ms_max)


def _check_seq(value: object, where: str) -> None:
    _check_int(value, where, 0, seq_max)


def _check_decision_value(value: object, where: str) -> None:
    if value is None:
        raise BadCommand(where, "a decision value must not be null")
    check_value(value, where)


_Checker: TypeAlias = Callable[[object, str], None]


@dataclass(frozen=True, slots=True)
class _Spec:
    """How one command class travels: its tag, fields in wire order, and checks."""

    cls: type
    tag: int
    names: tuple[str, ...]
    checks: tuple[tuple[str, _Checker, str], ...]  # (field, checker, "Class.field")
    value_fields: tuple[str, ...]  # fields whose encoded size is bounded by value_bytes_max


def _spec(cls: type, tag: int, *fields: tuple[str, _Checker]) -> _Spec:
    checks = tuple((name, check, f"{cls.__name__}.{name}") for name, check in fields)
    values = tuple(name for name, check in fields if check in (check_value, _check_decision_value))
    return _Spec(cls, tag, tuple(name for name, _ in fields), checks, values)


_REQUEST_TAG: Final = 0
_SPECS: Final[tuple[_Spec, ...]] = (
    _spec(Get, 1, ("key", _check_key)),
    _spec(Put, 2, ("key", _check_key), ("value", check_value)),
    _spec(Delete, 3, ("key", _check_key)),
    _spec(Cas, 4, ("key", _check_key), ("expected", check_value), ("value", check_value)),
    _spec(LockAcquire, 5, ("name", _check_key), ("owner", _check_owner), ("ttl_ms", _check_ttl)),
    _spec(LockRefresh, 6, ("name", _check_key), ("owner", _check_owner), ("ttl_ms", _check_ttl)),
    _spec(LockRelease, 7, ("name", _check_key), ("owner", _check_owner)),
    _spec(LockStatus, 8, ("name", _check_key)),
    _spec(NameRegister, 9, ("name", _check_key), ("owner", _check_owner)),
    _spec(NameLookup, 10, ("name", _check_key)),
    _spec(DecisionPropose, 11, ("id", _check_key), ("value", _check_decision_value)),
    _spec(DecisionGet, 12, ("id", _check_key)),
    _spec(AdvanceTime, 13, ("now_ms", _check_time)),
)
_BY_CLASS: Final[dict[type, _Spec]] = {spec.cls: spec for spec in _SPECS}
_BY_TAG: Final[dict[int, _Spec]] = {spec.tag: spec for spec in _SPECS}
_CLIENT_TAGS: Final = frozenset(spec.tag for spec in _SPECS if spec.cls is not AdvanceTime)


def validate(command: object) -> None:
    """Raise `BadCommand` unless `command` is a valid command object (sizes included)."""
    encode(command)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(command: object) -> bytes:
    """The log payload for `command`. Raises `BadCommand` for anything `decode` would refuse."""
    kind = type(command)
    if kind is Noop:
        return b""
    if kind is Request:
        assert isinstance(command, Request)
        _check_owner(command.client_id, "Request.client_id")
        _check_seq(command.seq, "Request.seq")
        spec = _BY_CLASS.get(type(command.op))
        if spec is None or spec.tag not in _CLIENT_TAGS:
            raise BadCommand("Request.op", f"{type(command.op).__name__} is not a client op")
        raw: list[Any] = [_REQUEST_TAG, command.client_id, command.seq, _fields(command.op, spec)]
        inner: object = command.op
    else:
        spec = _BY_CLASS.get(kind)
        if spec is None:
            raise BadCommand("command", f"{kind.__name__} is not a command")
        raw = _fields(command, spec)
        inner = command
    try:
        data = pack(raw)
    except (ValueError, TypeError, OverflowError) as exc:
        # Checked fields cannot fail to pack except through a lone surrogate in a value string.
        raise BadCommand(spec.cls.__name__, f"cannot be encoded: {exc}") from None
    if len(data) > value_bytes_max:
        _check_sizes(inner, spec)
        if len(data) > command_bytes_max:
            raise BadCommand("payload", f"{len(data)} bytes, more than {command_bytes_max}")
    return data


def _fields(op: object, spec: _Spec) -> list[Any]:
    raw: list[Any] = [spec.tag]
    for name, check, where in spec.checks:
        value = getattr(op, name)
        check(value, where)
        raw.append(value)
    return raw


def _check_sizes(op: object, spec: _Spec) -> None:
    for name in spec.value_fields:
        size = encoded_size(getattr(op, name))
        if size > value_bytes_max:
            where = f"{spec.cls.__name__}.{name}"
            raise BadCommand(where, f"{size} bytes encoded, more than {value_bytes_max}")


# ---------------------------------------------------------------------------------------------
# Decoding

_NOOP: Final = Noop()


def decode(data: bytes) -> Command:
    """The command in a log payload. Raises `BadCommand` and nothing else, whatever `data` is."""
    if type(data) is not bytes and not isinstance(data, bytearray | memoryview):
        raise BadCommand("payload", f"expected bytes, got {type(data).__name__}")
    if not data:
        return _NOOP
    if len(data) > command_bytes_max:
        raise BadCommand("payload", f"{len(data)} bytes, more than {command_bytes_max}")
    try:
        raw = unpack(data)
    except Exception as exc:  # msgpack raises several unrelated types; all mean "not msgpack".
        raise BadCommand("payload", f"not a msgpack document ({type(exc).__name__})") from None
    try:
        if type(raw) is list and raw and type(raw[0]) is int and raw[0] == _REQUEST_TAG:
            return _decode_request(raw, len(data) > value_bytes_max)
        return _decode_op(raw, "command", len(data) > value_bytes_max, client_only=False)
    except BadCommand:
        raise
    except Exception as exc:
        # Unreachable by design (the fuzz tests look for this message); kept because the engine
        # must never see anything but BadCommand from decode.
        raise BadCommand("payload", f"internal validation error: {exc!r}") from None


def _decode_request(raw: list[Any], measure: bool) -> Request:
    if len(raw) != 4:
        raise BadCommand("Request", f"expected 3 fields, got {len(raw) - 1}")
    client_id = raw[1]
    seq = raw[2]
    _check_owner(client_id, "Request.client_id")
    _check_seq(seq, "Request.seq")
    op = _decode_op(raw[3], "Request.op", measure, client_only=True)
    return Request(client_id=client_id, seq=seq, op=op)


def _decode_op(raw: object, where: str, measure: bool, *, client_only: bool) -> Any:
    if type(raw) is not list or not raw:
        raise BadCommand(where, "expected a non-empty array [tag, field, ...]")
    tag = raw[0]
    # type() check first: True == 1 would otherwise select tag 1.
    spec = _BY_TAG.get(tag) if type(tag) is int else None
    if spec is None or (client_only and tag not in _CLIENT_TAGS):
        raise BadCommand(f"{where}.tag", f"unknown command tag {tag!r}")
    op = _DECODERS[tag](raw)
    if measure:
        _check_sizes(op, spec)
    return op


def _make_decoder(spec: _Spec) -> Callable[[list[Any]], Any]:
    """A decoder for one spec, unrolled by arity.

    Why: decoding runs on every apply, and an unrolled closure is about twice as fast as a
    generic loop over the fields, while the spec table stays the single source of truth.
    """
    cls = spec.cls
    arity = len(spec.checks)

    def wrong_arity(raw: list[Any]) -> BadCommand:
        return BadCommand(cls.__name__, f"expected {arity} fields, got {len(raw) - 1}")

    if arity == 1:
        ((n1, c1, w1),) = spec.checks

        def decode1(raw: list[Any]) -> Any:
            if len(raw) != 2:
                raise wrong_arity(raw)
            a = raw[1]
            c1(a, w1)
            return cls(**{n1: a})

        return decode1
    if arity == 2:
        (n1, c1, w1), (n2, c2, w2) = spec.checks

        def decode2(raw: list[Any]) -> Any:
            if len(raw) != 3:
                raise wrong_arity(raw)
            a = raw[1]
            b = raw[2]
            c1(a, w1)
            c2(b, w2)
            return cls(**{n1: a, n2: b})

        return decode2
    assert arity == 3, f"no unrolled decoder for {arity} fields"
    (n1, c1, w1), (n2, c2, w2), (n3, c3, w3) = spec.checks

    def decode3(raw: list[Any]) -> Any:
        if len(raw) != 4:
            raise wrong_arity(raw)
        a = raw[1]
        b = raw[2]
        c = raw[3]
        c1(a, w1)
        c2(b, w2)
        c3(c, w3)
        return cls(**{n1: a, n2: b, n3: c})

    return decode3


_DECODERS: Final[dict[int, Callable[[list[Any]], Any]]] = {
    spec.tag: _make_decoder(spec) for spec in _SPECS
}
