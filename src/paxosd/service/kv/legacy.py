"""The key-value ops paxosd had before it took etcd's model: string keys and JSON values.

Theory of operation: tags 1-4 keep their meaning for as long as logs that hold them may be
replayed, so these ops still decode and apply. They are kept apart from etcd's ops (types.py)
so that nothing new is built on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from paxosd.service.codec import OpCodec, check_key, simple_codec
from paxosd.service.values import JsonValue, check_value


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


CODECS: Final[tuple[OpCodec, ...]] = (
    simple_codec(Get, 1, ("key", check_key), read=True),
    simple_codec(Put, 2, ("key", check_key), ("value", check_value), values=("value",)),
    simple_codec(Delete, 3, ("key", check_key)),
    simple_codec(
        Cas,
        4,
        ("key", check_key),
        ("expected", check_value),
        ("value", check_value),
        values=("expected", "value"),
    ),
)
