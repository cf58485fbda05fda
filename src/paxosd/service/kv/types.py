"""etcd v3's data model, field for field: key-values, events, requests and answers.

Theory of operation: paxosd's key-value store IS etcd's model, not a translation of it, so the
types here carry etcd's names, fields, enum numbers and defaults (etcdserverpb's rpc.proto and
mvccpb's kv.proto). Every interface (the etcd JSON gateway, /v1, RESP, the client, the CLI)
builds these requests and renders these answers.

* Keys and values are byte strings. A key is non-empty.
* One store-wide `revision`: an empty store is at revision 1, and every request that changes
  something moves it by exactly one, however many keys it writes (a transaction, a delete of
  a range). Each key carries `create_revision` (the revision that created it, since its last
  deletion), `mod_revision` (the revision of its last change), `version` (1 at creation, +1 at
  every change, reset by deletion) and `lease` (0: no lease).
* A range is `[key, range_end)` in byte order. `range_end` empty means the single key `key`;
  `range_end == b"\\0"` means every key from `key` on (so key = range_end = b"\\0" is every
  key); the keys with a prefix P are `[P, prefix_end(P))`.
* Answers carry `revision`: etcd's `header.revision`, the store's revision when the answer
  was made. The rest of etcd's header (cluster id, member id, raft term) is the answering
  node's, added by the interface that renders the answer: the state machine's answers are
  the same on every replica.

Ops and answers are frozen dataclasses (values: safe to cache, share and compare).
`KeyValue` and `Event` are named tuples: the store keeps one per version of a key, and a tuple
costs a third of a dataclass to build.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

# ---------------------------------------------------------------------------------------------
# Stored values


class KeyValue(NamedTuple):
    """One version of a key (mvccpb.KeyValue). A deletion is recorded as the key with
    `mod_revision` the deleting revision and every other field zero or empty, as etcd's
    delete events carry it."""

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes
    lease: int


class EventType(enum.IntEnum):
    PUT = 0
    DELETE = 1


class Event(NamedTuple):
    """One key changed by one revision (mvccpb.Event): `kv` is the key after the change (for
    a DELETE, the tombstone described at `KeyValue`), `prev_kv` the key before it (None if
    it did not exist). Applying a write yields its events, in the order it made them."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


# ---------------------------------------------------------------------------------------------
# Enums of the requests (values as in rpc.proto)


