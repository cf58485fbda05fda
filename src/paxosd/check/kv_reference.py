"""A deliberately naive reference model of etcd's key-value semantics: the specification the
differential tests and the simulator's multi-key checker (mvcc.py) compare paxosd against.

Written differently from the state machine on purpose: it keeps a full copy of the keyspace
for every revision (`states[r]` is a dict key -> KeyValue), answers ranges by filtering a
whole dict, runs a transaction on a scratch copy of the keyspace that it either keeps or
drops, and compacts by deleting whole revisions. Small and obviously right, slow and
memory-hungry: for tests and checkers of small key sets only. The answers are the state
machine's own types, so they compare with `==`.

Leases: a table id -> [granted TTL, deadline in log time]; a lease's keys are found by looking
at every key's `lease` (no index), and `advance_time` ends every lease whose deadline log time
passed, deleting all their keys in one revision, as the store does. Only a client's request
renews a lease: `apply` takes lease requests as a client sends them (the checker leaves out
any the log holds outside a client's request, since nothing else may renew a lease).
"""

from __future__ import annotations

from typing import Any

from paxosd.service.kv import (
    Compact,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    KeyValue,
    KvError,
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
    Put,
    PutResponse,
    Range,
    RangeResponse,
    SortOrder,
    SortTarget,
    Txn,
    TxnResponse,
    in_range,
)
from paxosd.service.kv.checks import DEFAULT_LIMITS, KvLimits
from paxosd.service.kv.errors import (
    answer_too_large,
    compacted,
    future_revision,
    key_not_found,
    lease_exist,
    lease_not_found,
)

LEASE_OPS = (LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive, LeaseLeases)

State = dict[bytes, KeyValue]


