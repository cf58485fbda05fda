"""Leases of the key-value store, as etcd's, on log time: requests, answers, their log
encoding and the lease table.

Theory of operation: a lease is a countdown that keys may be attached to (a Put with
`lease`); when the lease ends - revoked, or expired - every key attached to it is deleted, in
one revision that watchers see like any delete. The requests are etcd's (LeaseGrant,
LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive, LeaseLeases) with one difference of unit:
paxosd counts TTLs in milliseconds (the etcd API converts from and to whole seconds).

Time is log time (router.py): the largest `AdvanceTime` the leader proposed, never a
replica's own clock, so every replica ends a lease at the same point of the log. A lease
granted or kept alive at log time T with a TTL of t ms has the deadline T + t; it is live
while log time <= its deadline and ends in the apply of the first `AdvanceTime` past it.
Because a leader stamps every batch of commands with its log time just before proposing it
(runtime/driver.py), T is no earlier than the moment the request reached the leader, and log
time runs no faster than the leader's monotonic clock, so a lease never ends less than t ms
of real time after the client sent the request that granted or renewed it. A leader change
does not reset a lease: the new leader continues from the log time it found, so a lease is
lengthened by at most the time without a leader, never renewed to its full TTL.

Expiry happens in `KvMachine.advance_time`: every lease whose deadline log time has passed
ends at once, all their keys deleted in ONE revision (an `AdvanceTime` is one log entry and
so one revision at most, which is what the watch hub and every reader of `Applied.events`
expect; etcd makes one revision per lease, a difference no client can rely on). Leases end
in the order (deadline, id): deterministic on every replica.

Ids: a grant may ask for an id (refused if it is in use: etcd's "lease already exists");
id 0 lets the store choose the next value of a counter, skipping ids in use. The counter
never goes back, so an id the store chose is never chosen again: a program holding a lost
lease's id cannot mistake a later lease for its own.

The table: id -> `Lease` (granted TTL, deadline, attached keys), and a heap of (deadline,
id) entries to find the ones due without scanning the table (an entry whose deadline no
longer matches the lease's - a keep-alive moved it - is dropped when it reaches the top).
The attached keys are kept up to date from the store's events (`KvMachine._commit`), so the
keys follow puts that change or drop a lease, deletes, transactions and legacy commands
alike, and a transaction undone leaves them untouched.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Final

from paxosd.service.codec import OpCodec, always, time_ms_max
from paxosd.service.errors import CorruptSnapshot

from .checks import _invalid, check_bool, int64_max
from .errors import LEASE_TTL_TOO_LARGE, InvalidRequest, kv_error

# Lease ids from here up are the locks' (coordination.py: lock_lease_base + fencing token):
# requests name ids below it, so no program can renew, end or attach keys to a lock's lease.
lock_lease_base: Final = 2**62
# The longest TTL: etcd's MaxLeaseTTL (9,000,000,000 s), in milliseconds.
lease_ttl_ms_max: Final = 9_000_000_000_000
# The shortest TTL the state machine takes. A node asks for more (`lease_ttl_ms_min` of the
# node's configuration, derived from its election timeout: docs/leases.md); the log accepts
# any positive TTL so that a node configured differently is never refused by the log.
lease_ttl_ms_floor: Final = 1

# ---------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseGrant:
    """Grant a lease of `ttl_ms` (LeaseGrantRequest); `id` 0 lets the store choose the id."""

    ttl_ms: int
    id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRevoke:
    """End lease `id` now, deleting its keys (LeaseRevokeRequest)."""

    id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseKeepAlive:
    """Renew lease `id` to its full granted TTL from now (one LeaseKeepAliveRequest)."""

    id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTimeToLive:
    """How long lease `id` has left (LeaseTimeToLiveRequest); `keys` lists its keys too."""

    id: int
    keys: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseLeases:
    """Every live lease's id (LeaseLeasesRequest)."""


LeaseOp = LeaseGrant | LeaseRevoke | LeaseKeepAlive | LeaseTimeToLive | LeaseLeases

