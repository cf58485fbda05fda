"""The machinery every namespace's command codec is built from: field checks and op codecs.

Theory of operation: the log carries msgpack arrays `[tag, field, ...]`; each namespace (see
`registry.py`) describes its ops as `OpCodec`s - the tag, the class, how to turn an op into
the array and back, and whether the op only reads. `commands.py` joins every namespace's
codecs into the one table that encodes and decodes log payloads. Decoding is part of the
deterministic state machine, so every check here raises `BadCommand` and nothing else, and
accepts and refuses exactly the same inputs on every replica.

Most ops are flat records of checked fields: `simple_codec` builds their codec from a field
list. Ops with nested structure (the key-value store's transactions) write their own encode
and decode functions and wrap them in an `OpCodec` directly.

Limits shared by the namespaces, with units last:

* `key_bytes_max`: keys, lock names, registry names and decision ids, in bytes, non-empty;
* `owner_bytes_max`: lock owners, name owners and client ids, UTF-8 bytes, non-empty;
* `value_bytes_max`: one value (a JSON value measured as its msgpack encoding, or a byte
  string's length);
* `command_bytes_max`: a whole log payload; anything bigger is refused before msgpack parses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .errors import BadCommand
from .values import encoded_size

key_bytes_max: Final = 1024
owner_bytes_max: Final = 256
value_bytes_max: Final = 1024 * 1024
# Upper bound for seq and for log time; well inside msgpack's int64 range.
seq_max: Final = 2**63 - 1
time_ms_max: Final = 2**62
# A Cas carries two values plus a key, a transaction up to its byte limit plus framing;
# anything bigger is refused before msgpack parses it.
command_bytes_max: Final = 2 * value_bytes_max + 64 * 1024

# ---------------------------------------------------------------------------------------------
# Field checkers. Each takes the raw field and the "Class.field" name to blame.


def check_str(value: object, where: str, limit_bytes: int) -> None:
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


def check_key(value: object, where: str) -> None:
    check_str(value, where, key_bytes_max)


def check_owner(value: object, where: str) -> None:
    check_str(value, where, owner_bytes_max)


def check_int(value: object, where: str, low: int, high: int) -> None:
    if type(value) is not int:
        raise BadCommand(where, f"expected int, got {type(value).__name__}")
    if not low <= value <= high:
        raise BadCommand(where, f"{value} is outside [{low}, {high}]")


def check_time(value: object, where: str) -> None:
    check_int(value, where, 0, time_ms_max)


def check_seq(value: object, where: str) -> None:
    check_int(value, where, 0, seq_max)


Checker: TypeAlias = Callable[[object, str], None]

# ---------------------------------------------------------------------------------------------
# Op codecs


@dataclass(frozen=True, slots=True)
class OpCodec:
    """How one op class travels in the log.

    `encode(op)` gives the array `[tag, field, ...]` and raises `BadCommand` for an invalid op;
    `decode(raw)` gets that array (tag checked already) and raises `BadCommand` only;
    `measure(op)` checks the sizes of values, called only when a payload is larger than
    `value_bytes_max` (a value can never be larger than the payload that carries it);
    `is_read(op)` says whether the op only reads (a read is answered without the log).
    """

    cls: type
    tag: int
    encode: Callable[[Any], list[Any]]
    decode: Callable[[list[Any]], Any]
    measure: Callable[[Any], None]
    is_read: Callable[[Any], bool]


def always(answer: bool) -> Callable[[Any], bool]:
    """An `is_read` for op classes that always read, or always write."""

    def constant(op: Any) -> bool:
        return answer

    return constant


def _no_measure(op: Any) -> None:
    return None


def simple_codec(
    cls: type,
    tag: int,
    *fields: tuple[str, Checker],
    read: bool = False,
    values: tuple[str, ...] = (),
) -> OpCodec:
    """The codec of a flat op: its fields in wire order, each with its checker.

    The fields named in `values` hold JSON values: they are also measured against
    `value_bytes_max` (as their msgpack encoding) when the payload is large.
    """
    checks = tuple((name, check, f"{cls.__name__}.{name}") for name, check in fields)
    measured = tuple((name, f"{cls.__name__}.{name}") for name in values)

    def encode(op: Any) -> list[Any]:
        raw: list[Any] = [tag]
        for name, check, where in checks:
            value = getattr(op, name)
            check(value, where)
            raw.append(value)
        return raw

    def measure(op: Any) -> None:
        for name, where in measured:
            size = encoded_size(getattr(op, name))
            if size > value_bytes_max:
                raise BadCommand(where, f"{size} bytes encoded, more than {value_bytes_max}")

    return OpCodec(
        cls,
        tag,
        encode,
        _unrolled_decoder(cls, checks),
        measure if measured else _no_measure,
        always(read),
    )


def _unrolled_decoder(
    cls: type, checks: tuple[tuple[str, Checker, str], ...]
) -> Callable[[list[Any]], Any]:
    """A decoder for a flat op, unrolled by arity.

    Why: decoding runs on every apply, and an unrolled closure is about twice as fast as a
    generic loop over the fields, while the field list stays the single source of truth.
    """
    arity = len(checks)

    def wrong_arity(raw: list[Any]) -> BadCommand:
        return BadCommand(cls.__name__, f"expected {arity} fields, got {len(raw) - 1}")

    if arity == 1:
        ((n1, c1, w1),) = checks

        def decode1(raw: list[Any]) -> Any:
            if len(raw) != 2:
                raise wrong_arity(raw)
            a = raw[1]
            c1(a, w1)
            return cls(**{n1: a})

        return decode1
    if arity == 2:
        (n1, c1, w1), (n2, c2, w2) = checks

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
    (n1, c1, w1), (n2, c2, w2), (n3, c3, w3) = checks

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
