"""RESP key expiry on leases: SET ... EX|PX|EXAT|PXAT|KEEPTTL, EXPIRE, PEXPIRE, TTL, PTTL and
PERSIST.

Theory of operation: a key that expires is a key attached to a lease of the key-value store
(service/kv/leases.py), which ends on log time; when it ends the key is deleted, on every
node at the same point of the log. So:

* `SET k v EX s` (PX ms, EXAT unix-s, PXAT unix-ms) grants a lease of that length, then puts
  the key with it: two log entries. The lease is the key's alone (one lease per SET); a later
  SET, with or without expiry, moves the key off it, and a lease left without keys simply
  ends on time. EXAT and PXAT are turned into a length by this node's wall clock when the
  command arrives: the key then lives that long in log time, whatever the clocks do after.
* `SET k v KEEPTTL` keeps the key's lease (a transaction: with ignore_lease if the key
  exists, without a lease otherwise); a plain SET drops it, as Redis drops the TTL.
* `EXPIRE k s` / `PEXPIRE k ms` grant a lease and move the key onto it if it exists (1), else
  nothing (0); a time of 0 or less deletes the key, as Redis does.
* `TTL k` / `PTTL k`: -2 if the key does not exist, -1 if it has no lease, else what its lease
  has left in log time (TTL rounds to the nearest second, as Redis does).
* `PERSIST k`: the key leaves its lease (1), or 0 if it has none or does not exist.

Where the meaning differs from Redis's (docs/resp.md): the shortest expiry is the node's
shortest lease (1.5 election timeouts: 600 ms by default), and a shorter one, or an EXAT in
the past, is refused rather than expiring at once; EXPIRE and PERSIST write a new version of
the key (same value, new lease: watchers see a PUT); the expiry's deletion is a DEL to
watchers and keyspace notifications (there is no `expired` event); EXPIRE's NX/XX/GT/LT and
SET's XX and GET are refused by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from paxosd.runtime.service_api import NodeService
from paxosd.service.kv import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    KvError,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseTimeToLive,
    LeaseTimeToLiveResponse,
    Put,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
    lease_ttl_ms_max,
)

__all__ = ["EXPIRE_COMMANDS", "set_with_options"]

OK: Final = b"+OK\r\n"
ZERO: Final = b":0\r\n"
ONE: Final = b":1\r\n"
ERR_SYNTAX: Final = b"-ERR syntax error\r\n"
# SET options paxosd recognises but does not implement: refused by name.
_SET_UNSUPPORTED: Final = frozenset({"XX", "GET"})
_EXPIRY_UNITS: Final = {"EX": 1000, "PX": 1, "EXAT": 1000, "PXAT": 1}


class Connection(Protocol):
    node: NodeService

    def reply(self, data: bytes) -> None: ...
    def read(self, op: Any, render: Callable[[Any, bytes], bytes]) -> None: ...
    def write(self, op: Any, render: Callable[[Any, bytes], bytes]) -> None: ...
    def when_done(
        self,
        build: Callable[[], bytes | tuple[Any, bool]],
        render: Callable[[Any, bytes], bytes],
    ) -> None: ...


def _error(text: str) -> bytes:
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace") + b"\r\n"


def _integer(value: int) -> bytes:
    return b":%d\r\n" % value


def _bytes(arg: str) -> bytes:
    return arg.encode("utf-8", "surrogateescape")


def _number(text: str) -> int | None:
    """A decimal integer argument, sign allowed (as Redis parses expiry times)."""
    body = text[1:] if text[:1] in "+-" else text
    if body.isascii() and body.isdigit() and len(body) <= 18:
        return int(text)
    return None


def _store_error(answer: Any) -> bytes | None:
    if isinstance(answer, KvError):
        return _error(f"ERR {answer.code}: {answer.detail}")
    return None


def _ttl_ms(conn: Connection, ttl_ms: int, command: str) -> int | bytes:
    """`ttl_ms` if the node grants a lease that long, else the error reply."""
    low = conn.node.lease_ttl_ms_min
    if ttl_ms > lease_ttl_ms_max:
        return _error(f"ERR invalid expire time in '{command}' command")
    if ttl_ms < low:
        return _error(
            f"ERR invalid expire time in '{command}' command: paxosd's shortest expiry is "
            f"{low} ms (1.5 times the longest election timeout), got {ttl_ms} ms"
        )
    return ttl_ms


def _with_lease(
    conn: Connection,
    ttl_ms: int,
    build: Callable[[int], bytes | tuple[Any, bool]],
    render: Callable[[Any, bytes], bytes],
) -> None:
    """Grant a lease of `ttl_ms`, then run what `build(lease id)` gives: ONE reply in all (the
    grant's own reply is empty; if the grant fails, its error is the reply and nothing else
    runs)."""
    granted: list[int] = []

    def take(answer: Any, nil: bytes) -> bytes:
        refused = _store_error(answer)
        if refused is not None:
            return refused
        assert isinstance(answer, LeaseGrantResponse)
        granted.append(answer.id)
        return b""

    conn.write(LeaseGrant(ttl_ms=ttl_ms), take)
    conn.when_done(lambda: build(granted[0]) if granted else b"", render)


# ---------------------------------------------------------------------------------------------
# SET with options


def _render_ok(answer: Any, nil: bytes) -> bytes:
    return _store_error(answer) or OK


def _render_nx(answer: Any, nil: bytes) -> bytes:
    refused = _store_error(answer)
    if refused is not None:
        return refused
    assert isinstance(answer, TxnResponse)
    return OK if answer.succeeded else nil


def _absent(key: bytes) -> Compare:
    return Compare(key=key, target=CompareTarget.CREATE, create_revision=0)


def _exists(key: bytes) -> Compare:
    return Compare(
        key=key, target=CompareTarget.CREATE, result=CompareResult.GREATER, create_revision=0
    )


def set_with_options(conn: Connection, args: list[str]) -> None:
    """SET key value [NX] [EX s | PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL]."""
    key, value = _bytes(args[1]), _bytes(args[2])
    nx = keep = False
    expiry: tuple[str, int] | None = None
    options = args[3:]
    i = 0
    while i < len(options):
        upper = options[i].upper()
        if upper == "NX" and not nx:
            nx = True
        elif upper == "KEEPTTL" and not keep and expiry is None:
            keep = True
        elif upper in _EXPIRY_UNITS and expiry is None and not keep and i + 1 < len(options):
            number = _number(options[i + 1])
            if number is None:
                conn.reply(_error("ERR value is not an integer or out of range"))
                return
            expiry = (upper, number)
            i += 1
        elif upper in _SET_UNSUPPORTED:
            conn.reply(
                _error(
                    f"ERR SET option '{upper}' is not supported by paxosd (supported: NX, EX, "
                    "PX, EXAT, PXAT, KEEPTTL)"
                )
            )
            return
        else:
            conn.reply(ERR_SYNTAX)
            return
        i += 1
    if expiry is None:
        if nx:
            op: Any = Txn(compare=(_absent(key),), success=(Put(key=key, value=value),))
            conn.write(op, _render_nx)
        elif keep:
            kept = Put(key=key, value=value, ignore_lease=True)
            op = Txn(compare=(_exists(key),), success=(kept,), failure=(Put(key=key, value=value),))
            conn.write(op, _render_ok)
        else:
            conn.write(Put(key=key, value=value), _render_ok)
        return
    unit, number = expiry
    ttl = number * _EXPIRY_UNITS[unit]
    if unit in ("EXAT", "PXAT"):
        ttl -= int(time.time() * 1000)  # this node's wall clock, once (module docstring)
    checked = _ttl_ms(conn, ttl, "set")
    if isinstance(checked, bytes):
        conn.reply(checked)
        return

    def build(lease: int) -> tuple[Any, bool]:
        put = Put(key=key, value=value, lease=lease)
        if nx:
            return Txn(compare=(_absent(key),), success=(put,)), True
        return put, True

    _with_lease(conn, checked, build, _render_nx if nx else _render_ok)


# ---------------------------------------------------------------------------------------------
# EXPIRE, PEXPIRE, PERSIST


def _render_succeeded(answer: Any, nil: bytes) -> bytes:
    refused = _store_error(answer)
    if refused is not None:
        return refused
    assert isinstance(answer, TxnResponse)
    return ONE if answer.succeeded else ZERO


def _render_deleted(answer: Any, nil: bytes) -> bytes:
    refused = _store_error(answer)
    if refused is not None:
        return refused
    assert isinstance(answer, DeleteRangeResponse)
    return _integer(answer.deleted)


def _expire(conn: Connection, args: list[str], unit_ms: int, command: str) -> None:
    if len(args) > 3:
        conn.reply(
            _error(f"ERR {command.upper()} option '{args[3].upper()[:20]}' is not supported by "
                   "paxosd")
        )  # fmt: skip
        return
    key = _bytes(args[1])
    number = _number(args[2])
    if number is None:
        conn.reply(_error("ERR value is not an integer or out of range"))
        return
    if number <= 0:
        conn.write(DeleteRange(key=key), _render_deleted)  # as Redis: expired at once
        return
    checked = _ttl_ms(conn, number * unit_ms, command)
    if isinstance(checked, bytes):
        conn.reply(checked)
        return

    def build(lease: int) -> tuple[Any, bool]:
        moved = Put(key=key, ignore_value=True, lease=lease)
        return Txn(compare=(_exists(key),), success=(moved,)), True

    _with_lease(conn, checked, build, _render_succeeded)


def cmd_expire(conn: Connection, args: list[str]) -> None:
    _expire(conn, args, 1000, "expire")


def cmd_pexpire(conn: Connection, args: list[str]) -> None:
    _expire(conn, args, 1, "pexpire")


def cmd_persist(conn: Connection, args: list[str]) -> None:
    key = _bytes(args[1])
    # A missing key's lease reads as 0, so one compare says "exists and has a lease".
    leased = Compare(key=key, target=CompareTarget.LEASE, result=CompareResult.NOT_EQUAL)
    op = Txn(compare=(leased,), success=(Put(key=key, ignore_value=True),))
    conn.write(op, _render_succeeded)


# ---------------------------------------------------------------------------------------------
# TTL, PTTL


def _ttl(conn: Connection, args: list[str], millis: bool) -> None:
    found: list[RangeResponse] = []

    def take(answer: Any, nil: bytes) -> bytes:
        refused = _store_error(answer)
        if refused is not None:
            return refused
        assert isinstance(answer, RangeResponse)
        found.append(answer)
        return b""

    def build() -> bytes | tuple[Any, bool]:
        if not found:
            return b""  # the read failed: its error was the reply
        if not found[0].kvs:
            return _integer(-2)
        lease = found[0].kvs[0].lease
        if not lease:
            return _integer(-1)
        return LeaseTimeToLive(id=lease), False

    def render(answer: Any, nil: bytes) -> bytes:
        refused = _store_error(answer)
        if refused is not None:
            return refused
        assert isinstance(answer, LeaseTimeToLiveResponse)
        left = answer.ttl_ms
        if left < 0:
            return _integer(-2)  # the lease ended between the two reads: so did the key
        return _integer(left if millis else (left + 500) // 1000)

    conn.read(Range(key=_bytes(args[1])), take)
    conn.when_done(build, render)


def cmd_ttl(conn: Connection, args: list[str]) -> None:
    _ttl(conn, args, millis=False)


def cmd_pttl(conn: Connection, args: list[str]) -> None:
    _ttl(conn, args, millis=True)


EXPIRE_COMMANDS: Final[dict[str, tuple[Callable[[Any, list[str]], None], int]]] = {
    "EXPIRE": (cmd_expire, -3),
    "PEXPIRE": (cmd_pexpire, -3),
    "PERSIST": (cmd_persist, 2),
    "TTL": (cmd_ttl, 2),
    "PTTL": (cmd_pttl, 2),
}
