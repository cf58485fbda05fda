"""The key-value store as a state machine behind the router (namespace.py).

Theory of operation: key -> (value, create_revision, mod_revision), with one store revision
bumped by every effective write (Put, Delete of an existing key, successful Cas), as in etcd.
Put, Delete, Get and Cas are O(1) dict operations; Cas's comparison is O(size of the compared
values). etcd's requests (types.py) are not applied by this store yet: they answer an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from paxosd.service.results import (
    CasResult,
    Deleted,
    Error,
    NotFound,
    Result,
    Value,
    Written,
)
from paxosd.service.values import json_equal

from .legacy import Cas, Delete, Get, Put
from .types import Compact, DeleteRange, Range, Txn
from .types import Put as KvPut

# Plain tuples, not objects: a Put allocates one per write and a tuple is the cheapest record.
Entry: TypeAlias = tuple[Any, int, int]  # (value, create_revision, mod_revision)

UNSUPPORTED = "unsupported"


class KvStore:
    """One replica's key-value store. Not thread-safe; not shared."""

    __slots__ = ("kv", "revision")

    def __init__(self) -> None:
        self.revision = 0
        self.kv: dict[str, Entry] = {}

    def handlers(self) -> dict[type, Callable[[Any], Result]]:
        return {
            Get: self._get,
            Put: self._put,
            Delete: self._delete,
            Cas: self._cas,
            Range: self._unsupported,
            KvPut: self._unsupported,
            DeleteRange: self._unsupported,
            Txn: self._unsupported,
            Compact: self._unsupported,
        }

    def advance_time(self, now_ms: int) -> None:
        return None

    @property
    def wants_log_time(self) -> bool:
        return False

    def _unsupported(self, op: Any) -> Result:
        return Error(code=UNSUPPORTED, message=f"{type(op).__name__} is not applied yet")

    def _get(self, op: Get) -> Result:
        entry = self.kv.get(op.key)
        if entry is None:
            return NotFound(key=op.key)
        return Value(key=op.key, value=entry[0], revision=entry[2], create_revision=entry[1])

    def _put(self, op: Put) -> Result:
        self._store(op.key, op.value)
        return Written(key=op.key, revision=self.revision)

    def _store(self, key: str, value: Any) -> None:
        self.revision += 1
        revision = self.revision
        old = self.kv.get(key)
        self.kv[key] = (value, revision if old is None else old[1], revision)

    def _delete(self, op: Delete) -> Result:
        if self.kv.pop(op.key, None) is None:
            # Nothing changed, so the revision does not move (etcd does the same).
            return Deleted(key=op.key, existed=False, revision=self.revision)
        self.revision += 1
        return Deleted(key=op.key, existed=True, revision=self.revision)

    def _cas(self, op: Cas) -> Result:
        entry = self.kv.get(op.key)
        if op.expected is None:
            matches = entry is None
        else:
            matches = entry is not None and json_equal(entry[0], op.expected)
        if not matches:
            if entry is None:
                return CasResult(succeeded=False, key=op.key, value=None, revision=0)
            return CasResult(succeeded=False, key=op.key, value=entry[0], revision=entry[2])
        self._store(op.key, op.value)
        return CasResult(succeeded=True, key=op.key, value=op.value, revision=self.revision)