# ---------------------------------------------------------------------------------------------
# Answers. `revision` is the store's revision when answered (etcd's header.revision).


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseGrantResponse:
    revision: int
    id: int
    ttl_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRevokeResponse:
    """The lease ended; `revision` is the revision that deleted its keys (the unchanged
    store revision if it had none)."""

    revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseKeepAliveResponse:
    """The lease was renewed to `ttl_ms` from now."""

    revision: int
    id: int
    ttl_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTimeToLiveResponse:
    """`ttl_ms` left (-1 if the lease does not exist: expired, revoked or never granted, as
    etcd answers), the TTL it was granted with, and its keys if asked for (sorted)."""

    revision: int
    id: int
    ttl_ms: int
    granted_ttl_ms: int
    keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseLeasesResponse:
    """The live leases' ids, in increasing order."""

    revision: int
    ids: tuple[int, ...] = ()


LeaseResponse = (
    LeaseGrantResponse
    | LeaseRevokeResponse
    | LeaseKeepAliveResponse
    | LeaseTimeToLiveResponse
    | LeaseLeasesResponse
)

# ---------------------------------------------------------------------------------------------
# Checks and the log encoding (tags 19-23; answers' tags 17-21 in the exactly-once table)

GRANT_TAG: Final = 19
REVOKE_TAG: Final = 20
KEEPALIVE_TAG: Final = 21
TIMETOLIVE_TAG: Final = 22
LEASES_TAG: Final = 23


def check_lease_id(value: object, where: str, *, zero: bool = False) -> None:
    """A lease id: positive and below the locks' range (0 too where it means "none" or
    "choose one")."""
    if type(value) is not int:
        raise _invalid(where, f"expected int, got {type(value).__name__}")
    if not (0 if zero else 1) <= value < lock_lease_base:
        raise _invalid(
            where, f"lease id {value} is not in [{0 if zero else 1}, {lock_lease_base - 1}]"
        )


def check_ttl_ms(value: object, where: str) -> None:
    if type(value) is not int:
        raise _invalid(where, f"expected int, got {type(value).__name__}")
    if value > lease_ttl_ms_max:
        raise InvalidRequest(
            where,
            kv_error(
                LEASE_TTL_TOO_LARGE,
                f"{where}: a TTL of {value} ms is longer than the longest, {lease_ttl_ms_max} ms",
            ),
        )
    if value < lease_ttl_ms_floor:
        raise _invalid(where, f"a TTL of {value} ms is not positive")


def _encode(tag: int, *fields: Any) -> list[Any]:
    return [tag, *fields]


def _arity(raw: list[Any], name: str, low: int, high: int) -> None:
    if not low <= len(raw) - 1 <= high:
        expected = f"{low}" if low == high else f"{low} to {high}"
        raise _invalid(name, f"expected {expected} fields, got {len(raw) - 1}")


def encode_grant(op: LeaseGrant) -> list[Any]:
    check_ttl_ms(op.ttl_ms, "LeaseGrant.ttl_ms")
    check_lease_id(op.id, "LeaseGrant.id", zero=True)
    return _encode(GRANT_TAG, op.ttl_ms, op.id) if op.id else _encode(GRANT_TAG, op.ttl_ms)


def decode_grant(raw: list[Any]) -> LeaseGrant:
    _arity(raw, "LeaseGrant", 1, 2)
    op = LeaseGrant(ttl_ms=raw[1], id=raw[2] if len(raw) == 3 else 0)
    encode_grant(op)
    return op


def _id_codec(cls: type, tag: int) -> OpCodec:
    name = cls.__name__

    def encode(op: Any) -> list[Any]:
        check_lease_id(op.id, f"{name}.id")
        return [tag, op.id]

    def decode(raw: list[Any]) -> Any:
        _arity(raw, name, 1, 1)
        op = cls(id=raw[1])
        encode(op)
        return op

    return OpCodec(cls, tag, encode, decode, _no_measure, always(False))


def encode_timetolive(op: LeaseTimeToLive) -> list[Any]:
    check_lease_id(op.id, "LeaseTimeToLive.id")
    check_bool(op.keys, "LeaseTimeToLive.keys")
    return [TIMETOLIVE_TAG, op.id, op.keys] if op.keys else [TIMETOLIVE_TAG, op.id]


def decode_timetolive(raw: list[Any]) -> LeaseTimeToLive:
    _arity(raw, "LeaseTimeToLive", 1, 2)
    op = LeaseTimeToLive(id=raw[1], keys=raw[2] if len(raw) == 3 else False)
    encode_timetolive(op)
    return op


def encode_leases(op: LeaseLeases) -> list[Any]:
    return [LEASES_TAG]


def decode_leases(raw: list[Any]) -> LeaseLeases:
    _arity(raw, "LeaseLeases", 0, 0)
    return LeaseLeases()


