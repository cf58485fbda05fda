"""The deterministic replicated state machine every paxosd node applies to the chosen log.

Theory of operation: Multi-Paxos makes every replica agree on the same sequence of payloads;
this machine turns that sequence into the same state and the same answers everywhere. It is a
pure function of the payloads it has applied: no clock, no randomness, no I/O, no dependence on
dict iteration order of anything but its own inputs. Three consequences shape the code:

* Time is data. Lock leases are measured against `now_ms`, the largest `AdvanceTime` the leader
  proposed into the log, never against a replica's own clock; otherwise two replicas could
  disagree about whether a lease had expired. Log time is not wall time: each leader stamps the
  log time it found when it took over plus what its monotonic clock measured since (see
  runtime/driver.py), so log time never runs faster than real time, a skewed or jumping wall
  clock changes nothing, and a leader change can only lengthen leases, never shorten them.
  Answers therefore give a lease's remaining length (`expires_in_ms`), never a date. Expiry is
  lazy: a lease is live while `now_ms <= expires_at_ms`, checked whenever the lock is touched,
  so no replica needs a timer.
  The lease includes its last millisecond on purpose: log time comes in whole milliseconds
  (truncated), so a grant stamped at ms T may really have happened up to 1 ms later; ending
  the lease only once log time passes T + ttl makes sure no other owner is granted the lock
  before ttl_ms of real time has passed since the request reached the leader.
* Failures are answers. A well-formed command that cannot take effect returns `Error(code)`; a
  payload that does not decode returns `Error("bad_command")`. Neither raises, because an
  exception in `apply` would either crash every replica on the same slot (a poison pill) or,
  worse, be handled differently by different callers.
* Exactly-once. Clients retry, and a retried write may be chosen in two slots. Each
  `Request(client_id, seq, op)` is checked against the session table: the last applied seq of
  that client and its cached answer. A repeat of that seq returns the cached answer without
  applying again; an older seq returns Error("stale_request"); a newer one applies (clients may
  skip seqs). The table is bounded by `clients_max` (default 100_000) sessions, evicting the
  least recently used by slot: a client that stays idle while `clients_max` other clients send
  requests loses its exactly-once protection (a retry of its last request would apply again).
  A session also keeps a digest of the request's bytes: a seq reused for a different request
  (a client bug, or two processes sharing one client id) is refused with
  Error("request_mismatch") instead of getting the first request's answer, which would claim
  an operation took effect that never ran. A retry must therefore repeat its request byte for
  byte, which every paxosd client does. Cached answers share values with the store, so memory
  grows only when a cached answer outlives its value; the worst case is `clients_max` answers
  each carrying a value of up to `value_bytes_max`.

Data model and complexity (n = number of keys/locks/names/decisions, s = payload size):

* KV: key -> (value, create_revision, mod_revision); a single store revision counter is bumped by
  every effective write (Put, Delete of an existing key, successful Cas), as in etcd. Put,
  Delete, Get, Cas are O(1) dict operations plus O(s) decoding; Cas's comparison is O(size of
  the compared values).
* Locks: name -> (owner, fencing_token, expires_at_ms, held). Every new grant takes the next
  value of one global fencing counter, so tokens are unique and strictly increasing across all
  locks. Records persist after release/expiry (O(distinct lock names)) so the last owner's
  release stays idempotent.
* Names: name -> owner, write-once. Decisions: id -> chosen value, write-once.
* Sessions: an OrderedDict in least-recently-used order; touch and eviction are O(1).
* `snapshot_view()` copies the tables' dicts (their entries are immutable tuples, replaced on
  every write, never changed in place): O(n) on the caller's thread, about the cost of one
  dict copy per table. Its `write(out)` streams the state (snapshot.py, version 3) and may run
  in a worker thread while this machine goes on applying: it reads only its copies. It sorts
  the keys in slices merged one row at a time, and packs 1024 rows a frame, so it never holds
  the interpreter for long. `restore()` reads a stream frame by frame: O(total state), with
  one frame in memory beside the machine it builds.

Snapshots are deterministic: equal states give equal bytes. Tables are written sorted by key;
sessions in LRU order (itself part of the state, and equal to ascending last-touch slot); JSON
values exactly as clients stored them.
"""

from __future__ import annotations

import hashlib
import heapq
import io
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, ClassVar, Final, TypeAlias

