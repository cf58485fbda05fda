"""The key-value store as a state machine behind the router: etcd v3's KV semantics.

Theory of operation: the router hands this machine, in log order, the key-value requests of
the log (Put, DeleteRange, Txn, Compact, and Range if a client sent one through the log), and
the reads the engine answers from the current state (Range, read-only Txn). Everything is
answered as etcd 3.4's applier answers it (etcdserver/apply.go), on top of the
multi-version store (store.py):

* Range: select `[key, range_end)` at the revision asked (0: the current one; refused above
  the current revision and below the compacted one), drop what the `min/max_*_revision`
  filters exclude, sort (stably: keys in byte order break ties; DESCEND is the exact reverse
  of ASCEND), cut at `limit` (`more` says whether it cut), then `keys_only` / `count_only`.
  `count` counts the keys that passed the filters (etcd 3.4 counts before its filters).
  The answer is bounded by `range_keys_max` keys and `range_bytes_max` bytes of keys and
  values: over either, the request is refused with an error naming the limit and the count.
  Reads use the limits the node was configured with; requests applied from the log use the
  defaults, which every replica shares.
* Put writes at the next revision; `prev_kv`, `ignore_value`, `ignore_lease` as in etcd; a
  `lease` other than 0 attaches the key to that lease (refused, "requested lease not found",
  unless the lease is live).
* Leases (leases.py): grant, revoke, keep-alive, time-to-live and list, as etcd's, on log
  time. Revoking a lease, or log time passing its deadline (`advance_time`), deletes its keys
  in one revision. Which keys a lease holds is kept from the events of every committed write
  (`_commit`), whatever request made them.
* DeleteRange deletes every live key in the range at one revision (none deleted: no new
  revision).
* Txn: the compares of the transaction AND of every nested transaction on the chosen path are
  evaluated first, against the state before the transaction (etcd's compareToPath); then the
  requests on that path are checked (ranges' revisions; puts' ignore_value/ignore_lease and
  lease) against that same state, and any failure refuses the whole transaction; then its
  ops run in order, each seeing the writes before it, all at one revision. A range answer
  over the limits refuses the transaction and undoes its writes. A nested transaction's
  answer carries revision 0, as etcd's does (only the outer answer has a header).
* Compact: refused at or below the compacted revision ("required revision has been
  compacted") and above the current one; otherwise the store compacts (store.py).

Every write request yields its events (types.Event: key, the version after, the version
before), in the order it made them; the router hands them on with the request's answer.

The commands older than this model (legacy.py: tags 1-4, string keys, JSON values) still
apply, to the same store: keys are their UTF-8 bytes, values their JSON text (values.py
`json_text`). A version-2 snapshot holds neither versions nor history, and a node that
restores one must reach the same state as a node that replays the commands it covers, so
those commands leave a key at version 1 and compact the history to their revision.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from paxosd.service.codec import key_bytes_max
from paxosd.service.errors import CorruptSnapshot
from paxosd.service.results import CasResult, Deleted, NotFound, Result, Value, Written
from paxosd.service.values import from_json_text, json_equal, json_text

from .checks import DEFAULT_LIMITS, KvLimits
from .errors import (
    KvError,
    answer_too_large,
    compacted,
    future_revision,
    key_not_found,
    lease_exist,
    lease_not_found,
)
from .index import KeyIndex
from .leases import (
    LeaseGrant,
    LeaseGrantResponse,
    LeaseKeepAlive,
    LeaseKeepAliveResponse,
    LeaseLeases,
    LeaseLeasesResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    LeaseTimeToLive,
    LeaseTimeToLiveResponse,
    Lessor,
    lock_lease_base,
    restore_lessor,
)
from .legacy import Cas, Delete, Get
from .legacy import Put as LegacyPut
from .store import MvccStore, version_size
from .types import (
    Compact,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    SortOrder,
    SortTarget,
    Txn,
    TxnResponse,
)

# Planted bugs (runtime/variants.py): the simulator's multi-key checker must catch each.
KV_VARIANTS: Final = {
    "txn-stale-compare": "a transaction's compares read the store one revision before the "
    "one its writes apply at",
    "range-page-drop": "a range cut by its limit drops the last key of the page",
    "compaction-frees-readable": "compaction frees the version live at the compacted "
    "revision, which is still readable",
    "nested-compare-late": "a nested transaction's compares read the store as the ops "
    "before it in its branch left it, not as it was before the transaction",
    "lease-revoke-leaves-key": "revoking a lease deletes all of its keys but the last",
}

# The answer limits of requests applied from the log: the defaults, the same on every replica
# (a node's configured limits shape only the reads it answers itself).
APPLIED_LIMITS: Final = DEFAULT_LIMITS
# The chosen branch of a transaction and the plans of the transactions nested in it.
Plan: TypeAlias = tuple[bool, tuple["Plan", ...]]
_ABSENT: Final = KeyValue(b"", 0, 0, 0, b"", 0)
_new_tuple = tuple.__new__
_PUT_EVENT: Final = EventType.PUT
_DELETE_EVENT: Final = EventType.DELETE
_SORT_KEYS: Final[dict[SortTarget, Callable[[KeyValue], Any]]] = {
    SortTarget.KEY: lambda kv: kv.key,
    SortTarget.VERSION: lambda kv: kv.version,
    SortTarget.CREATE: lambda kv: kv.create_revision,
    SortTarget.MOD: lambda kv: kv.mod_revision,
    SortTarget.VALUE: lambda kv: kv.value,
}


_row_of: Final = operator.itemgetter(slice(1, None))

# A put's answer built through its slots: half the cost of the frozen dataclass's __init__
# (which sets each field through object.__setattr__), and every write on every replica makes
# one. The fields are exactly PutResponse's, in its order.
_new_object = object.__new__
_set_revision = getattr(PutResponse, "revision").__set__  # noqa: B009 (a slot, not a field)
_set_prev_kv = getattr(PutResponse, "prev_kv").__set__  # noqa: B009
assert tuple(PutResponse.__slots__) == ("revision", "prev_kv")


def _put_response(revision: int) -> PutResponse:
    answer: PutResponse = _new_object(PutResponse)
    _set_revision(answer, revision)
    _set_prev_kv(answer, None)
    return answer


def _end(range_end: bytes) -> bytes | None:
    return None if range_end == b"\0" else range_end


class KvMachine:
    """One replica's key-value store. Not thread-safe; not shared."""

    __slots__ = (
        "_changed",
        "_housekeeping",
        "_noted",
        "events",
        "leases",
        "read_limits",
        "store",
        "variant",
    )

    def __init__(self, read_limits: KvLimits = DEFAULT_LIMITS, variant: str = "correct") -> None:
        assert variant == "correct" or variant in KV_VARIANTS, variant
        self.variant = variant
        self.store = MvccStore(frees_live=variant == "compaction-frees-readable")
        self.read_limits = read_limits
        # The events of the request being applied; the router takes them after each one.
        self.events: list[Event] = []
        self._changed = False  # whether the transaction being applied wrote yet
        self._housekeeping = False  # whether compacted versions wait to be freed
        self.leases = Lessor()
        self._noted = 0  # how many of `events` the lease table has seen (`_commit`)

    def handlers(self) -> dict[type, Callable[[Any], Result]]:
        return {
            Range: self._range_applied,
            Put: self._put,
            DeleteRange: self._delete_range,
            Txn: self._txn,
            Compact: self._compact,
            Get: self._legacy_get,
            LegacyPut: self._legacy_put,
            Delete: self._legacy_delete,
            Cas: self._legacy_cas,
            LeaseGrant: self._lease_grant,
            LeaseRevoke: self._lease_revoke,
            LeaseKeepAlive: self._lease_keepalive,
            LeaseTimeToLive: self._lease_timetolive,
            LeaseLeases: self._lease_leases,
        }

    def readers(self) -> dict[type, Callable[[Any], Result]]:
        return {
            Range: self._range_read,
            Txn: self._txn_read,
            Get: self._legacy_get,
            LeaseTimeToLive: self._lease_timetolive,
            LeaseLeases: self._lease_leases,
        }

    def advance_time(self, now_ms: int) -> None:
        """Log time is `now_ms`: end every lease it passed, their keys in one revision."""
        leases = self.leases
        leases.now_ms = now_ms
        if leases.leases:
            ended = leases.due()
            if ended:
                self._end_leases(ended)

    @property
    def wants_log_time(self) -> bool:
        """A live lease waits for log time to pass its deadline."""
        return bool(self.leases.leases)

    def snapshot_view(self) -> KvView:
        return KvView(self)

    def take_events(self) -> tuple[Event, ...]:
        """The events of the last request applied (and forget them)."""
        events = self.events
        if not events:
            return ()
        taken = tuple(events)
        events.clear()
        self._noted = 0
        return taken

    @property
    def revision(self) -> int:
        return self.store.revision

    def housekeep(self) -> None:
        """Free compacted versions, a bounded amount per call."""
        if self._housekeeping:
            self._housekeeping = self.store.housekeep()

    # -----------------------------------------------------------------------------------------
    # Range

    def _range_read(self, op: Range) -> Result:
        return self._range(op, self.store.revision, self.read_limits)

    def _range_applied(self, op: Range) -> Result:
        return self._range(op, self.store.revision, APPLIED_LIMITS)

    def _range(self, op: Range, current: int, limits: KvLimits) -> RangeResponse | KvError:
        """Range `op` reading the store at `current` (its revision + 1 inside a transaction
        that wrote already)."""
        store = self.store
        revision = op.revision
        if revision > current:
            return future_revision(revision, current)
        if revision <= 0:
            revision = current
        elif revision < store.compact_revision:
            return compacted(revision, store.compact_revision)
        if not op.range_end:
            kv = store.get(op.key, revision)
            kvs = [] if kv is None else [kv]
        else:
            end = _end(op.range_end)
            if end is not None and end <= op.key:
                kvs = []
            else:
                kvs = list(store.range(op.key, end, revision))
        if op.max_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision <= op.max_mod_revision]
        if op.min_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision >= op.min_mod_revision]
        if op.max_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision <= op.max_create_revision]
        if op.min_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision >= op.min_create_revision]
        count = len(kvs)
        if op.count_only:
            return RangeResponse(revision=current, count=count)
        order, target = op.sort_order, op.sort_target
        if target != SortTarget.KEY and order == SortOrder.NONE:
            order = SortOrder.ASCEND  # as etcd: a target without an order sorts ascending
        if order != SortOrder.NONE and len(kvs) > 1:
            if target != SortTarget.KEY:
                kvs.sort(key=_SORT_KEYS[SortTarget(target)])  # stable: keys break ties
            if order == SortOrder.DESCEND:
                kvs.reverse()
        more = False
        if 0 < op.limit < len(kvs):
            del kvs[op.limit :]
            more = True
            if self.variant == "range-page-drop":
                del kvs[-1]  # the planted bug
        if op.keys_only:
            kvs = [kv._replace(value=b"") for kv in kvs]
        error = _too_large(kvs, limits)
        if error is not None:
            return error
        return RangeResponse(revision=current, kvs=tuple(kvs), more=more, count=count)

    # -----------------------------------------------------------------------------------------
    # Put and DeleteRange

    def _commit(self, changed: bool) -> None:
        """Commit the request being applied to the store, and move the keys it changed
        between leases: a key follows its newest version's lease (0 once deleted)."""
        self.store.commit(changed)
        events = self.events
        if len(events) > self._noted:
            # With no live lease every attach would find neither lease: skip them (most
            # stores, most of the time; this runs for every write).
            if self.leases.leases:
                attach = self.leases.attach
                for event in events[self._noted :]:
                    prev = event.prev_kv
                    attach(event.kv.key, prev.lease if prev is not None else 0, event.kv.lease)
            self._noted = len(events)

    def _put(self, op: Put) -> Result:
        if op.lease or op.prev_kv or op.ignore_value or op.ignore_lease:
            return self._put_with_options(op)
        # A plain put: the commit path's write, applied on every replica. What `_write_put`
        # and `_commit` do for it, with nothing to look up for its options.
        kv, replaced = self.store.put(op.key, op.value, 0)
        self.events.append(_new_tuple(Event, (_PUT_EVENT, kv, replaced)))
        self._commit(True)
        if self._housekeeping:
            self.housekeep()
        return _put_response(kv.mod_revision)

    def _put_with_options(self, op: Put) -> Result:
        if op.lease and (op.lease >= lock_lease_base or op.lease not in self.leases.leases):
            return lease_not_found(op.lease)
        store = self.store
        if op.ignore_value or op.ignore_lease or op.prev_kv:
            previous = store.get(op.key, store.revision)
            if previous is None and (op.ignore_value or op.ignore_lease):
                return key_not_found(op.key, "ignore_value" if op.ignore_value else "ignore_lease")
        answer = self._write_put(op)
        self._commit(True)
        if self._housekeeping:
            self.housekeep()
        return answer

    def _write_put(self, op: Put) -> PutResponse:
        """Write `op` (checked already) at the store's next revision."""
        store = self.store
        value, lease = op.value, op.lease
        if op.ignore_value or op.ignore_lease:
            current = store.get(op.key, store.revision + 1)
            assert current is not None
            if op.ignore_value:
                value = current.value
            if op.ignore_lease:
                lease = current.lease
        kv, replaced = store.put(op.key, value, lease)
        self.events.append(_new_tuple(Event, (_PUT_EVENT, kv, replaced)))
        return PutResponse(revision=kv.mod_revision, prev_kv=replaced if op.prev_kv else None)

    def _delete_range(self, op: DeleteRange) -> Result:
        self._changed = False
        answer = self._write_delete(op, APPLIED_LIMITS)
        if isinstance(answer, KvError):
            return answer
        self._commit(answer.deleted > 0)
        self.housekeep()
        return answer

    def _write_delete(self, op: DeleteRange, limits: KvLimits) -> DeleteRangeResponse | KvError:
        """Delete the keys of `op` at the store's next revision."""
        store = self.store
        if not op.range_end:
            kv = store.get(op.key, store.revision + 1)
            doomed = [] if kv is None else [kv]
        else:
            end = _end(op.range_end)
            if end is not None and end <= op.key:
                doomed = []
            else:
                doomed = list(store.range(op.key, end, store.revision + 1))
        if op.prev_kv:
            error = _too_large(doomed, limits)
            if error is not None:
                return error
        events = self.events
        for kv in doomed:
            deleted = store.delete(kv.key)
            assert deleted is not None
            events.append(_new_tuple(Event, (_DELETE_EVENT, deleted[0], deleted[1])))
        if doomed:
            self._changed = True
        revision = store.revision + 1 if doomed or self._changed else store.revision
        return DeleteRangeResponse(
            revision=revision, deleted=len(doomed), prev_kvs=tuple(doomed) if op.prev_kv else ()
        )

    # -----------------------------------------------------------------------------------------
    # Transactions

    def _txn_read(self, op: Txn) -> Result:
        return self._transact(op, self.read_limits)

    def _txn(self, op: Txn) -> Result:
        answer = self._transact(op, APPLIED_LIMITS)
        self.housekeep()
        return answer

    def _transact(self, op: Txn, limits: KvLimits) -> TxnResponse | KvError:
        store = self.store
        before = store.revision
        seen = before - 1 if self.variant == "txn-stale-compare" and before > 1 else before
        plan = self._plan(op, seen)  # `seen` differs from `before` only in the planted bug
        write = not op.is_read_only()
        error = self._check(op, plan, write)
        if error is not None:
            return error
        self._changed = False
        if not write:
            responses = self._run(op, plan, limits)
            assert not isinstance(responses, KvError) or responses.code == "answer_too_large"
            if isinstance(responses, KvError):
                return responses
            return TxnResponse(revision=before, succeeded=plan[0], responses=responses)
        store.begin()
        answer = self._run(op, plan, limits)
        if isinstance(answer, KvError):
            store.abort()
            self.events.clear()
            self._noted = 0
            return answer
        self._commit(self._changed)
        return TxnResponse(revision=store.revision, succeeded=plan[0], responses=answer)

    def _plan(self, op: Txn, revision: int) -> Plan:
        """Which branch runs, here and in every transaction nested on the way (etcd's
        compareToPath: all against the state before the transaction)."""
        succeeded = all(self._compare(compare, revision) for compare in op.compare)
        ops = op.success if succeeded else op.failure
        return succeeded, tuple(self._plan(child, revision) for child in ops if type(child) is Txn)

    def _compare(self, compare: Compare, revision: int) -> bool:
        store = self.store
        if not compare.range_end:
            kv = store.get(compare.key, revision)
            if kv is None:
                return compare.target != CompareTarget.VALUE and _holds(compare, _ABSENT)
            return _holds(compare, kv)
        end = _end(compare.range_end)
        found = False
        if end is None or end > compare.key:
            for kv in store.range(compare.key, end, revision):
                if not _holds(compare, kv):
                    return False
                found = True
        if found:
            return True
        # No key in the range: a VALUE compare fails, the others compare with zeros.
        return compare.target != CompareTarget.VALUE and _holds(compare, _ABSENT)

    def _check(self, op: Txn, plan: Plan, write: bool) -> KvError | None:
        """etcd's checkRequests on the chosen path, against the state before the txn: every
        put first (a transaction that writes), then every range, so that a transaction with
        both a refused put and a refused range names the put's error, as etcd does."""
        if write:
            error = self._check_ops(op, plan, Put, self._check_put)
            if error is not None:
                return error
        return self._check_ops(op, plan, Range, self._check_range)

    def _check_ops(
        self, op: Txn, plan: Plan, kind: type, check: Callable[[Any], KvError | None]
    ) -> KvError | None:
        """`check` on every op of `kind` on the chosen path, in order, nested ones included;
        the first refusal."""
        nested = iter(plan[1])
        chosen: tuple[Any, ...] = op.success if plan[0] else op.failure
        for child in chosen:
            if type(child) is Txn:
                error = self._check_ops(child, next(nested), kind, check)
            elif type(child) is kind:
                error = check(child)
            else:
                continue
            if error is not None:
                return error
        return None

    def _check_put(self, put: Put) -> KvError | None:
        store = self.store
        ignoring = put.ignore_value or put.ignore_lease
        if ignoring and store.get(put.key, store.revision) is None:
            return key_not_found(put.key, "ignore_value" if put.ignore_value else "ignore_lease")
        if put.lease and (put.lease >= lock_lease_base or put.lease not in self.leases.leases):
            return lease_not_found(put.lease)
        return None

    def _check_range(self, op: Range) -> KvError | None:
        store = self.store
        if op.revision > store.revision:
            return future_revision(op.revision, store.revision)
        if op.revision and op.revision < store.compact_revision:
            return compacted(op.revision, store.compact_revision)
        return None

    def _run(self, op: Txn, plan: Plan, limits: KvLimits) -> tuple[Any, ...] | KvError:
        """Run the chosen branch's ops in order; their answers, or the first refusal."""
        store = self.store
        nested = iter(plan[1])
        answers: list[Any] = []
        chosen: tuple[Any, ...] = op.success if plan[0] else op.failure
        for child in chosen:
            kind = type(child)
            if kind is Range:
                reading = store.revision + 1 if self._changed else store.revision
                answer: Any = self._range(child, reading, limits)
            elif kind is Put:
                answer = self._write_put(child)
                self._changed = True
            elif kind is DeleteRange:
                answer = self._write_delete(child, limits)
            else:
                subplan = next(nested)
                if self.variant == "nested-compare-late":
                    reading = store.revision + 1 if self._changed else store.revision
                    subplan = self._plan(child, reading)
                inner = self._run(child, subplan, limits)
                if isinstance(inner, KvError):
                    return inner
                answer = TxnResponse(revision=0, succeeded=subplan[0], responses=inner)
            if isinstance(answer, KvError):
                return answer
            answers.append(answer)
        return tuple(answers)

    # -----------------------------------------------------------------------------------------
    # Compaction

    def _compact(self, op: Compact) -> Result:
        store = self.store
        if op.revision <= store.compact_revision:
            return compacted(op.revision, store.compact_revision)
        if op.revision > store.revision:
            return future_revision(op.revision, store.revision)
        store.compact(op.revision)
        self._housekeeping = True
        self.housekeep()
        return CompactionResponse(revision=store.revision)

    # -----------------------------------------------------------------------------------------
    # Leases (leases.py)

    def _lease_grant(self, op: LeaseGrant) -> Result:
        leases = self.leases
        lease_id = op.id
        if not lease_id:
            lease_id = leases.choose_id()
        elif lease_id in leases.leases:
            return lease_exist(lease_id)
        leases.grant(lease_id, op.ttl_ms)
        return LeaseGrantResponse(revision=self.store.revision, id=lease_id, ttl_ms=op.ttl_ms)

    def _lease_revoke(self, op: LeaseRevoke) -> Result:
        if op.id not in self.leases.leases:
            return lease_not_found(op.id)
        self._end_leases([op.id], revoked=True)
        return LeaseRevokeResponse(revision=self.store.revision)

    def _lease_keepalive(self, op: LeaseKeepAlive) -> Result:
        leases = self.leases
        lease = leases.leases.get(op.id)
        if lease is None:
            return lease_not_found(op.id)
        leases.renew(lease, op.id, lease.ttl_ms)
        return LeaseKeepAliveResponse(revision=self.store.revision, id=op.id, ttl_ms=lease.ttl_ms)

    def _lease_timetolive(self, op: LeaseTimeToLive) -> Result:
        leases = self.leases
        lease = leases.leases.get(op.id)
        revision = self.store.revision
        if lease is None:
            return LeaseTimeToLiveResponse(revision=revision, id=op.id, ttl_ms=-1, granted_ttl_ms=0)
        return LeaseTimeToLiveResponse(
            revision=revision,
            id=op.id,
            ttl_ms=leases.remaining_ms(lease),
            granted_ttl_ms=lease.ttl_ms,
            keys=tuple(sorted(lease.keys)) if op.keys else (),
        )

    def _lease_leases(self, op: LeaseLeases) -> Result:
        ids = sorted(i for i in self.leases.leases if i < lock_lease_base)  # not the locks'
        return LeaseLeasesResponse(revision=self.store.revision, ids=tuple(ids))

    def _end_leases(self, ids: list[int], revoked: bool = False) -> None:
        """End the leases `ids`: forget them and delete all their keys, in one revision."""
        store = self.store
        events = self.events
        doomed: list[bytes] = []
        for lease_id in ids:
            doomed.extend(self.leases.leases.pop(lease_id).keys)
        doomed.sort()
        if revoked and self.variant == "lease-revoke-leaves-key" and doomed:
            del doomed[-1]  # the planted bug
        for key in doomed:
            deleted = store.delete(key)
            assert deleted is not None, key
            events.append(_new_tuple(Event, (_DELETE_EVENT, deleted[0], deleted[1])))
        self._commit(bool(doomed))
        if doomed:
            self.housekeep()

    # -----------------------------------------------------------------------------------------
    # Commands older than this model (module docstring)

    def _legacy_get(self, op: Get) -> Result:
        kv = self.store.get(op.key.encode(), self.store.revision)
        if kv is None:
            return NotFound(key=op.key)
        return Value(
            key=op.key,
            value=_legacy_value(kv.value),
            revision=kv.mod_revision,
            create_revision=kv.create_revision,
        )

    def _legacy_write(self, key: str, value: Any) -> int:
        store = self.store
        kv, replaced = store.put(key.encode(), json_text(value), 0, version=1)
        self.events.append(_new_tuple(Event, (_PUT_EVENT, kv, replaced)))
        self._commit(True)
        self._legacy_compact()
        return kv.mod_revision

    def _legacy_compact(self) -> None:
        store = self.store
        if store.compact_revision < store.revision:
            store.compact(store.revision)
            self._housekeeping = True
            self.housekeep()

    def _legacy_put(self, op: LegacyPut) -> Result:
        return Written(key=op.key, revision=self._legacy_write(op.key, op.value))

    def _legacy_delete(self, op: Delete) -> Result:
        store = self.store
        deleted = store.delete(op.key.encode())
        if deleted is None:
            # Nothing changed, so the revision does not move (etcd does the same).
            return Deleted(key=op.key, existed=False, revision=store.revision)
        self.events.append(_new_tuple(Event, (_DELETE_EVENT, deleted[0], deleted[1])))
        self._commit(True)
        self._legacy_compact()
        return Deleted(key=op.key, existed=True, revision=store.revision)

    def _legacy_cas(self, op: Cas) -> Result:
        kv = self.store.get(op.key.encode(), self.store.revision)
        if op.expected is None:
            matches = kv is None
        else:
            matches = kv is not None and json_equal(_legacy_value(kv.value), op.expected)
        if not matches:
            if kv is None:
                return CasResult(succeeded=False, key=op.key, value=None, revision=0)
            return CasResult(
                succeeded=False,
                key=op.key,
                value=_legacy_value(kv.value),
                revision=kv.mod_revision,
            )
        revision = self._legacy_write(op.key, op.value)
        return CasResult(succeeded=True, key=op.key, value=op.value, revision=revision)


