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
  each state machine hears of it (the key-value store ends the leases it passed, and the
  deletes of their keys are that entry's events); `wants_log_time` tells the leader to keep
  it moving while a state machine waits for it (a lease that may be live);
* dispatch: each op goes to the state machine of its namespace (registry.py), by its class;
* events: after each `apply`, `events` holds what the key-value store changed (types.Event,
  in the order it changed them; empty for anything else). The engine hands them on with the
  applied command (core/multi/ready.py `Applied.events`), so a host sees every change of every
  key, in log order, on every node, without decoding the payload again.

It is a pure function of the payloads it has applied: no clock, no randomness, no I/O.
Nothing here is module-level state, so any number of routers (one per Paxos group) can live in
one process.

Snapshots (snapshot.py, format version 3): `snapshot_view()` captures the state after the last
applied slot, on the event loop, cheaply (the key-value store freezes its index; the small
tables are copied); `view.write(out)` streams it and may run in another thread while `apply`
goes on. The bytes are deterministic: equal states give equal bytes. `restore` reads versions
2 and 3; a version-2 snapshot (one value per key, revisions from 0) is converted as replaying
the commands it covers would have built the state (kv/machine.py).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Final

from .codec import key_bytes_max, owner_bytes_max, seq_max, time_ms_max
from .commands import AdvanceTime, Noop, decode_parts, encode, is_read, validate
from .coordination import Coordination
from .errors import BadCommand, CorruptSnapshot, SlotOrderError
from .kv.index import KeyIndex
from .kv.leases import LeaseKeepAlive, lock_lease_base
from .kv.machine import KvMachine
from .kv.types import Event, KeyValue
from .namespace import Options, PartView
from .registry import NAMESPACES
from .results import (
    BAD_COMMAND,
    CasResult,
    Deleted,
    Error,
    Result,
    Value,
    Written,
    result_from_raw,
    result_to_raw,
)
from .sessions import ANONYMOUS_PREFIX, RequestId, Session, Sessions, clients_max, digest_bytes
from .snapshot import SnapshotReader, SnapshotWriter, open_snapshot
from .sql.machine import SqlMachine
from .values import check_value, json_text, unpack

__all__ = ["ANONYMOUS_PREFIX", "Router", "RouterView", "StateMachine", "clients_max"]

_NONE: Final = (None, None)
_NO_EVENTS: Final[tuple[Event, ...]] = ()


class Router:
    """One replica's copy of the replicated state. Not thread-safe; not shared (its snapshot
    views may be written from another thread)."""

    __slots__ = (
        "_applied_slot",
        "_handlers",
        "_kv",
        "_log_time_ms",
        "_options",
        "_parts",
        "_readers",
        "_sessions",
        "events",
    )

    def __init__(self, *, clients_max: int = clients_max, options: Options | None = None):
        self._options = Options() if options is None else options
        self._sessions = Sessions(clients_max)
        self._applied_slot = -1  # nothing applied yet; the engine may start at slot 0 or 1
        self._log_time_ms = 0
        self.events: tuple[Event, ...] = _NO_EVENTS
        self._install({ns.name: ns.new(self._options) for ns in NAMESPACES})

    def _install(self, parts: dict[str, Any]) -> None:
        self._parts = parts
        self._handlers: dict[type, Callable[[Any], Result]] = {}
        self._readers: dict[type, Callable[[Any], Result]] = {}
        for part in parts.values():
            self._handlers.update(part.handlers())
            self._readers.update(part.readers())
        self._kv: KvMachine = parts["kv"]
        # One TTL machine: locks are held by the key-value store's leases.
        parts["coordination"].bind(self._kv.leases)

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
    def kv(self) -> KvMachine:
        """The key-value store."""
        return self._kv

    @property
    def coordination(self) -> Coordination:
        """Locks, names and decisions."""
        part: Coordination = self._parts["coordination"]
        return part

    @property
    def sql(self) -> SqlMachine:
        """The SQL database."""
        part: SqlMachine = self._parts["sql"]
        return part

    @property
    def options(self) -> Options:
        return self._options

    @property
    def revision(self) -> int:
        """The key-value store's revision."""
        return self._kv.store.revision

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
        decoding the payload a second time; `events` then holds what it changed. Never raises
        for any payload; raises `SlotOrderError` if the engine repeats or reorders slots.
        """
        if slot <= self._applied_slot:
            raise SlotOrderError(f"slot {slot} applied after slot {self._applied_slot}")
        self._applied_slot = slot
        if self.events:
            self.events = _NO_EVENTS
        if not payload:
            return _NONE
        try:
            client_id, seq, command = decode_parts(payload)
        except BadCommand as exc:
            return Error(code=BAD_COMMAND, message=str(exc)), None
        if client_id is not None:  # a Request: `command` is its op
            if client_id.startswith(ANONYMOUS_PREFIX):
                # A request nobody will retry (a node made its id): apply it, keep no session.
                answer = self._handlers[type(command)](command)
            else:
                handler = self._handlers[type(command)]
                answer = self._sessions.apply(client_id, seq, payload, slot, handler, command)
            if self._kv.events:
                self.events = self._kv.take_events()
            return answer, (client_id, seq)
        kind = type(command)
        if kind is AdvanceTime:
            # Monotone: a stale leader's older timestamp must not move leases backwards.
            if command.now_ms > self._log_time_ms:
                self._log_time_ms = command.now_ms
                for part in self._parts.values():
                    part.advance_time(command.now_ms)
                if self._kv.events:  # the keys of the leases that time ended (kv/leases.py)
                    self.events = self._kv.take_events()
            return _NONE
        if kind is Noop:
            return _NONE
        answer = self._handlers[kind](command)
        if self._kv.events:
            self.events = self._kv.take_events()
        return answer, None

    def read(self, query: object) -> Result:
        """Answer a read-only query (`is_read(query)`) from this state.

        For linearizable reads the engine calls this only after confirming leadership and
        applying up to the read index. Never mutates state. Raises `BadCommand` for anything but
        a valid read query.
        """
        if not is_read(query):
            raise BadCommand("query", f"{type(query).__name__} is not a read query")
        validate(query, self._options.kv_limits)
        return self._readers[type(query)](query)

    # -----------------------------------------------------------------------------------------
    # The planted lease bugs (runtime/driver.py) reach the state machine through these two;
    # nothing else calls them.

    def renewals(self) -> list[bytes]:
        """A keep-alive of every live lease, as bare commands (no client sent them)."""
        ids = sorted(i for i in self._kv.leases.leases if i < lock_lease_base)  # not the locks'
        return [encode(LeaseKeepAlive(id=lease_id)) for lease_id in ids]

    def expire_by_own_clock(self, now_ms: int) -> None:
        """End the leases `now_ms` passed, here only, outside the log (what a replica that
        timed leases with its own clock would do)."""
        kv = self._kv
        if now_ms > kv.leases.now_ms:
            kv.advance_time(now_ms)
            kv.leases.now_ms = self._log_time_ms
            kv.take_events()

    # -----------------------------------------------------------------------------------------
    # Snapshots
    #
    # A version-3 snapshot's objects (snapshot.py frames them):
    #   ["paxosd", applied_slot, log_time_ms, clients_max, [namespace names]]
    #   each namespace's section, in registry order (kv/machine.py, coordination.py)
    #   ["sessions", count]
    #   [client_id, seq, slot, digest, cached answer]            per session, LRU order

    def snapshot_view(self) -> RouterView:
        """The state after the last applied slot, for `RouterView.write`: cheap, on the loop
        (the key-value store's index is frozen, not copied; sessions and coordination's small
        tables are copied)."""
        return RouterView(self)

    def snapshot(self) -> bytes:
        """The whole state as deterministic, checksummed bytes (equal states, equal bytes)."""
        out = io.BytesIO()
        with self.snapshot_view() as view:
            view.write(out)
        return out.getvalue()

    @classmethod
    def restore(cls, source: bytes | BinaryIO, *, options: Options | None = None) -> Router:
        """A machine in exactly the state a snapshot captured (versions 2 and 3).

        Raises `CorruptSnapshot` for truncated, damaged, foreign or unsupported bytes, and for
        a well-framed body that breaks any invariant of the state (defence in depth: a
        checksum only proves the bytes are the ones written, not that the writer was right).
        """
        options = Options() if options is None else options
        version, body = open_snapshot(source)
        try:
            if version == 2:
                try:
                    raw = unpack(body)
                except Exception as exc:  # any msgpack failure means the body is not ours
                    raise CorruptSnapshot(f"body is not msgpack ({type(exc).__name__})") from None
                return _V2Restorer(raw, options).machine
            return _restore(body, options)
        except CorruptSnapshot:
            raise
        except Exception as exc:  # a shape we did not anticipate: still never garbage
            raise CorruptSnapshot(f"malformed snapshot: {exc!r:.200}") from None


# The name the engine and the hosts have always used for the replicated state machine.
StateMachine = Router


class RouterView:
    """The router's state at one applied slot (`Router.snapshot_view`). `write` may run in
    another thread while the router goes on applying; `close` when done (or use `with`)."""

    __slots__ = ("_header", "_parts", "_sessions")

    def __init__(self, router: Router) -> None:
        self._header = [
            "paxosd",
            router._applied_slot,
            router._log_time_ms,
            router._sessions.clients_max,
            [ns.name for ns in NAMESPACES],
        ]
        self._sessions: list[tuple[str, Session]] = list(router._sessions)
        self._parts: list[PartView] = [router._parts[ns.name].snapshot_view() for ns in NAMESPACES]

    def write(self, out: BinaryIO) -> None:
        """Stream the captured state to `out` as a version-3 snapshot."""
        writer = SnapshotWriter(out)
        writer.write(self._header)
        for part in self._parts:
            part.write(writer)
        writer.write(["sessions", len(self._sessions)])
        for client_id, (seq, slot, digest, answer) in self._sessions:
            writer.write([client_id, seq, slot, digest, result_to_raw(answer)])
        writer.close()

    def close(self) -> None:
        for part in self._parts:
            part.close()

    def __enter__(self) -> RouterView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _restore(reader: SnapshotReader, options: Options) -> Router:
    objects = reader.objects()
    head = reader.next(objects, "the header")
    names = [ns.name for ns in NAMESPACES]
    if type(head) is not list or len(head) != 5 or head[0] != "paxosd":
        raise CorruptSnapshot(f"malformed header {head!r:.80}")
    _, applied_slot, log_time_ms, sessions_max, stored_names = head
    _check_int(applied_slot, "applied_slot", low=-1)
    _check_int(log_time_ms, "log time", high=time_ms_max)
    _check_int(sessions_max, "clients_max", low=1)
    # A snapshot written before a state machine was added lacks its section: that machine
    # starts empty, as it was then (NAMESPACES only ever grows at its end).
    if type(stored_names) is not list or stored_names != names[: len(stored_names)]:
        raise CorruptSnapshot(f"state machines {stored_names!r:.80}, this code has {names}")
    machine = Router(clients_max=sessions_max, options=options)
    machine._applied_slot = applied_slot
    machine._log_time_ms = log_time_ms
    machine._install(
        {
            ns.name: ns.restore(objects, reader, options, log_time_ms)
            if ns.name in stored_names
            else ns.new(options)
            for ns in NAMESPACES
        }
    )
    head = reader.next(objects, "the sessions")
    if type(head) is not list or len(head) != 2 or head[0] != "sessions":
        raise CorruptSnapshot(f"malformed sessions header {head!r:.80}")
    count = _check_int(head[1], "sessions", high=sessions_max)
    _restore_sessions(
        machine, (reader.next(objects, "a session") for _ in range(count)), applied_slot
    )
    reader.finish(objects)
    return machine


def _restore_sessions(
    machine: Router,
    rows: Iterator[Any],
    applied_slot: int,
    convert: Callable[[Result], Result] = lambda answer: answer,
) -> None:
    previous_slot = -1
    seen: set[str] = set()
    for row in rows:
        if type(row) is not list or len(row) != 5:
            raise CorruptSnapshot(f"malformed session {row!r:.60}")
        client_id = _check_str(row[0], "client id", owner_bytes_max)
        seq = _check_int(row[1], "session seq", high=seq_max)
        slot = _check_int(row[2], "session slot", low=previous_slot + 1, high=applied_slot)
        if type(row[3]) is not bytes or len(row[3]) != digest_bytes:
            raise CorruptSnapshot(f"session {client_id!r}: digest is not {digest_bytes} bytes")
        if client_id in seen:
            raise CorruptSnapshot(f"duplicate session {client_id!r}")
        seen.add(client_id)
        answer = convert(result_from_raw(row[4]))
        machine._sessions.restore(client_id, (seq, slot, row[3], answer))
        previous_slot = slot
    if len(seen) > machine._sessions.clients_max:
        raise CorruptSnapshot("more sessions than clients_max")


def _check_int(value: object, what: str, *, low: int = 0, high: int = 2**64 - 1) -> int:
    if type(value) is not int or not low <= value <= high:
        raise CorruptSnapshot(f"{what} {value!r:.40} is not an int in [{low}, {high}]")
    return value


def _check_str(value: object, what: str, limit_bytes: int) -> str:
    if type(value) is not str or not value or len(value.encode()) > limit_bytes:
        raise CorruptSnapshot(f"{what} {value!r:.40} is not a valid string")
    return value


class _V2Restorer:
    """Restores a version-2 snapshot body, converting it to this model as replaying the
    commands it covers would have (kv/machine.py): keys as UTF-8 bytes, values as JSON text,
    every key at version 1, revisions one higher (the store starts at 1 now), the history
    compacted to the current revision, cached answers' revisions one higher too.

    Body: [applied_slot, now_ms, revision, fencing_token, clients_max,
           kv: [[key, value, create_revision, mod_revision], ...] sorted by key,
           locks: [[name, owner, fencing_token, expires_at_ms, held], ...] sorted by name,
           names: [[name, owner], ...], decisions: [[id, value], ...] sorted,
           sessions: [[client_id, seq, slot, digest, result], ...] in LRU order]
    """

    def __init__(self, raw: object, options: Options) -> None:
        body = self._list(raw, "body", 10)
        applied_slot = _check_int(body[0], "applied_slot", low=-1)
        now_ms = _check_int(body[1], "now_ms", high=time_ms_max)
        revision = _check_int(body[2], "revision")
        fencing_token = _check_int(body[3], "fencing_token")
        sessions_max = _check_int(body[4], "clients_max", low=1)
        machine = Router(clients_max=sessions_max, options=options)
        machine._applied_slot = applied_slot
        machine._log_time_ms = now_ms
        coordination = machine.coordination
        coordination.now_ms = now_ms
        machine.kv.leases.now_ms = now_ms
        coordination.fencing_token = fencing_token

        store = machine.kv.store
        keys: list[bytes] = []
        for row in self._rows(body[5], "kv", 4):
            key = _check_str(row[0], "kv key", key_bytes_max)
            self._json(row[1], "kv value")
            create = _check_int(row[2], "create_revision", low=1, high=revision)
            mod = _check_int(row[3], "mod_revision", low=create, high=revision)
            data = key.encode()
            store.history[data] = [KeyValue(data, create + 1, mod + 1, 1, json_text(row[1]), 0)]
            keys.append(data)
        store.revision = revision + 1
        store.compact_revision = revision + 1 if revision else -1
        store.live_keys = len(keys)
        store.index = KeyIndex(sorted(keys))  # UTF-8 byte order is code point order anyway
        for row in self._rows(body[6], "locks", 5):
            name = _check_str(row[0], "lock name", key_bytes_max)
            owner = _check_str(row[1], "lock owner", owner_bytes_max)
            token = _check_int(row[2], "lock token", low=1, high=fencing_token)
            expires = _check_int(row[3], "lock expiry")
            if type(row[4]) is not bool:
                raise CorruptSnapshot("lock held flag is not a bool")
            coordination.adopt_lock(name, owner, token, expires, row[4])
        coordination.bind(machine.kv.leases)  # the adopted locks' leases
        for row in self._rows(body[7], "names", 2):
            name = _check_str(row[0], "name", key_bytes_max)
            coordination.names[name] = _check_str(row[1], "name owner", owner_bytes_max)
        for row in self._rows(body[8], "decisions", 2):
            id_ = _check_str(row[0], "decision id", key_bytes_max)
            if row[1] is None:
                raise CorruptSnapshot("a decision's chosen value is null")
            self._json(row[1], "decision value")
            coordination.decisions[id_] = row[1]
        _restore_sessions(machine, iter(self._list(body[9], "sessions")), applied_slot, _shift)
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
    def _json(value: object, what: str) -> None:
        try:
            check_value(value, what)
        except BadCommand as exc:
            raise CorruptSnapshot(f"{exc}") from None


def _shift(answer: Result) -> Result:
    """A cached answer of the old numbering, in the new one (revisions one higher)."""
    match answer:
        case Value():
            return Value(
                key=answer.key,
                value=answer.value,
                revision=answer.revision + 1,
                create_revision=answer.create_revision + 1,
            )
        case Written():
            return Written(key=answer.key, revision=answer.revision + 1)
        case Deleted():
            return Deleted(key=answer.key, existed=answer.existed, revision=answer.revision + 1)
        case CasResult() if answer.revision:
            return CasResult(
                succeeded=answer.succeeded,
                key=answer.key,
                value=answer.value,
                revision=answer.revision + 1,
            )
    return answer
