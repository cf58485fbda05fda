"""The replicated state machine every paxosd node applies to the chosen log: a router over
the state machines one log carries.

Theory of operation: Multi-Paxos makes every replica agree on the same sequence of payloads;
the router turns that sequence into the same state and the same answers everywhere. It
implements the engine's `Machine` protocol (core/multi/learner.py) and keeps what every state
machine behind it shares:

* the slot order (`apply` refuses a slot that does not move forward: `SlotOrderError`);
* decoding (commands.py), once per payload; a payload that does not decode answers
  Error("bad_command") on every replica - never an exception, which would either crash every
  replica on the same slot or be handled differently by different callers;
* exactly-once sessions (sessions.py) for every `Request`, whatever it is for;
* log time: `AdvanceTime` commands from the leader move `log_time_ms` forward (never back) and
  each state machine hears of it; `wants_log_time` tells the leader to keep it moving while a
  state machine waits for it (a lock lease that may be live);
* dispatch: each op goes to the state machine of its namespace (registry.py), by its class.

It is a pure function of the payloads it has applied: no clock, no randomness, no I/O.
Nothing here is module-level state, so any number of routers (one per Paxos group) can live in
one process.

Snapshots (format version 2) are deterministic: equal states give equal bytes. Tables are
written sorted by key; sessions in least-recently-used order; JSON values exactly as clients
stored them. `snapshot()` is O(total state · log n) (sorting keys); `restore()` is O(total
state).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Final

from .codec import key_bytes_max, owner_bytes_max, seq_max, time_ms_max
from .commands import AdvanceTime, Noop, Request, decode, is_read, validate
from .coordination import Coordination
from .errors import BadCommand, CorruptSnapshot, SlotOrderError
from .kv.machine import KvStore
from .registry import NAMESPACES
from .results import BAD_COMMAND, Error, Result, result_from_raw, result_to_raw
from .sessions import ANONYMOUS_PREFIX, RequestId, Sessions, clients_max, digest_bytes
from .snapshot import seal, unseal
from .values import check_value, pack, unpack

__all__ = ["ANONYMOUS_PREFIX", "Router", "StateMachine", "clients_max"]

_NONE: Final = (None, None)


class Router:
    """One replica's copy of the replicated state. Not thread-safe; not shared."""

    __slots__ = ("_applied_slot", "_handlers", "_log_time_ms", "_parts", "_sessions")

    def __init__(self, *, clients_max: int = clients_max) -> None:
        self._sessions = Sessions(clients_max)
        self._applied_slot = -1  # nothing applied yet; the engine may start at slot 0 or 1
        self._log_time_ms = 0
        self._parts: dict[str, Any] = {ns.name: ns.new() for ns in NAMESPACES}
        self._handlers: dict[type, Callable[[Any], Result]] = {}
        for part in self._parts.values():
            self._handlers.update(part.handlers())

    # -----------------------------------------------------------------------------------------
    # Introspection

    @property
    def applied_slot(self) -> int:
        """The last slot applied (or restored from a snapshot); -1 before any."""
        return self._applied_slot

    @property
    def log_time_ms(self) -> int:
        """Log time: the largest AdvanceTime applied so far."""
        return self._log_time_ms

    @property
    def wants_log_time(self) -> bool:
        """Whether some state machine waits for log time to pass (a lease that may be live):
        only then must the leader keep moving log time forward while no commands arrive."""
        return any(part.wants_log_time for part in self._parts.values())

    # The engine's names for these before it took the generic ones (core/multi/learner.py).
    now_ms = log_time_ms
    leases_may_be_live = wants_log_time

    @property
    def kv(self) -> KvStore:
        """The key-value store."""
        store: KvStore = self._parts["kv"]
        return store

    @property
    def coordination(self) -> Coordination:
        """Locks, names and decisions."""
        part: Coordination = self._parts["coordination"]
        return part

    @property
    def revision(self) -> int:
        """The key-value store's revision."""
        return self.kv.revision

    @property
    def clients_max(self) -> int:
        """How many client sessions the exactly-once table keeps."""
        return self._sessions.clients_max

    @property
    def sessions(self) -> int:
        """How many client sessions the exactly-once table holds now."""
        return len(self._sessions)

    def __repr__(self) -> str:
        return (
            f"Router(applied_slot={self._applied_slot}, log_time_ms={self._log_time_ms}, "
            f"revision={self.revision}, sessions={len(self._sessions)})"
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
            return _NONE
        try:
            command: Any = decode(payload)
        except BadCommand as exc:
            return Error(code=BAD_COMMAND, message=str(exc)), None
        kind = type(command)
        if kind is Request:
            client_id = command.client_id
            request = (client_id, command.seq)
            op = command.op
            if client_id.startswith(ANONYMOUS_PREFIX):
                # A request nobody will retry (a node made its id): apply it, keep no session.
                return self._handlers[type(op)](op), request
            sessions = self._sessions
            digest = sessions.digest(payload)
            fresh, answer = sessions.check(client_id, command.seq, digest, slot)
            if fresh:
                answer = self._handlers[type(op)](op)
                sessions.record(client_id, command.seq, digest, slot, answer)
            return answer, request
        if kind is AdvanceTime:
            # Monotone: a stale leader's older timestamp must not move leases backwards.
            if command.now_ms > self._log_time_ms:
                self._log_time_ms = command.now_ms
                for part in self._parts.values():
                    part.advance_time(command.now_ms)
            return _NONE
        if kind is Noop:
            return _NONE
        return self._handlers[kind](command), None

    def read(self, query: object) -> Result:
        """Answer a read-only query (`is_read(query)`) from this state.

        For linearizable reads the engine calls this only after confirming leadership and
        applying up to the read index. Never mutates state. Raises `BadCommand` for anything but
        a valid read query.
        """
        if not is_read(query):
            raise BadCommand("query", f"{type(query).__name__} is not a read query")
        validate(query)
        return self._handlers[type(query)](query)

    # -----------------------------------------------------------------------------------------
    # Snapshots
    #
    # Body (msgpack array, snapshot version 2):
    #   [applied_slot, now_ms, revision, fencing_token, clients_max,
    #    kv:        [[key, value, create_revision, mod_revision], ...]   sorted by key
    #    locks:     [[name, owner, fencing_token, expires_at_ms, held], ...] sorted by name
    #    names:     [[name, owner], ...]                                  sorted by name
    #    decisions: [[id, value], ...]                                    sorted by id
    #    sessions:  [[client_id, seq, slot, digest, result], ...]         LRU order]

    def snapshot(self) -> bytes:
        """The whole state as deterministic, checksummed bytes (equal states, equal bytes)."""
        kv, coordination = self.kv, self.coordination
        entries, locks, names, decisions = (
            kv.kv,
            coordination.locks,
            coordination.names,
            coordination.decisions,
        )
        body = [
            self._applied_slot,
            self._log_time_ms,
            kv.revision,
            coordination.fencing_token,
            self._sessions.clients_max,
            [[key, *entries[key]] for key in sorted(entries)],
            [[name, *locks[name]] for name in sorted(locks)],
            [[name, names[name]] for name in sorted(names)],
            [[id_, decisions[id_]] for id_ in sorted(decisions)],
            [
                [client_id, seq, slot, digest, result_to_raw(answer)]
                for client_id, (seq, slot, digest, answer) in self._sessions
            ],
        ]
        return seal(pack(body))

    @classmethod
    def restore(cls, data: bytes) -> Router:
        """A machine in exactly the state `snapshot()` captured.

        Raises `CorruptSnapshot` for truncated, damaged, foreign or unsupported bytes, and for
        a well-framed body that breaks any invariant of the state (defence in depth: a
        checksum only proves the bytes are the ones written, not that the writer was right).
        """
        body = unseal(data)
        try:
            raw = unpack(body)
        except Exception as exc:  # any msgpack failure means the body is not ours
            raise CorruptSnapshot(f"body is not msgpack ({type(exc).__name__})") from None
        try:
            return _Restorer(raw).machine
        except CorruptSnapshot:
            raise
        except Exception as exc:  # a shape we did not anticipate: still never garbage
            raise CorruptSnapshot(f"malformed snapshot body: {exc!r:.200}") from None


# The name the engine and the hosts have always used for the replicated state machine.
StateMachine = Router


class _Restorer:
    """Validates a decoded snapshot body field by field and builds the machine from it."""

    def __init__(self, raw: object) -> None:
        body = self._list(raw, "body", 10)
        applied_slot = self._int(body[0], "applied_slot", low=-1)
        now_ms = self._int(body[1], "now_ms", high=time_ms_max)
        revision = self._int(body[2], "revision")
        fencing_token = self._int(body[3], "fencing_token")
        sessions_max = self._int(body[4], "clients_max", low=1)
        machine = Router(clients_max=sessions_max)
        machine._applied_slot = applied_slot
        machine._log_time_ms = now_ms
        kv, coordination = machine.kv, machine.coordination
        coordination.now_ms = now_ms
        kv.revision = revision
        coordination.fencing_token = fencing_token

        for row in self._rows(body[5], "kv", 4):
            key = self._str(row[0], "kv key", key_bytes_max)
            self._json(row[1], "kv value")
            create = self._int(row[2], "create_revision", low=1, high=revision)
            mod = self._int(row[3], "mod_revision", low=create, high=revision)
            kv.kv[key] = (row[1], create, mod)
        for row in self._rows(body[6], "locks", 5):
            name = self._str(row[0], "lock name", key_bytes_max)
            owner = self._str(row[1], "lock owner", owner_bytes_max)
            token = self._int(row[2], "lock token", low=1, high=fencing_token)
            expires = self._int(row[3], "lock expiry")
            if type(row[4]) is not bool:
                raise CorruptSnapshot("lock held flag is not a bool")
            coordination.locks[name] = (owner, token, expires, row[4])
            if row[4]:
                coordination.note_lease(expires)
        for row in self._rows(body[7], "names", 2):
            name = self._str(row[0], "name", key_bytes_max)
            coordination.names[name] = self._str(row[1], "name owner", owner_bytes_max)
        for row in self._rows(body[8], "decisions", 2):
            id_ = self._str(row[0], "decision id", key_bytes_max)
            if row[1] is None:
                raise CorruptSnapshot("a decision's chosen value is null")
            self._json(row[1], "decision value")
            coordination.decisions[id_] = row[1]

        previous_slot = -1
        seen: set[str] = set()
        for row in self._list(body[9], "sessions"):
            row = self._list(row, "session", 5)
            client_id = self._str(row[0], "client id", owner_bytes_max)
            seq = self._int(row[1], "session seq", high=seq_max)
            slot = self._int(row[2], "session slot", low=previous_slot + 1, high=applied_slot)
            if type(row[3]) is not bytes or len(row[3]) != digest_bytes:
                raise CorruptSnapshot(f"session {client_id!r}: digest is not {digest_bytes} bytes")
            if client_id in seen:
                raise CorruptSnapshot(f"duplicate session {client_id!r}")
            seen.add(client_id)
            machine._sessions.restore(client_id, (seq, slot, row[3], result_from_raw(row[4])))
            previous_slot = slot
        if len(seen) > sessions_max:
            raise CorruptSnapshot("more sessions than clients_max")
        self.machine = machine

    @staticmethod
    def _list(value: object, what: str, length: int | None = None) -> list[Any]:
        if type(value) is not list or (length is not None and len(value) != length):
            raise CorruptSnapshot(f"{what} is not an array of {length or 'any'} items")
        return value

    def _rows(self, value: object, what: str, width: int) -> list[list[Any]]:
        """Rows of a table sorted strictly by their first column (so keys are unique)."""
        rows = [self._list(row, f"{what} row", width) for row in self._list(value, what)]
        for before, after in itertools.pairwise(rows):
            if type(before[0]) is not str or type(after[0]) is not str or before[0] >= after[0]:
                raise CorruptSnapshot(f"{what} rows are not sorted by unique string keys")
        return rows

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
