"""Exactly-once client sessions: whatever state machine a request is for, it applies once.

Theory of operation: clients retry, and a retried write may be chosen in two slots. Each
`Request(client_id, seq, op)` is checked against the session table: the last applied seq of
that client and its cached answer. A repeat of that seq returns the cached answer without
applying again; an older seq returns Error("stale_request"); a newer one applies (clients may
skip seqs). The table is bounded by `clients_max` (default 100_000) sessions, evicting the
least recently used by slot: a client that stays idle while `clients_max` other clients send
requests loses its exactly-once protection (a retry of its last request would apply again).

A session also keeps a digest of the request's bytes: a seq reused for a different request (a
client bug, or two processes sharing one client id) is refused with Error("request_mismatch")
instead of getting the first request's answer, which would claim an operation took effect that
never ran. A retry must therefore repeat its request byte for byte, which every paxosd client
does. Cached answers share values with the state they came from, so memory grows only when a
cached answer outlives its value; the worst case is `clients_max` answers each as large as the
largest answer a write may have.

Nothing here knows what a request does: the router (router.py) hands each request to `apply`
with the handler that applies it, which runs only for a request not applied before. Client
ids that start with `ANONYMOUS_PREFIX` (a node made them up for a client that sent none) keep
no session, so anonymous traffic never evicts the sessions of clients that do retry.

Sessions live in an OrderedDict in least-recently-used order (itself part of the state, and
equal to ascending last-touch slot); touch and eviction are O(1).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeAlias

from .results import REQUEST_MISMATCH, STALE_REQUEST, Error

clients_max: Final = 100_000
ANONYMOUS_PREFIX: Final = "~"  # client ids without exactly-once sessions
digest_bytes: Final = 8
_blake2b: Final = hashlib.blake2b
RequestId: TypeAlias = tuple[str, int]  # (client id, seq): who waits for an answer
# (last seq, last touch slot, digest of that request's bytes, cached answer)
Session: TypeAlias = tuple[int, int, bytes, Any]


class Sessions:
    """The exactly-once table of one replica. Not thread-safe; not shared."""

    __slots__ = ("_clients_max", "_table")

    def __init__(self, clients_max: int = clients_max) -> None:
        if type(clients_max) is not int or clients_max < 1:
            raise ValueError(f"clients_max must be a positive int, got {clients_max!r}")
        self._clients_max = clients_max
        self._table: OrderedDict[str, Session] = OrderedDict()

    @property
    def clients_max(self) -> int:
        return self._clients_max

    def __len__(self) -> int:
        return len(self._table)

    def __iter__(self) -> Iterator[tuple[str, Session]]:
        """(client id, session) in least-recently-used order."""
        return iter(self._table.items())

    def apply(
        self,
        client_id: str,
        seq: int,
        payload: bytes,
        slot: int,
        handler: Callable[[Any], Any],
        op: Any,
    ) -> Any:
        """The answer to request (client_id, seq), whose log payload is `payload`, chosen for
        `slot`: `handler(op)`'s, recorded, if it was not applied before; otherwise the answer
        `check` gives. One call per write on every replica, so the usual case is inline."""
        digest = _blake2b(payload, digest_size=digest_bytes).digest()
        table = self._table
        session = table.get(client_id)
        if session is None:
            answer = handler(op)
            table[client_id] = (seq, slot, digest, answer)
            if len(table) > self._clients_max:
                table.popitem(last=False)
            return answer
        if seq <= session[0]:
            return self.check(client_id, seq, digest, slot)[1]
        answer = handler(op)
        table[client_id] = (seq, slot, digest, answer)
        table.move_to_end(client_id)
        return answer

    def check(self, client_id: str, seq: int, digest: bytes, slot: int) -> tuple[bool, Any]:
        """Before applying request (client_id, seq) with this digest at `slot`: (True, None) if
        it must be applied, or (False, answer) with the answer to give instead (the cached
        one for a retry, an error for a stale or mismatched seq)."""
        table = self._table
        session = table.get(client_id)
        if session is None:
            return True, None
        last_seq, _, last_digest, cached = session
        if seq > last_seq:
            return True, None
        if seq < last_seq:
            return False, Error(
                code=STALE_REQUEST,
                message=f"seq {seq} is older than this client's last seq {last_seq}",
            )
        if digest != last_digest:
            return False, Error(
                code=REQUEST_MISMATCH,
                message=(
                    f"client {client_id!r} already used seq {last_seq} for a different "
                    "request; nothing was applied: use a new seq for a new request"
                ),
            )
        table[client_id] = (last_seq, slot, last_digest, cached)
        table.move_to_end(client_id)
        return False, cached

    def restore(self, client_id: str, session: Session) -> None:
        """Add a session from a snapshot, after every session touched before it."""
        self._table[client_id] = session