from .commands import (
    READ_OPS,
    AdvanceTime,
    Cas,
    DecisionGet,
    DecisionPropose,
    Delete,
    Get,
    LockAcquire,
    LockRefresh,
    LockRelease,
    LockStatus,
    NameLookup,
    NameRegister,
    Noop,
    Put,
    Request,
    decode,
    key_bytes_max,
    owner_bytes_max,
    seq_max,
    time_ms_max,
    validate,
)
from .errors import BadCommand, CorruptSnapshot, SlotOrderError
from .results import (
    BAD_COMMAND,
    NOT_HOLDER,
    REQUEST_MISMATCH,
    STALE_REQUEST,
    CasResult,
    DecisionResult,
    Deleted,
    Error,
    LockResult,
    NameResult,
    NotFound,
    Released,
    Result,
    Value,
    Written,
    result_from_raw,
    result_to_raw,
)
from .snapshot import StreamReader, StreamWriter, read_header, stream_version, unseal
from .values import check_value, json_equal, unpack

clients_max: Final = 100_000

# Plain tuples, not objects: a Put allocates one per write and a tuple is the cheapest record.
_Entry: TypeAlias = tuple[Any, int, int]  # (value, create_revision, mod_revision)
ANONYMOUS_PREFIX: Final = "~"  # client ids without exactly-once sessions (see _apply_request)
_Lease: TypeAlias = tuple[str, int, int, bool]  # (owner, fencing_token, expires_at_ms, held)
# (last seq, last touch slot, digest of that request's bytes, cached answer)
_Session: TypeAlias = tuple[int, int, bytes, Result]
RequestId: TypeAlias = tuple[str, int]  # (client id, seq): who waits for an answer
digest_bytes: Final = 8