def _legacy_value(data: bytes) -> Any:
    """A stored value as the old commands answered it: JSON, or text if it is not JSON."""
    ok, value = from_json_text(data)
    return value if ok else data.decode("utf-8", "replace")


def _holds(compare: Compare, kv: KeyValue) -> bool:
    """etcd's compareKV."""
    target = compare.target
    if target == CompareTarget.VALUE:
        mine: Any = kv.value
        theirs: Any = compare.value
    elif target == CompareTarget.VERSION:
        mine, theirs = kv.version, compare.version
    elif target == CompareTarget.CREATE:
        mine, theirs = kv.create_revision, compare.create_revision
    elif target == CompareTarget.MOD:
        mine, theirs = kv.mod_revision, compare.mod_revision
    else:
        mine, theirs = kv.lease, compare.lease
    result = compare.result
    if result == CompareResult.EQUAL:
        return bool(mine == theirs)
    if result == CompareResult.NOT_EQUAL:
        return bool(mine != theirs)
    if result == CompareResult.GREATER:
        return bool(mine > theirs)
    return bool(mine < theirs)


def _too_large(kvs: list[KeyValue], limits: KvLimits) -> KvError | None:
    if len(kvs) > limits.range_keys_max:
        return answer_too_large("keys", len(kvs), "range_keys_max", limits.range_keys_max)
    size = 0
    for kv in kvs:
        size += len(kv.key) + len(kv.value)
    if size > limits.range_bytes_max:
        return answer_too_large(
            "bytes of keys and values", size, "range_bytes_max", limits.range_bytes_max
        )
    return None