def _no_measure(op: Any) -> None:
    return None  # no field can approach value_bytes_max


CODECS: Final = (
    OpCodec(LeaseGrant, GRANT_TAG, encode_grant, decode_grant, _no_measure, always(False)),
    _id_codec(LeaseRevoke, REVOKE_TAG),
    _id_codec(LeaseKeepAlive, KEEPALIVE_TAG),
    OpCodec(
        LeaseTimeToLive,
        TIMETOLIVE_TAG,
        encode_timetolive,
        decode_timetolive,
        _no_measure,
        always(True),
    ),
    OpCodec(LeaseLeases, LEASES_TAG, encode_leases, decode_leases, _no_measure, always(True)),
)

GRANT_RESPONSE_TAG: Final = 17
REVOKE_RESPONSE_TAG: Final = 18
KEEPALIVE_RESPONSE_TAG: Final = 19
TIMETOLIVE_RESPONSE_TAG: Final = 20
LEASES_RESPONSE_TAG: Final = 21


def response_to_raw(response: Any) -> list[Any] | None:
    """A lease answer as `[tag, field, ...]`; None for anything else."""
    match response:
        case LeaseGrantResponse():
            return [GRANT_RESPONSE_TAG, response.revision, response.id, response.ttl_ms]
        case LeaseRevokeResponse():
            return [REVOKE_RESPONSE_TAG, response.revision]
        case LeaseKeepAliveResponse():
            return [KEEPALIVE_RESPONSE_TAG, response.revision, response.id, response.ttl_ms]
        case LeaseTimeToLiveResponse():
            return [
                TIMETOLIVE_RESPONSE_TAG,
                response.revision,
                response.id,
                response.ttl_ms,
                response.granted_ttl_ms,
                list(response.keys),
            ]
        case LeaseLeasesResponse():
            return [LEASES_RESPONSE_TAG, response.revision, list(response.ids)]
    return None


def _ints(raw: list[Any], low: int = 0) -> list[int]:
    for value in raw:
        if type(value) is not int or value < low:
            raise CorruptSnapshot(f"malformed lease answer {raw!r:.80}")
    return raw


def _from_grant(raw: list[Any]) -> LeaseGrantResponse:
    revision, id_, ttl = _ints(raw[1:])
    return LeaseGrantResponse(revision=revision, id=id_, ttl_ms=ttl)


def _from_revoke(raw: list[Any]) -> LeaseRevokeResponse:
    return LeaseRevokeResponse(revision=_ints(raw[1:])[0])


def _from_keepalive(raw: list[Any]) -> LeaseKeepAliveResponse:
    revision, id_, ttl = _ints(raw[1:])
    return LeaseKeepAliveResponse(revision=revision, id=id_, ttl_ms=ttl)


def _from_timetolive(raw: list[Any]) -> LeaseTimeToLiveResponse:
    revision, id_, ttl, granted = _ints(raw[1:5], low=-1)
    keys = raw[5]
    if type(keys) is not list or any(type(key) is not bytes for key in keys):
        raise CorruptSnapshot(f"malformed lease answer {raw!r:.80}")
    return LeaseTimeToLiveResponse(
        revision=revision, id=id_, ttl_ms=ttl, granted_ttl_ms=granted, keys=tuple(keys)
    )


def _from_leases(raw: list[Any]) -> LeaseLeasesResponse:
    revision = _ints(raw[1:2])[0]
    if type(raw[2]) is not list:
        raise CorruptSnapshot(f"malformed lease answer {raw!r:.80}")
    return LeaseLeasesResponse(revision=revision, ids=tuple(_ints(raw[2], low=1)))


FROM_RAW: Final = {
    GRANT_RESPONSE_TAG: (4, _from_grant),
    REVOKE_RESPONSE_TAG: (2, _from_revoke),
    KEEPALIVE_RESPONSE_TAG: (4, _from_keepalive),
    TIMETOLIVE_RESPONSE_TAG: (6, _from_timetolive),
    LEASES_RESPONSE_TAG: (3, _from_leases),
}

# ---------------------------------------------------------------------------------------------
# The lease table


class Lease:
    """One live lease: its granted TTL, its deadline in log time, its attached keys."""

    __slots__ = ("deadline_ms", "keys", "ttl_ms")

    def __init__(self, ttl_ms: int, deadline_ms: int) -> None:
        self.ttl_ms = ttl_ms
        self.deadline_ms = deadline_ms
        self.keys: set[bytes] = set()