class StateMachine:
    """One replica's copy of the coordination service state. Not thread-safe; not shared."""

    __slots__ = (
        "_applied_slot",
        "_clients_max",
        "_decisions",
        "_fencing_token",
        "_kv",
        "_lease_horizon_ms",
        "_locks",
        "_names",
        "_now_ms",
        "_revision",
        "_sessions",
    )

    _HANDLERS: ClassVar[dict[type, Callable[[StateMachine, Any], Result]]]
    _READERS: ClassVar[dict[type, Callable[[StateMachine, Any], Result]]]

    def __init__(self, *, clients_max: int = clients_max) -> None:
        if type(clients_max) is not int or clients_max < 1:
            raise ValueError(f"clients_max must be a positive int, got {clients_max!r}")
        self._clients_max = clients_max
        self._applied_slot = -1  # nothing applied yet; the engine may start at slot 0 or 1
        self._now_ms = 0
        self._revision = 0
        self._fencing_token = 0
        self._lease_horizon_ms = -1
        self._kv: dict[str, _Entry] = {}
        self._locks: dict[str, _Lease] = {}
        self._names: dict[str, str] = {}
        self._decisions: dict[str, Any] = {}
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    # -----------------------------------------------------------------------------------------
    # Introspection

    @property
    def applied_slot(self) -> int:
        """The last slot applied (or restored from a snapshot); -1 before any."""
        return self._applied_slot

    @property
    def log_time_ms(self) -> int:
        """Log time: the largest AdvanceTime applied so far."""
        return self._now_ms

    @property
    def wants_log_time(self) -> bool:
        """Whether some lease may not have expired yet in log time: only then must the leader
        keep moving log time forward while no commands arrive."""
        return self._now_ms <= self._lease_horizon_ms

    @property
    def revision(self) -> int:
        """The KV store revision: the number of effective KV writes so far."""
        return self._revision

    @property
    def clients_max(self) -> int:
        """How many client sessions the exactly-once table keeps."""
        return self._clients_max

    @property
    def sessions(self) -> int:
        """How many client sessions the exactly-once table holds now."""
        return len(self._sessions)

    def __repr__(self) -> str:
        return (
            f"StateMachine(applied_slot={self._applied_slot}, now_ms={self._now_ms}, "
            f"revision={self._revision}, keys={len(self._kv)}, locks={len(self._locks)}, "
            f"names={len(self._names)}, decisions={len(self._decisions)}, "
            f"sessions={len(self._sessions)})"
        )

    # -----------------------------------------------------------------------------------------
    # The engine's entry points

    def apply(self, slot: int, payload: bytes) -> tuple[Result, RequestId | None]:
        """Apply the payload chosen for `slot`; slots must strictly increase.

        Returns the answer for the client (None for b"", Noop and AdvanceTime) and, for a
        `Request`, its (client id, seq), by which whoever waits for the answer finds it without
        decoding the payload a second time. Never raises for any payload; raises
        `SlotOrderError` if the engine repeats or reorders slots.
        """
        if slot <= self._applied_slot:
            raise SlotOrderError(f"slot {slot} applied after slot {self._applied_slot}")
        self._applied_slot = slot
        if not payload:
            return None, None
        try:
            command = decode(payload)
        except BadCommand as exc:
            return Error(code=BAD_COMMAND, message=str(exc)), None
        if isinstance(command, Request):
            request = (command.client_id, command.seq)
            return self._apply_request(slot, command, payload), request
        if isinstance(command, AdvanceTime):
            # Monotone: a stale leader's older timestamp must not move leases backwards.
            if command.now_ms > self._now_ms:
                self._now_ms = command.now_ms
            return None, None
        if isinstance(command, Noop):
            return None, None
        return self._HANDLERS[type(command)](self, command), None

    def read(self, query: object) -> Result:
        """Answer a read-only query (Get, LockStatus, NameLookup, DecisionGet) from this state.

        For linearizable reads the engine calls this only after confirming leadership and
        applying up to the read index. Never mutates state. Raises `BadCommand` for anything but
        a valid read query.
        """
        reader = self._READERS.get(type(query))
        if reader is None:
            raise BadCommand("query", f"{type(query).__name__} is not a read query")
        validate(query)
        return reader(self, query)

    def _apply_request(self, slot: int, request: Request, payload: bytes) -> Result:
        client_id = request.client_id
        if client_id.startswith(ANONYMOUS_PREFIX):
            # A request nobody will retry (a node made its id): apply it, keep no session, so
            # anonymous traffic never evicts the sessions of clients that do retry.
            return self._HANDLERS[type(request.op)](self, request.op)
        sessions = self._sessions
        session = sessions.get(client_id)
        digest = hashlib.blake2b(payload, digest_size=digest_bytes).digest()
        if session is not None:
            last_seq, _, last_digest, cached = session
            if request.seq < last_seq:
                return Error(
                    code=STALE_REQUEST,
                    message=f"seq {request.seq} is older than this client's last seq {last_seq}",
                )
            if request.seq == last_seq:
                if digest != last_digest:
                    return Error(
                        code=REQUEST_MISMATCH,
                        message=(
                            f"client {client_id!r} already used seq {last_seq} for a different "
                            "request; nothing was applied: use a new seq for a new request"
                        ),
                    )
                sessions[client_id] = (last_seq, slot, last_digest, cached)
                sessions.move_to_end(client_id)
                return cached
        answer = self._HANDLERS[type(request.op)](self, request.op)
        sessions[client_id] = (request.seq, slot, digest, answer)
        if session is not None:
            sessions.move_to_end(client_id)
        elif len(sessions) > self._clients_max:
            sessions.popitem(last=False)
        return answer

    # -----------------------------------------------------------------------------------------
    # Key-value store

    def _get(self, op: Get) -> Result:
        entry = self._kv.get(op.key)
        if entry is None:
            return NotFound(key=op.key)
        return Value(key=op.key, value=entry[0], revision=entry[2], create_revision=entry[1])

    def _put(self, op: Put) -> Result:
        self._store(op.key, op.value)
        return Written(key=op.key, revision=self._revision)

    def _store(self, key: str, value: Any) -> None:
        self._revision += 1
        revision = self._revision
        old = self._kv.get(key)
        self._kv[key] = (value, revision if old is None else old[1], revision)

    def _delete(self, op: Delete) -> Result:
        if self._kv.pop(op.key, None) is None:
            # Nothing changed, so the revision does not move (etcd does the same).
            return Deleted(key=op.key, existed=False, revision=self._revision)
        self._revision += 1
        return Deleted(key=op.key, existed=True, revision=self._revision)

    def _cas(self, op: Cas) -> Result:
        entry = self._kv.get(op.key)
        if op.expected is None:
            matches = entry is None
        else:
            matches = entry is not None and json_equal(entry[0], op.expected)
        if not matches:
            if entry is None:
                return CasResult(succeeded=False, key=op.key, value=None, revision=0)
            return CasResult(succeeded=False, key=op.key, value=entry[0], revision=entry[2])
        self._store(op.key, op.value)
        return CasResult(succeeded=True, key=op.key, value=op.value, revision=self._revision)

    # -----------------------------------------------------------------------------------------
    # Locks

    def _live_lease(self, name: str) -> _Lease | None:
        """The lock's lease if someone holds it at the current log time."""
        lease = self._locks.get(name)
        if lease is None or not lease[3] or lease[2] < self._now_ms:
            return None
        return lease

    def _lock_acquire(self, op: LockAcquire) -> Result:
        lease = self._live_lease(op.name)
        expires_at_ms = self._now_ms + op.ttl_ms
        if lease is not None:
            owner, token, old_expiry, _ = lease
            if owner != op.owner:
                return LockResult(
                    acquired=False,
                    name=op.name,
                    owner=owner,
                    fencing_token=token,
                    expires_in_ms=old_expiry - self._now_ms,
                )
            # Re-entrant: the holder keeps its token, so fenced resources keep accepting it.
        else:
            # A new grant (free, released or expired, even to the previous owner, whose old
            # token may already have been superseded in the resource it protects).
            self._fencing_token += 1
            token = self._fencing_token
        self._locks[op.name] = (op.owner, token, expires_at_ms, True)
        self._lease_horizon_ms = max(self._lease_horizon_ms, expires_at_ms)
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
        expires_at_ms = self._now_ms + op.ttl_ms
        self._locks[op.name] = (op.owner, lease[1], expires_at_ms, True)
        self._lease_horizon_ms = max(self._lease_horizon_ms, expires_at_ms)
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
            self._locks[op.name] = (lease[0], lease[1], lease[2], False)
            return Released(released=True, name=op.name, owner=op.owner)
        last = self._locks.get(op.name)
        if last is not None and last[0] == op.owner:
            # Already free (released or expired): releasing again is a harmless retry.
            return Released(released=False, name=op.name, owner=op.owner)
        return Error(code=NOT_HOLDER, message=self._not_holder(op.name, op.owner, None))

    def _not_holder(self, name: str, owner: str, lease: _Lease | None) -> str:
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
            expires_in_ms=lease[2] - self._now_ms,
        )

    # -----------------------------------------------------------------------------------------
    # Names and decisions

    def _name_register(self, op: NameRegister) -> Result:
        owner = self._names.setdefault(op.name, op.owner)
        return NameResult(registered=owner == op.owner, name=op.name, owner=owner)

    def _name_lookup(self, op: NameLookup) -> Result:
        owner = self._names.get(op.name)
        return NameResult(registered=owner is not None, name=op.name, owner=owner)

    def _decision_propose(self, op: DecisionPropose) -> Result:
        return DecisionResult(id=op.id, chosen=self._decisions.setdefault(op.id, op.value))

    def _decision_get(self, op: DecisionGet) -> Result:
        return DecisionResult(id=op.id, chosen=self._decisions.get(op.id))

    # -----------------------------------------------------------------------------------------
    # Snapshots
    #
    # Sections of the streamed format (snapshot.py, version 3), in order:
    #   0  [[applied_slot, now_ms, revision, fencing_token, clients_max]]
    #   1  kv:        [key, value, create_revision, mod_revision]          sorted by key
    #   2  locks:     [name, owner, fencing_token, expires_at_ms, held]    sorted by name
    #   3  names:     [name, owner]                                       sorted by name
    #   4  decisions: [id, value]                                         sorted by id
    #   5  sessions:  [client_id, seq, slot, digest, result]              LRU order
    # Version 2 (still read) is one msgpack array of the five scalars and the five tables.

    def snapshot_view(self) -> StateView:
        """The state as it is now, for a snapshot (see the module docstring for the cost)."""
        return StateView(self)

    def snapshot(self) -> bytes:
        """The whole state as deterministic, checksummed bytes (equal states, equal bytes)."""
        out = io.BytesIO()
        self.snapshot_view().write(out)
        return out.getvalue()

    @classmethod
    def restore(cls, data: bytes | bytearray | memoryview | BinaryIO) -> StateMachine:
        """A machine in exactly the state a snapshot captured, from its bytes or a stream.

        Raises `CorruptSnapshot` for truncated, damaged, foreign or unsupported bytes, and for
        a well-framed body that breaks any invariant of the state (defence in depth: a
        checksum only proves the bytes are the ones written, not that the writer was right).
        """
        inp = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray | memoryview) else data
        head, version = read_header(inp)
        try:
            if version == stream_version:
                reader = StreamReader(inp, head)
                machine = _Restorer(
                    _one(reader.rows(0), "scalars"), *(reader.rows(n) for n in range(1, 6))
                ).machine
                reader.finish()
                return machine
            if version != 2:
                raise CorruptSnapshot(
                    f"unsupported snapshot version {version} (this code reads 2 and 3)"
                )
            body = unseal(head + inp.read())
            try:
                raw = unpack(body)
            except Exception as exc:  # any msgpack failure means the body is not ours
                raise CorruptSnapshot(f"body is not msgpack ({type(exc).__name__})") from None
            fields = _Restorer._list(raw, "body", 10)
            tables = (_Restorer._list(table, "table") for table in fields[5:])
            return _Restorer(fields[:5], *tables).machine
        except CorruptSnapshot:
            raise
        except Exception as exc:  # a shape we did not anticipate: still never garbage
            raise CorruptSnapshot(f"malformed snapshot body: {exc!r:.200}") from None