# ---------------------------------------------------------------------------------------------
# Snapshots
#
# The key-value section of a version-3 snapshot (snapshot.py, router.py):
#   ["kv", revision, compact_revision, next_lease_id, leases]
#   [id, granted_ttl_ms, deadline_ms]                                      per lease, by id
#   [key, [[create_revision, mod_revision, version, value, lease], ...]]   per key, sorted;
#        the versions a reader needs (store.py StoreView.keys); a tombstone is [0, mod, 0, b"", 0]
#   None                                                                   the end
# A section written before leases has the header ["kv", revision, compact_revision] and no
# lease rows: it loads with no leases. Which keys a lease holds is not written: each live
# key's newest version names its lease.


class KvView:
    """The key-value store at one revision, to be written from any thread (store.py)."""

    __slots__ = ("_leases", "_next_lease_id", "_view")

    def __init__(self, machine: KvMachine) -> None:
        self._view = machine.store.open_view()
        self._leases = machine.leases.rows()  # copied: small beside the store
        self._next_lease_id = machine.leases.next_id

    def write(self, writer: Any) -> None:
        view = self._view
        leases = self._leases
        writer.write(["kv", view.revision, view.compact_revision, self._next_lease_id, len(leases)])
        for row in leases:
            writer.write(row)
        for key, versions in view.versions():
            # A version's row is its fields after the key (a tuple packs as the array a list
            # would), sliced by map in C: a long history is most of a snapshot's work.
            writer.write([key, list(map(_row_of, versions))])
        writer.write(None)

    def close(self) -> None:
        self._view.close()