class KvModel:
    def __init__(self, limits: KvLimits = DEFAULT_LIMITS, *, keep_history: bool = False) -> None:
        """`keep_history`: compaction refuses reads as it should, but the model keeps every
        revision's keyspace (a checker reads them after the fact, `read_at`)."""
        self.limits = limits
        self.keep_history = keep_history
        self.revision = 1
        self.compacted = -1
        self.states: dict[int, State] = {1: {}}
        self.now_ms = 0  # log time
        self.leases: dict[int, list[int]] = {}  # id -> [granted ttl_ms, deadline_ms]
        self.lease_counter = 1

    @property
    def now(self) -> State:
        return self.states[self.revision]

    # -- requests ---------------------------------------------------------------------------

    def apply(self, op: Any) -> Any:
        """A request through the log."""
        if isinstance(op, Range):
            return self.range(op, self.now, self.revision, self.revision)
        if isinstance(op, Compact):
            return self.compact(op)
        if isinstance(op, LEASE_OPS):
            return self.lease(op)
        if isinstance(op, Put) and op.lease and op.lease not in self.leases:
            return lease_not_found(op.lease)
        txn = op if isinstance(op, Txn) else None
        if txn is None:
            # A single put or delete is a transaction of one op, answered as itself.
            ignoring = isinstance(op, Put) and (op.ignore_value or op.ignore_lease)
            if ignoring and op.key not in self.now:
                flag = "ignore_value" if op.ignore_value else "ignore_lease"
                return key_not_found(op.key, flag)
            scratch = dict(self.now)
            answer = self.run_op(op, scratch, [False])
            self.keep(scratch, changed=scratch != self.now)
            return answer
        return self.txn(txn, read_only=False)

    def read(self, op: Any) -> Any:
        """A read (Range, or a transaction of ranges), without the log."""
        if isinstance(op, Txn):
            return self.txn(op, read_only=True)
        if isinstance(op, LEASE_OPS):
            return self.lease(op)
        return self.range(op, self.now, self.revision, self.revision, self.limits)

    def read_at(self, op: Any, revision: int) -> Any:
        """The read `op` as answered when the store was at `revision` (which this model must
        still hold), compaction aside: for checking reads answered in the past."""
        saved = self.revision, self.compacted
        self.revision, self.compacted = revision, -1
        try:
            return self.read(op)
        finally:
            self.revision, self.compacted = saved

    def keep(self, scratch: State, changed: bool) -> None:
        if changed:
            self.revision += 1
            self.states[self.revision] = scratch

    # -- range ------------------------------------------------------------------------------

    def range(
        self, op: Range, state: State, current: int, reading: int, limits: KvLimits | None = None
    ) -> Any:
        """`op` at the state `state` (the store at `reading`), answering with `current`, its
        answer bounded by `limits` (a read: the node's own; applied from the log: the
        defaults every replica shares)."""
        rev = op.revision
        if rev > reading:
            return future_revision(rev, reading)
        if rev > 0:
            if rev < self.compacted:
                return compacted(rev, self.compacted)
            state = self.states[rev] if rev in self.states else self.state_at(rev)
        kvs = sorted(
            (kv for key, kv in state.items() if in_range(key, op.key, op.range_end)),
            key=lambda kv: kv.key,
        )
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
        order = op.sort_order
        if op.sort_target != SortTarget.KEY and order == SortOrder.NONE:
            order = SortOrder.ASCEND
        field = {
            SortTarget.KEY: "key",
            SortTarget.VERSION: "version",
            SortTarget.CREATE: "create_revision",
            SortTarget.MOD: "mod_revision",
            SortTarget.VALUE: "value",
        }[SortTarget(op.sort_target)]
        if order != SortOrder.NONE:
            kvs = sorted(kvs, key=lambda kv: (getattr(kv, field), kv.key))
            if order == SortOrder.DESCEND:
                kvs = kvs[::-1]
        more = 0 < op.limit < len(kvs)
        if more:
            kvs = kvs[: op.limit]
        if op.keys_only:
            kvs = [kv._replace(value=b"") for kv in kvs]
        error = self.too_large(kvs, limits or DEFAULT_LIMITS)
        if error is not None:
            return error
        return RangeResponse(revision=current, kvs=tuple(kvs), more=more, count=count)

    def state_at(self, rev: int) -> State:
        """The keyspace at `rev` (a revision with no write of its own has its predecessor's)."""
        while rev not in self.states:
            rev -= 1
        return self.states[rev]

    def too_large(self, kvs: list[KeyValue], limits: KvLimits) -> KvError | None:
        if len(kvs) > limits.range_keys_max:
            return answer_too_large("keys", len(kvs), "range_keys_max", limits.range_keys_max)
        size = sum(len(kv.key) + len(kv.value) for kv in kvs)
        if size > limits.range_bytes_max:
            return answer_too_large(
                "bytes of keys and values", size, "range_bytes_max", limits.range_bytes_max
            )
        return None

    # -- writes -----------------------------------------------------------------------------

    def run_op(
        self, op: Any, scratch: State, changed: list[bool], limits: KvLimits = DEFAULT_LIMITS
    ) -> Any:
        """Run one op of a (possibly one-op) transaction on `scratch`, the keyspace at
        revision + 1 as far as it is written."""
        after = self.revision + 1
        if isinstance(op, Range):
            reading = after if changed[0] else self.revision
            return self.range(op, scratch, reading, reading, limits)
        if isinstance(op, Put):
            old = scratch.get(op.key)
            value = old.value if op.ignore_value and old else op.value
            lease = old.lease if op.ignore_lease and old else op.lease
            if old is None:
                new = KeyValue(op.key, after, after, 1, value, lease)
            else:
                new = KeyValue(op.key, old.create_revision, after, old.version + 1, value, lease)
            scratch[op.key] = new
            changed[0] = True
            return PutResponse(revision=after, prev_kv=old if op.prev_kv else None)
        if isinstance(op, DeleteRange):
            doomed = sorted(
                (kv for key, kv in scratch.items() if in_range(key, op.key, op.range_end)),
                key=lambda kv: kv.key,
            )
            if op.prev_kv:
                error = self.too_large(doomed, limits)
                if error is not None:
                    return error
            for kv in doomed:
                del scratch[kv.key]
            changed[0] = changed[0] or bool(doomed)
            return DeleteRangeResponse(
                revision=after if changed[0] else self.revision,
                deleted=len(doomed),
                prev_kvs=tuple(doomed) if op.prev_kv else (),
            )
        raise AssertionError(f"not an op: {op!r}")

    def txn(self, op: Txn, read_only: bool) -> Any:
        before = self.now
        error = self.check(op, before, read_only)
        if error is not None:
            return error
        scratch = dict(before)
        changed = [False]
        limits = self.limits if read_only else DEFAULT_LIMITS
        answer = self.run_txn(op, before, scratch, changed, limits)
        if isinstance(answer, KvError):
            return answer
        succeeded, responses = answer
        self.keep(scratch, changed[0])
        return TxnResponse(revision=self.revision, succeeded=succeeded, responses=responses)

    def holds(self, compare: Compare, state: State) -> bool:
        kvs = [kv for key, kv in state.items() if in_range(key, compare.key, compare.range_end)]
        if not kvs:
            if compare.target == CompareTarget.VALUE:
                return False
            kvs = [KeyValue(b"", 0, 0, 0, b"", 0)]
        field = {
            CompareTarget.VERSION: "version",
            CompareTarget.CREATE: "create_revision",
            CompareTarget.MOD: "mod_revision",
            CompareTarget.VALUE: "value",
            CompareTarget.LEASE: "lease",
        }[CompareTarget(compare.target)]
        want = compare.operand
        test = {
            CompareResult.EQUAL: lambda a, b: a == b,
            CompareResult.NOT_EQUAL: lambda a, b: a != b,
            CompareResult.GREATER: lambda a, b: a > b,
            CompareResult.LESS: lambda a, b: a < b,
        }[CompareResult(compare.result)]
        return all(test(getattr(kv, field), want) for kv in kvs)

    def check(self, op: Txn, before: State, read_only: bool) -> KvError | None:
        """etcd's checks of the chosen path, against the state before the transaction: every
        put (in a transaction that writes) before any range."""
        chosen = self.chosen_ops(op, before)
        for child in chosen:
            if isinstance(child, Put) and not read_only:
                if (child.ignore_value or child.ignore_lease) and child.key not in before:
                    flag = "ignore_value" if child.ignore_value else "ignore_lease"
                    return key_not_found(child.key, flag)
                if child.lease and child.lease not in self.leases:
                    return lease_not_found(child.lease)
        for child in chosen:
            if isinstance(child, Range):
                if child.revision > self.revision:
                    return future_revision(child.revision, self.revision)
                if child.revision and child.revision < self.compacted:
                    return compacted(child.revision, self.compacted)
        return None

    def chosen_ops(self, op: Txn, before: State) -> list[Any]:
        """The ops of the branches the compares choose, nested ones in their place."""
        out: list[Any] = []
        for child in op.success if all(self.holds(c, before) for c in op.compare) else op.failure:
            out.extend(self.chosen_ops(child, before) if isinstance(child, Txn) else [child])
        return out

    def run_txn(
        self, op: Txn, before: State, scratch: State, changed: list[bool], limits: KvLimits
    ) -> tuple[bool, tuple[Any, ...]] | KvError:
        succeeded = all(self.holds(c, before) for c in op.compare)
        responses = []
        for child in op.success if succeeded else op.failure:
            if isinstance(child, Txn):
                inner = self.run_txn(child, before, scratch, changed, limits)
                if isinstance(inner, KvError):
                    return inner
                answer: Any = TxnResponse(revision=0, succeeded=inner[0], responses=inner[1])
            else:
                answer = self.run_op(child, scratch, changed, limits)
                if isinstance(answer, KvError):
                    return answer
            responses.append(answer)
        return succeeded, tuple(responses)

    # -- compaction -------------------------------------------------------------------------

    def compact(self, op: Compact) -> Any:
        if op.revision <= self.compacted:
            return compacted(op.revision, self.compacted)
        if op.revision > self.revision:
            return future_revision(op.revision, self.revision)
        if not self.keep_history:
            keep = self.state_at(op.revision) if op.revision >= 1 else {}
            for rev in [r for r in self.states if r < op.revision]:
                del self.states[rev]
            if op.revision >= 1:
                self.states[op.revision] = keep
        self.compacted = op.revision
        return CompactionResponse(revision=self.revision)

    # -- leases -----------------------------------------------------------------------------

    def lease(self, op: Any) -> Any:
        revision = self.revision
        if isinstance(op, LeaseGrant):
            lease_id = op.id
            if lease_id in self.leases:
                return lease_exist(lease_id)
            if not lease_id:
                lease_id = self.lease_counter
                while lease_id in self.leases:
                    lease_id += 1
                self.lease_counter = lease_id + 1
            self.leases[lease_id] = [op.ttl_ms, self.now_ms + op.ttl_ms]
            return LeaseGrantResponse(revision=revision, id=lease_id, ttl_ms=op.ttl_ms)
        if isinstance(op, LeaseLeases):
            return LeaseLeasesResponse(revision=revision, ids=tuple(sorted(self.leases)))
        entry = self.leases.get(op.id)
        if isinstance(op, LeaseTimeToLive):
            if entry is None:
                return LeaseTimeToLiveResponse(
                    revision=revision, id=op.id, ttl_ms=-1, granted_ttl_ms=0
                )
            keys = tuple(sorted(k for k, kv in self.now.items() if kv.lease == op.id))
            return LeaseTimeToLiveResponse(
                revision=revision,
                id=op.id,
                ttl_ms=max(0, entry[1] - self.now_ms),
                granted_ttl_ms=entry[0],
                keys=keys if op.keys else (),
            )
        if entry is None:
            return lease_not_found(op.id)
        if isinstance(op, LeaseKeepAlive):
            entry[1] = self.now_ms + entry[0]
            return LeaseKeepAliveResponse(revision=revision, id=op.id, ttl_ms=entry[0])
        assert isinstance(op, LeaseRevoke)
        self.end_leases({op.id})
        return LeaseRevokeResponse(revision=self.revision)

    def advance_time(self, now_ms: int) -> None:
        """Log time is `now_ms` (if later): every lease it passed ends."""
        if now_ms <= self.now_ms:
            return
        self.now_ms = now_ms
        ended = {i for i, (_, deadline) in self.leases.items() if deadline < now_ms}
        if ended:
            self.end_leases(ended)

    def end_leases(self, ids: set[int]) -> None:
        for lease_id in ids:
            del self.leases[lease_id]
        scratch = {key: kv for key, kv in self.now.items() if kv.lease not in ids}
        self.keep(scratch, changed=len(scratch) != len(self.now))