class StateView:
    """The state of a machine when `snapshot_view` was called: copies of its tables' dicts
    (sharing their immutable entries), so the machine may go on applying meanwhile."""

    __slots__ = ("decisions", "kv", "locks", "names", "scalars", "sessions")

    def __init__(self, machine: StateMachine) -> None:
        self.scalars = [
            machine._applied_slot,
            machine._now_ms,
            machine._revision,
            machine._fencing_token,
            machine._clients_max,
        ]
        self.kv = dict(machine._kv)
        self.locks = dict(machine._locks)
        self.names = dict(machine._names)
        self.decisions = dict(machine._decisions)
        self.sessions = list(machine._sessions.items())

    def write(self, out: BinaryIO) -> None:
        """Stream the captured state to `out` (snapshot.py, version 3)."""
        writer = StreamWriter(out)
        writer.section(0, [self.scalars])
        kv, locks, names, decisions = self.kv, self.locks, self.names, self.decisions
        writer.section(1, ([key, *kv[key]] for key in _sorted_keys(kv)))
        writer.section(2, ([name, *locks[name]] for name in _sorted_keys(locks)))
        writer.section(3, ([name, names[name]] for name in _sorted_keys(names)))
        writer.section(4, ([id_, decisions[id_]] for id_ in _sorted_keys(decisions)))
        writer.section(
            5,
            (
                [client_id, seq, slot, digest, result_to_raw(answer)]
                for client_id, (seq, slot, digest, answer) in self.sessions
            ),
        )
        writer.close()