def restore(
    objects: Any,
    reader: Any,
    read_limits: KvLimits = DEFAULT_LIMITS,
    variant: str = "correct",
    now_ms: int = 0,
) -> KvMachine:
    """The key-value store a section written by `KvView.write` describes, at log time
    `now_ms`, every invariant checked (`CorruptSnapshot` otherwise)."""

    def fail(what: str) -> CorruptSnapshot:
        return CorruptSnapshot(f"key-value section: {what}")

    head = reader.next(objects, "the key-value section")
    if type(head) is not list or len(head) not in (3, 5) or head[0] != "kv":
        raise fail(f"malformed header {head!r:.60}")
    revision, compact_revision = head[1], head[2]
    next_lease_id, lease_count = (head[3], head[4]) if len(head) == 5 else (1, 0)
    if type(lease_count) is not int or lease_count < 0:
        raise fail(f"lease count {lease_count!r:.40}")
    if type(revision) is not int or revision < 1:
        raise fail(f"revision {revision!r:.40}")
    if type(compact_revision) is not int or not -1 <= compact_revision <= revision:
        raise fail(f"compacted revision {compact_revision!r:.40}")
    machine = KvMachine(read_limits, variant)
    lease_rows = [reader.next(objects, "a lease") for _ in range(lease_count)]
    machine.leases = leases = restore_lessor(now_ms, next_lease_id, lease_rows, fail)
    store = machine.store
    store.revision = revision
    store.compact_revision = compact_revision
    history = store.history
    changes: list[tuple[int, bytes, int]] = []  # (revision, key, bytes its compaction frees)
    live = 0
    previous_key = b""
    # Once per key, a million times for a million keys (a learner installing a peer's
    # snapshot waits for this loop): the checks are spelled out rather than looped over, and
    # a version is built by tuple.__new__, not KeyValue's Python-level constructor.
    new_kv = tuple.__new__
    while True:
        try:
            row = next(objects)
        except StopIteration:
            raise fail("the snapshot ends before the end of the key-value section") from None
        if row is None:
            break
        if type(row) is not list or len(row) != 2 or type(row[0]) is not bytes:
            raise fail(f"malformed key row {row!r:.60}")
        key, raw_versions = row
        if not key or key <= previous_key or len(key) > key_bytes_max:
            raise fail(f"key {key!r:.40} empty, too long or out of order")
        previous_key = key
        if type(raw_versions) is not list or not raw_versions:
            raise fail(f"key {key!r:.40} has no versions")
        versions: list[KeyValue] = []
        before: KeyValue | None = None
        for raw in raw_versions:
            if type(raw) is not list or len(raw) != 5:
                raise fail(f"malformed version of {key!r:.40}")
            create, mod, version, value, lease = raw
            if not (
                type(create) is int
                and type(mod) is int
                and type(version) is int
                and type(lease) is int
                and type(value) is bytes
                and 1 <= mod <= revision
            ):
                raise fail(f"malformed version of {key!r:.40}")
            kv: KeyValue = new_kv(KeyValue, (key, create, mod, version, value, lease))
            if create:
                if not (1 <= create <= mod and version >= 1):
                    raise fail(f"version of {key!r:.40} with bad revisions")
                if before is not None and before.create_revision:
                    same = create == before.create_revision
                    if not same or version not in (before.version + 1, 1):
                        raise fail(f"versions of {key!r:.40} do not follow each other")
            elif version or value or lease or before is None:
                raise fail(f"malformed tombstone of {key!r:.40}")
            if before is not None:
                if mod <= before.mod_revision or mod <= compact_revision:
                    raise fail(f"versions of {key!r:.40} out of order or compacted")
                freed = version_size(before) if before.create_revision else 0
                if not create:
                    freed += version_size(kv)
                changes.append((mod, key, freed))
            versions.append(kv)
            before = kv
        history[key] = versions
        newest = versions[-1]
        live += bool(newest.create_revision)
        if newest.lease:
            lease = leases.leases.get(newest.lease)
            if lease is None:
                raise fail(f"key {key!r:.40} is attached to lease {newest.lease}, which is absent")
            lease.keys.add(key)
    store.index = KeyIndex(list(history))  # in key order: the rows came in it
    store.live_keys = live
    cumulative = 0
    for mod, key, freed in sorted(changes):
        cumulative += freed
        store._changes.append((cumulative, mod, key))
    store._cum = cumulative
    return machine
