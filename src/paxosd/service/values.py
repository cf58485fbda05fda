"""JSON-compatible values: validation, size accounting and JSON equality.

Theory of operation: clients store JSON documents (None, bool, int, float, str, list, dict with
str keys). They travel through the log as msgpack, which can also carry things JSON cannot
(bytes, extension types, non-string map keys, NaN), so every value is walked once when a
command is encoded and once when it is decoded, with exact type checks (`type(x) is int`, so
`bool` and `int` subclasses never masquerade as each other). The walk is O(size of the value)
and bounded in depth, so it never recurses past `value_depth_max`.

Equality is JSON equality, not Python equality: in Python `True == 1` and `[True] == [1]`, but a
compare-and-swap expecting `1` must not succeed against a stored `true`. Integers and floats
compare numerically (`1` equals `1.0`, as the same JSON number).

Values are stored and returned without copying. Decoded values are fresh objects that nothing
else references, so sharing them between the store and results is safe as long as callers
treat results as read-only, which is the documented rule for every result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type information

from .errors import BadCommand

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"

# msgpack's integer range: anything outside cannot be encoded, so it is rejected up front.
int_min: Final = -(2**63)
int_max: Final = 2**64 - 1
# Nesting bound for lists/objects; keeps the validating walk far from Python's recursion limit.
value_depth_max: Final = 64


def check_value(value: object, field: str) -> None:
    """Raise `BadCommand(field, ...)` unless `value` is a JSON-compatible value."""
    kind = type(value)
    # Fast path for the common scalar cases; the walk below handles everything.
    if kind is str or value is None or kind is bool:
        return
    _walk(value, field, 0)


def _walk(value: Any, field: str, depth: int) -> None:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return
    if kind is int:
        if not int_min <= value <= int_max:
            raise BadCommand(field, "integer out of the 64-bit range")
        return
    if kind is float:
        if not math.isfinite(value):
            raise BadCommand(field, "NaN and infinities are not JSON numbers")
        return
    if kind is list or kind is dict:
        if depth >= value_depth_max:
            raise BadCommand(field, f"nested deeper than {value_depth_max} levels")
        if kind is list:
            for item in value:
                _walk(item, field, depth + 1)
        else:
            for key, item in value.items():
                if type(key) is not str:
                    raise BadCommand(field, "object keys must be strings")
                _walk(item, field, depth + 1)
        return
    raise BadCommand(field, f"{kind.__name__} is not a JSON value")


def pack(document: object) -> bytes:
    """msgpack-encode `document` (the package's one typed doorway to msgpack)."""
    data: bytes = msgpack.packb(document)
    return data


# The C unpacker, bound once: it is on the hot path of every apply.
unpack: Callable[[bytes | bytearray | memoryview], Any] = msgpack.unpackb


def encoded_size(value: object) -> int:
    """The value's size in bytes as msgpack, i.e. what it costs in the log and in snapshots."""
    return len(pack(value))


def json_equal(a: object, b: object) -> bool:
    """JSON equality: structural, `true` is not `1`, and `1` equals `1.0`."""
    kind_a = type(a)
    kind_b = type(b)
    if kind_a is kind_b:
        if kind_a is list:
            assert isinstance(a, list) and isinstance(b, list)
            return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        if kind_a is dict:
            assert isinstance(a, dict) and isinstance(b, dict)
            return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
        return a == b
    # Mixed int/float is the only cross-type equality JSON has.
    numbers = (int, float)
    if kind_a in numbers and kind_b in numbers:
        return a == b
    return False


def json_text(value: object) -> bytes:
    """A JSON value as the bytes the key-value store keeps: compact JSON text, object members
    sorted by name, UTF-8. Equal JSON values give equal text (except that 1 and 1.0 stay
    different numbers), so comparing stored values as bytes compares them as JSON."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    ).encode()


def from_json_text(data: bytes) -> tuple[bool, Any]:
    """(True, the value) if `data` is JSON text, else (False, None)."""
    try:
        return True, json.loads(data, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return False, None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