# Keys are sorted in slices of this many, merged one key at a time: no single call holds the
# interpreter for long while a worker thread writes a snapshot (sorting a million keys at
# once would stall the node's event loop for a noticeable time).
sort_slice_keys: Final = 1 << 12


def _sorted_keys(table: dict[str, Any]) -> Iterator[str]:
    keys = list(table)
    if len(keys) <= sort_slice_keys:
        return iter(sorted(keys))
    slices = [sorted(keys[i : i + sort_slice_keys]) for i in range(0, len(keys), sort_slice_keys)]
    return heapq.merge(*slices)


def _one(rows: Iterator[Any], what: str) -> Any:
    first = next(rows, None)
    if first is None or next(rows, None) is not None:
        raise CorruptSnapshot(f"the {what} section is not one row")
    return first


StateMachine._HANDLERS = {
    Get: StateMachine._get,
    Put: StateMachine._put,
    Delete: StateMachine._delete,
    Cas: StateMachine._cas,
    LockAcquire: StateMachine._lock_acquire,
    LockRefresh: StateMachine._lock_refresh,
    LockRelease: StateMachine._lock_release,
    LockStatus: StateMachine._lock_status,
    NameRegister: StateMachine._name_register,
    NameLookup: StateMachine._name_lookup,
    DecisionPropose: StateMachine._decision_propose,
    DecisionGet: StateMachine._decision_get,
}
StateMachine._READERS = {kind: StateMachine._HANDLERS[kind] for kind in READ_OPS}


