"""Coordination: leased locks with fencing tokens, write-once names, and decisions.

Theory of operation: one of the state machines behind the router (namespace.py), applied in
log order like the others.

* Time is data. A held lock is held by a lease of the key-value store's lessor (kv/leases.py:
  one TTL machine for keys and locks), measured against log time, the largest
  `AdvanceTime` the leader proposed into the log, never against a replica's own clock;
  otherwise two replicas could disagree about whether a lease had expired. Log time is not
  wall time: each leader stamps the log time it found when it took over plus what its
  monotonic clock measured since (see runtime/driver.py), so log time never runs faster than
  real time, a skewed or jumping wall clock changes nothing, and a leader change can only
  lengthen leases, never shorten them. Answers therefore give a lease's remaining length
  (`expires_in_ms`), never a date. A lock is live while its lease is: the lessor ends the
  lease in the apply of the first `AdvanceTime` past its deadline (`now_ms > deadline`),
  so no replica needs a timer. The lease includes its last millisecond on purpose: log time
  comes in whole
  milliseconds (truncated), so a grant stamped at ms T may really have happened up to 1 ms
  later; ending the lease only once log time passes T + ttl makes sure no other owner is
  granted the lock before ttl_ms of real time has passed since the request reached the leader.
* Locks: name -> (owner, fencing_token, lease_id, held). Every new grant takes the next
  value of one fencing counter, so tokens are unique and strictly increasing across all
  locks, and a lease of id `lock_lease_base + token` (a range no request may name, so no
  program can renew, end or attach keys to a lock's lease). Records persist after
  release/expiry (O(distinct lock names)) so the last owner's release stays idempotent.
* Names: name -> owner, write-once. Decisions: id -> chosen value, write-once (the book's
  single-decree propose/query, one per id).

Every operation is O(1) dict work plus decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .codec import (
    OpCodec,
    check_int,
    check_key,
    check_owner,
    key_bytes_max,
    owner_bytes_max,
    simple_codec,
)
from .errors import BadCommand, CorruptSnapshot
from .kv.leases import Lease as TimedLease
from .kv.leases import Lessor, lock_lease_base
from .results import NOT_HOLDER, DecisionResult, Error, LockResult, NameResult, Released, Result
from .values import JsonValue, check_value

ttl_ms_min: Final = 100
ttl_ms_max: Final = 3_600_000

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
# Codecs (tags 5-12)


def _check_ttl(value: object, where: str) -> None:
    check_int(value, where, ttl_ms_min, ttl_ms_max)


def _check_decision_value(value: object, where: str) -> None:
    if value is None:
        raise BadCommand(where, "a decision value must not be null")
    check_value(value, where)


CODECS: Final[tuple[OpCodec, ...]] = (
    simple_codec(
        LockAcquire, 5, ("name", check_key), ("owner", check_owner), ("ttl_ms", _check_ttl)
    ),
    simple_codec(
        LockRefresh, 6, ("name", check_key), ("owner", check_owner), ("ttl_ms", _check_ttl)
    ),
    simple_codec(LockRelease, 7, ("name", check_key), ("owner", check_owner)),
    simple_codec(LockStatus, 8, ("name", check_key), read=True),
    simple_codec(NameRegister, 9, ("name", check_key), ("owner", check_owner)),
    simple_codec(NameLookup, 10, ("name", check_key), read=True),
    simple_codec(
        DecisionPropose,
        11,
        ("id", check_key),
        ("value", _check_decision_value),
        values=("value",),
    ),
    simple_codec(DecisionGet, 12, ("id", check_key), read=True),
)

# ---------------------------------------------------------------------------------------------
# The state machine

# Plain tuples, not objects: the cheapest record.
Lease: TypeAlias = tuple[str, int, int, bool]  # (owner, fencing_token, lease_id, held)


class Coordination:
    """Locks, names and decisions of one replica. Not thread-safe; not shared."""

    __slots__ = (
        "_bound",
        "_pending",
        "decisions",
        "fencing_token",
        "lessor",
        "locks",
        "names",
        "now_ms",
    )

    def __init__(self) -> None:
        self.now_ms = 0
        self.fencing_token = 0
        # The key-value store's lessor once the router binds it (`bind`); until then one of
        # its own, so that the part also works alone.
        self.lessor = Lessor()
        self._bound = False
        self._pending: list[tuple[int, int]] = []  # (lease id, deadline): old snapshots' locks
        self.locks: dict[str, Lease] = {}
        self.names: dict[str, str] = {}
        self.decisions: dict[str, Any] = {}

    def bind(self, lessor: Lessor) -> None:
        """Hold locks with `lessor` (the key-value store's): the state machine's one TTL
        machine. A lock restored from a snapshot older than that gets its lease now."""
        self.lessor = lessor
        self._bound = True
        for lease_id, deadline in self._pending:
            lessor.grant(lease_id, max(1, deadline - lessor.now_ms))
        self._pending.clear()

    def adopt_lock(self, name: str, owner: str, token: int, expires_at_ms: int, held: bool) -> None:
        """A lock as snapshots before leases wrote it (an expiry date in log time): held by
        a lease ending then, if it has not ended yet."""
        lease_id = lock_lease_base + token
        self.locks[name] = (owner, token, lease_id, held)
        if held and expires_at_ms >= self.now_ms:
            self._pending.append((lease_id, expires_at_ms))

    def readers(self) -> dict[type, Callable[[Any], Result]]:
        return {
            LockStatus: self._lock_status,
            NameLookup: self._name_lookup,
            DecisionGet: self._decision_get,
        }

    def snapshot_view(self) -> CoordinationView:
        return CoordinationView(self)

    def handlers(self) -> dict[type, Callable[[Any], Result]]:
        return {
            LockAcquire: self._lock_acquire,
            LockRefresh: self._lock_refresh,
            LockRelease: self._lock_release,
            LockStatus: self._lock_status,
            NameRegister: self._name_register,
            NameLookup: self._name_lookup,
            DecisionPropose: self._decision_propose,
            DecisionGet: self._decision_get,
        }

    def advance_time(self, now_ms: int) -> None:
        self.now_ms = now_ms
        if not self._bound:  # alone: its own lessor's time (the store moves a bound one)
            self.lessor.now_ms = now_ms
            for lease_id in self.lessor.due():
                self.lessor.end(lease_id)

    @property
    def wants_log_time(self) -> bool:
        """The locks' leases are the key-value store's, which says when it waits for time;
        a part alone says it for its own."""
        return not self._bound and bool(self.lessor.leases)

    def _remaining_ms(self, lease: TimedLease) -> int:
        return lease.deadline_ms - self.lessor.now_ms

    # -----------------------------------------------------------------------------------------
    # Locks

    def _live_lease(self, name: str) -> Lease | None:
        """The lock's record if someone holds it at the current log time (its lease lives)."""
        lease = self.locks.get(name)
        if lease is None or not lease[3] or lease[2] not in self.lessor.leases:
            return None
        return lease

    def _lock_acquire(self, op: LockAcquire) -> Result:
        lease = self._live_lease(op.name)
        lessor = self.lessor
        if lease is not None:
            owner, token, lease_id, _ = lease
            timed = lessor.leases[lease_id]
            if owner != op.owner:
                return LockResult(
                    acquired=False,
                    name=op.name,
                    owner=owner,
                    fencing_token=token,
                    expires_in_ms=self._remaining_ms(timed),
                )
            # Re-entrant: the holder keeps its token, so fenced resources keep accepting it.
            timed.ttl_ms = op.ttl_ms
            lessor.renew(timed, lease_id, op.ttl_ms)
        else:
            # A new grant (free, released or expired, even to the previous owner, whose old
            # token may already have been superseded in the resource it protects).
            self.fencing_token += 1
            token = self.fencing_token
            lease_id = lock_lease_base + token
            lessor.grant(lease_id, op.ttl_ms)
        self.locks[op.name] = (op.owner, token, lease_id, True)
        return LockResult(
            acquired=True,
            name=op.name,
            owner=op.owner,
            fencing_token=token,
            expires_in_ms=op.ttl_ms,
        )

    def _lock_refresh(self, op: LockRefresh) -> Result:
        lease = self._live_lease(op.name)
        if lease is None or lease[0] != op.owner:
            return Error(code=NOT_HOLDER, message=self._not_holder(op.name, op.owner, lease))
        timed = self.lessor.leases[lease[2]]
        timed.ttl_ms = op.ttl_ms
        self.lessor.renew(timed, lease[2], op.ttl_ms)
        return LockResult(
            acquired=True,
            name=op.name,
            owner=op.owner,
            fencing_token=lease[1],
            expires_in_ms=op.ttl_ms,
        )

    def _lock_release(self, op: LockRelease) -> Result:
        lease = self._live_lease(op.name)
        if lease is not None:
            if lease[0] != op.owner:
                return Error(code=NOT_HOLDER, message=self._not_holder(op.name, op.owner, lease))
            self.lessor.end(lease[2])
            self.locks[op.name] = (lease[0], lease[1], lease[2], False)
            return Released(released=True, name=op.name, owner=op.owner)
        last = self.locks.get(op.name)
        if last is not None and last[0] == op.owner:
            # Already free (released or expired): releasing again is a harmless retry.
            return Released(released=False, name=op.name, owner=op.owner)
        return Error(code=NOT_HOLDER, message=self._not_holder(op.name, op.owner, None))

    def _not_holder(self, name: str, owner: str, lease: Lease | None) -> str:
        if lease is None:
            return f"{owner!r} does not hold lock {name!r}: it is free or its lease expired"
        return f"{owner!r} does not hold lock {name!r}: {lease[0]!r} does"

    def _lock_status(self, op: LockStatus) -> Result:
        lease = self._live_lease(op.name)
        if lease is None:
            return LockResult(
                acquired=False, name=op.name, owner=None, fencing_token=None, expires_in_ms=None
            )
        return LockResult(
            acquired=True,
            name=op.name,
            owner=lease[0],
            fencing_token=lease[1],
            expires_in_ms=self._remaining_ms(self.lessor.leases[lease[2]]),
        )

    # -----------------------------------------------------------------------------------------
    # Names and decisions

    def _name_register(self, op: NameRegister) -> Result:
        owner = self.names.setdefault(op.name, op.owner)
        return NameResult(registered=owner == op.owner, name=op.name, owner=owner)

    def _name_lookup(self, op: NameLookup) -> Result:
        owner = self.names.get(op.name)
        return NameResult(registered=owner is not None, name=op.name, owner=owner)

    def _decision_propose(self, op: DecisionPropose) -> Result:
        return DecisionResult(id=op.id, chosen=self.decisions.setdefault(op.id, op.value))

    def _decision_get(self, op: DecisionGet) -> Result:
        return DecisionResult(id=op.id, chosen=self.decisions.get(op.id))


# ---------------------------------------------------------------------------------------------
# Snapshots
#
# The coordination section of a version-3 snapshot (snapshot.py, router.py):
#   ["coordination", fencing_token, locks, names, decisions, "leases"]   the counts of each
#                                                                   table; held by leases
#   [name, owner, fencing_token, lease_id, held]                    per lock, sorted by name
# A section written before locks were held by leases has no "leases" in its header and an
# expiry date in log time (expires_at_ms) instead of the lease id: each held lock not yet
# expired gets a lease ending then (`Coordination.adopt_lock`, `bind`).
#   [name, owner]                                                   per name, sorted
#   [id, value]                                                     per decision, sorted


class CoordinationView:
    """Coordination's tables as they were when the view was taken (copied: they are small
    beside the key-value store), to be written from any thread."""

    __slots__ = ("_decisions", "_fencing_token", "_locks", "_names")

    def __init__(self, part: Coordination) -> None:
        self._fencing_token = part.fencing_token
        self._locks = dict(part.locks)
        self._names = dict(part.names)
        self._decisions = dict(part.decisions)

    def write(self, writer: Any) -> None:
        locks, names, decisions = self._locks, self._names, self._decisions
        counts = [len(locks), len(names), len(decisions)]
        writer.write(["coordination", self._fencing_token, *counts, "leases"])
        for name in sorted(locks):
            writer.write([name, *locks[name]])
        for name in sorted(names):
            writer.write([name, names[name]])
        for id_ in sorted(decisions):
            writer.write([id_, decisions[id_]])

    def close(self) -> None:
        return None


def restore(objects: Any, reader: Any, now_ms: int) -> Coordination:
    """The tables a section written by `CoordinationView.write` describes, at log time
    `now_ms`; `CorruptSnapshot` for anything `write` could not have written."""
    head = reader.next(objects, "the coordination section")
    if type(head) is not list or head[:1] != ["coordination"] or head[5:] not in ([], ["leases"]):
        raise CorruptSnapshot(f"coordination section: malformed header {head!r:.60}")
    _, fencing_token, locks, names, decisions = head[:5]
    leased = len(head) == 6
    for count in (fencing_token, locks, names, decisions):
        if type(count) is not int or count < 0:
            raise CorruptSnapshot("coordination section: malformed header")
    part = Coordination()
    part.now_ms = now_ms
    part.fencing_token = fencing_token
    previous = ""
    for _ in range(locks):
        row = _row(reader.next(objects, "a lock"), 5, previous, "lock")
        name, owner, token, expires, held = row
        _text(owner, "lock owner", owner_bytes_max)
        if type(token) is not int or not 1 <= token <= fencing_token:
            raise CorruptSnapshot(f"lock {name!r:.40}: fencing token {token!r:.40}")
        if type(expires) is not int or type(held) is not bool:
            raise CorruptSnapshot(f"lock {name!r:.40}: malformed lease")
        if not leased:
            part.adopt_lock(name, owner, token, expires, held)
        elif expires != lock_lease_base + token:
            raise CorruptSnapshot(f"lock {name!r:.40}: lease {expires} is not its token's")
        else:
            part.locks[name] = (owner, token, expires, held)
        previous = name
    previous = ""
    for _ in range(names):
        name, owner = _row(reader.next(objects, "a name"), 2, previous, "name")
        part.names[name] = _text(owner, "name owner", owner_bytes_max)
        previous = name
    previous = ""
    for _ in range(decisions):
        id_, value = _row(reader.next(objects, "a decision"), 2, previous, "decision")
        if value is None:
            raise CorruptSnapshot("a decision's chosen value is null")
        try:
            check_value(value, "decision value")
        except BadCommand as error:
            raise CorruptSnapshot(str(error)) from None
        part.decisions[id_] = value
        previous = id_
    return part


def _row(row: object, width: int, previous: str, what: str) -> list[Any]:
    if type(row) is not list or len(row) != width:
        raise CorruptSnapshot(f"malformed {what} row {row!r:.60}")
    name = _text(row[0], what, key_bytes_max)
    if name <= previous:
        raise CorruptSnapshot(f"{what} rows are not sorted by unique names")
    return row


def _text(value: object, what: str, limit_bytes: int) -> str:
    if type(value) is not str or not value or len(value.encode()) > limit_bytes:
        raise CorruptSnapshot(f"{what} {value!r:.40} is not a valid string")
    return value