class Lessor:
    """The live leases of one replica's store (module docstring). Not thread-safe."""

    __slots__ = ("_due", "leases", "next_id", "now_ms")

    def __init__(self, now_ms: int = 0, next_id: int = 1) -> None:
        self.now_ms = now_ms
        self.next_id = next_id
        self.leases: dict[int, Lease] = {}
        self._due: list[tuple[int, int]] = []  # (deadline_ms, id), some stale

    def __len__(self) -> int:
        return len(self.leases)

    def choose_id(self) -> int:
        """The id a grant without one gets (the counter moves past it)."""
        lease_id = self.next_id
        while lease_id in self.leases:
            lease_id += 1
        self.next_id = lease_id + 1
        return lease_id

    def grant(self, lease_id: int, ttl_ms: int) -> None:
        deadline = min(self.now_ms + ttl_ms, time_ms_max)
        self.leases[lease_id] = Lease(ttl_ms, deadline)
        heapq.heappush(self._due, (deadline, lease_id))

    def renew(self, lease: Lease, lease_id: int, ttl_ms: int) -> None:
        lease.deadline_ms = min(self.now_ms + ttl_ms, time_ms_max)
        heapq.heappush(self._due, (lease.deadline_ms, lease_id))

    def end(self, lease_id: int) -> None:
        """Forget a lease that holds no key (a lock's); its heap entry is dropped later."""
        lease = self.leases.pop(lease_id)
        assert not lease.keys, lease_id

    def due(self) -> list[int]:
        """The ids of the leases log time has passed (`now_ms` > deadline), in (deadline, id)
        order, taken off the heap (the caller ends them)."""
        due = self._due
        leases = self.leases
        ended: list[int] = []
        while due and due[0][0] < self.now_ms:
            deadline, lease_id = heapq.heappop(due)
            lease = leases.get(lease_id)
            # Two renewals at one log time leave two equal entries: the lease ends once.
            if lease is not None and lease.deadline_ms == deadline and lease_id not in ended:
                ended.append(lease_id)
        return ended

    def soonest_deadline_ms(self) -> int | None:
        """The earliest deadline of a live lease (for status pages), or None."""
        due, leases = self._due, self.leases
        while due:
            deadline, lease_id = due[0]
            lease = leases.get(lease_id)
            if lease is not None and lease.deadline_ms == deadline:
                return deadline
            heapq.heappop(due)  # stale: dropping it changes no answer
        return None

    def remaining_ms(self, lease: Lease) -> int:
        return max(0, lease.deadline_ms - self.now_ms)

    def attach(self, key: bytes, old: int, new: int) -> None:
        """`key` moved from lease `old` to lease `new` (0: none)."""
        if old == new:
            return
        if old:
            lease = self.leases.get(old)
            if lease is not None:
                lease.keys.discard(key)
        if new:
            lease = self.leases.get(new)
            if lease is not None:
                lease.keys.add(key)

    def rows(self) -> list[list[int]]:
        """[id, ttl_ms, deadline_ms] per lease, by id: the snapshot's lease rows."""
        return [[i, lease.ttl_ms, lease.deadline_ms] for i, lease in sorted(self.leases.items())]


def restore_lessor(now_ms: int, next_id: object, rows: list[Any], fail: Any) -> Lessor:
    """The table a snapshot's lease rows describe (keys are attached by the caller)."""
    if type(next_id) is not int or not 1 <= next_id <= int64_max + 1:
        raise fail(f"next lease id {next_id!r:.40}")
    lessor = Lessor(now_ms, next_id)
    previous = 0
    for row in rows:
        if type(row) is not list or len(row) != 3 or not all(type(n) is int for n in row):
            raise fail(f"malformed lease row {row!r:.60}")
        lease_id, ttl_ms, deadline = row
        if not previous < lease_id <= int64_max:  # the locks' ids included
            raise fail(f"lease ids out of order at {lease_id}")
        if not lease_ttl_ms_floor <= ttl_ms <= lease_ttl_ms_max or not 0 <= deadline <= time_ms_max:
            raise fail(f"lease {lease_id}: TTL {ttl_ms} or deadline {deadline} out of range")
        lessor.leases[lease_id] = Lease(ttl_ms, deadline)
        lessor._due.append((deadline, lease_id))
        previous = lease_id
    heapq.heapify(lessor._due)
    return lessor