class _Restorer:
    """Validates a snapshot's scalars and rows field by field and builds the machine from them
    (the rows of each table as any iterable: a list of version 2, a stream of version 3)."""

    def __init__(
        self,
        scalars: object,
        kv: Iterable[Any],
        locks: Iterable[Any],
        names: Iterable[Any],
        decisions: Iterable[Any],
        sessions: Iterable[Any],
    ) -> None:
        body = self._list(scalars, "scalars", 5)
        applied_slot = self._int(body[0], "applied_slot", low=-1)
        now_ms = self._int(body[1], "now_ms", high=time_ms_max)
        revision = self._int(body[2], "revision")
        fencing_token = self._int(body[3], "fencing_token")
        sessions_max = self._int(body[4], "clients_max", low=1)
        machine = StateMachine(clients_max=sessions_max)
        machine._applied_slot = applied_slot
        machine._now_ms = now_ms
        machine._revision = revision
        machine._fencing_token = fencing_token

        for row in self._rows(kv, "kv", 4):
            key = self._str(row[0], "kv key", key_bytes_max)
            self._json(row[1], "kv value")
            create = self._int(row[2], "create_revision", low=1, high=revision)
            mod = self._int(row[3], "mod_revision", low=create, high=revision)
            machine._kv[key] = (row[1], create, mod)
        for row in self._rows(locks, "locks", 5):
            name = self._str(row[0], "lock name", key_bytes_max)
            owner = self._str(row[1], "lock owner", owner_bytes_max)
            token = self._int(row[2], "lock token", low=1, high=fencing_token)
            expires = self._int(row[3], "lock expiry")
            if type(row[4]) is not bool:
                raise CorruptSnapshot("lock held flag is not a bool")
            machine._locks[name] = (owner, token, expires, row[4])
            if row[4]:
                machine._lease_horizon_ms = max(machine._lease_horizon_ms, expires)
        for row in self._rows(names, "names", 2):
            name = self._str(row[0], "name", key_bytes_max)
            machine._names[name] = self._str(row[1], "name owner", owner_bytes_max)
        for row in self._rows(decisions, "decisions", 2):
            id_ = self._str(row[0], "decision id", key_bytes_max)
            if row[1] is None:
                raise CorruptSnapshot("a decision's chosen value is null")
            self._json(row[1], "decision value")
            machine._decisions[id_] = row[1]

        previous_slot = -1
        for row in sessions:
            row = self._list(row, "session", 5)
            client_id = self._str(row[0], "client id", owner_bytes_max)
            seq = self._int(row[1], "session seq", high=seq_max)
            slot = self._int(row[2], "session slot", low=previous_slot + 1, high=applied_slot)
            if type(row[3]) is not bytes or len(row[3]) != digest_bytes:
                raise CorruptSnapshot(f"session {client_id!r}: digest is not {digest_bytes} bytes")
            if client_id in machine._sessions:
                raise CorruptSnapshot(f"duplicate session {client_id!r}")
            machine._sessions[client_id] = (seq, slot, row[3], result_from_raw(row[4]))
            previous_slot = slot
        if len(machine._sessions) > sessions_max:
            raise CorruptSnapshot("more sessions than clients_max")
        self.machine = machine

    @staticmethod
    def _list(value: object, what: str, length: int | None = None) -> list[Any]:
        if type(value) is not list or (length is not None and len(value) != length):
            raise CorruptSnapshot(f"{what} is not an array of {length or 'any'} items")
        return value

    def _rows(self, rows: Iterable[Any], what: str, width: int) -> Iterator[list[Any]]:
        """Rows of a table sorted strictly by their first column (so keys are unique)."""
        before: str | None = None
        for raw in rows:
            row = self._list(raw, f"{what} row", width)
            key = row[0]
            if type(key) is not str or (before is not None and before >= key):
                raise CorruptSnapshot(f"{what} rows are not sorted by unique string keys")
            before = key
            yield row

    @staticmethod
    def _int(value: object, what: str, *, low: int = 0, high: int = 2**64 - 1) -> int:
        if type(value) is not int or not low <= value <= high:
            raise CorruptSnapshot(f"{what} {value!r:.40} is not an int in [{low}, {high}]")
        return value

    @staticmethod
    def _str(value: object, what: str, limit_bytes: int) -> str:
        if type(value) is not str or not value or len(value.encode()) > limit_bytes:
            raise CorruptSnapshot(f"{what} {value!r:.40} is not a valid string")
        return value

    @staticmethod
    def _json(value: object, what: str) -> None:
        try:
            check_value(value, what)
        except BadCommand as exc:
            raise CorruptSnapshot(f"{exc}") from None