class SortOrder(enum.IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class CompareTarget(enum.IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult(enum.IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


# ---------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True, slots=True, kw_only=True)
class Range:
    """Read the keys in `[key, range_end)` (RangeRequest).

    `revision` <= 0 reads the newest state; a positive revision reads the store as it was then
    (refused below the compacted revision and above the current one). `limit` <= 0 means no
    limit. The order of operations is fixed: select the range at the revision, drop the keys
    the four `min/max_*_revision` filters exclude (0: no bound), sort, then cut at `limit`;
    `count` is the number of keys that passed the filters, `more` whether the limit cut any.
    `sort_target` other than KEY with `sort_order` NONE sorts ascending, as etcd does.
    `serializable` answers from the node's own state without confirming it is current.
    """

    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Put:
    """Set `key` to `value` (PutRequest). `prev_kv` asks for the key as it was; `ignore_value`
    keeps the current value and `ignore_lease` the current lease (both refused if the key does
    not exist: "key not found"). `lease` 0 is no lease."""

    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteRange:
    """Delete the keys in `[key, range_end)` (DeleteRangeRequest), in one revision; `prev_kv`
    asks for the deleted key-values."""

    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Compare:
    """One condition of a transaction (Compare): `target` of the key (or of every key in
    `[key, range_end)`) compared with the operand of the same name - `version`,
    `create_revision`, `mod_revision`, `value` or `lease` - by `result`.

    A missing key has version, create_revision, mod_revision and lease 0 (so CREATE == 0 means
    "absent"); a VALUE compare on a missing key is false. Over a range, every key present must
    satisfy the condition. Only the operand named by `target` may be set (etcd's oneof).
    """

    key: bytes
    target: CompareTarget
    result: CompareResult = CompareResult.EQUAL
    version: int = 0
    create_revision: int = 0
    mod_revision: int = 0
    value: bytes = b""
    lease: int = 0
    range_end: bytes = b""

    @property
    def operand(self) -> int | bytes:
        """The operand `target` names."""
        match self.target:
            case CompareTarget.VERSION:
                return self.version
            case CompareTarget.CREATE:
                return self.create_revision
            case CompareTarget.MOD:
                return self.mod_revision
            case CompareTarget.VALUE:
                return self.value
            case CompareTarget.LEASE:
                return self.lease
        raise ValueError(f"unknown compare target {self.target!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Txn:
    """A transaction (TxnRequest): if every compare holds, the `success` ops run, else the
    `failure` ops, in order, atomically, as one log entry and at most one revision. Ops are
    Range, Put, DeleteRange and nested Txn. The compares read the state before the
    transaction; each op sees the writes of the ops before it. A transaction whose ops are all
    ranges only reads (`is_read_only`)."""

    compare: tuple[Compare, ...] = ()
    success: tuple[RequestOp, ...] = ()
    failure: tuple[RequestOp, ...] = ()

    def is_read_only(self) -> bool:
        """True if no op on either branch, at any depth, writes (etcd's isTxnReadonly)."""
        for op in (*self.success, *self.failure):
            kind = type(op)
            if kind is Txn:
                assert isinstance(op, Txn)
                if not op.is_read_only():
                    return False
            elif kind is not Range:
                return False
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Compact:
    """Forget every version of every key that was superseded at or before `revision`
    (CompactionRequest): reads below `revision` are refused from then on. `physical` is
    accepted and changes nothing: paxosd's compaction takes effect when it is applied."""

    revision: int
    physical: bool = False


RequestOp: TypeAlias = Range | Put | DeleteRange | Txn
KvOp: TypeAlias = Range | Put | DeleteRange | Txn | Compact

# ---------------------------------------------------------------------------------------------
# Answers


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeResponse:
    """The keys of a Range (RangeResponse): `kvs` in the requested order (values empty if
    keys_only; none at all if count_only), `more` if `limit` cut some, `count` the keys that
    matched. `revision` is the store's revision when it was answered (not the revision read)."""

    revision: int
    kvs: tuple[KeyValue, ...] = ()
    more: bool = False
    count: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PutResponse:
    """A Put took effect at `revision`; `prev_kv` is the key before it, if asked for and it
    existed."""

    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteRangeResponse:
    """A DeleteRange removed `deleted` keys; `revision` is the deleting revision, or the
    unchanged store revision if nothing was deleted. `prev_kvs` if asked for."""

    revision: int
    deleted: int = 0
    prev_kvs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TxnResponse:
    """A Txn: `succeeded` says which branch ran, `responses` are its ops' answers in order,
    `revision` is the store's revision after it."""

    revision: int
    succeeded: bool
    responses: tuple[ResponseOp, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactionResponse:
    """A Compact took effect; `revision` is the store's current revision."""

    revision: int


ResponseOp: TypeAlias = RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse
KvResponse: TypeAlias = (
    RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse | CompactionResponse
)

# ---------------------------------------------------------------------------------------------
# Ranges


def prefix_end(prefix: bytes) -> bytes:
    """The `range_end` that selects every key starting with `prefix`: the prefix with its last
    byte incremented, trailing 0xff bytes dropped first (b"a\\xff" -> b"b"); b"\\0" (every key
    from `prefix` on) when every byte is 0xff or the prefix is empty, as etcd's clients do."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def in_range(key: bytes, start: bytes, range_end: bytes) -> bool:
    """Whether `key` is in the range `[start, range_end)` by etcd's conventions (above)."""
    if not range_end:
        return key == start
    if range_end == b"\0":
        return key >= start
    return start <= key < range_end
