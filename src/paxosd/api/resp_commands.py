"""The RESP command table: what each Redis-style command means in paxosd, and its reply bytes.

Theory of operation: `paxosd.api.resp` frames the byte stream and keeps replies in order; this
module gives the commands their meaning. A handler receives the connection and the command's
arguments (already UTF-8 decoded by hiredis) and does exactly one of:

* `conn.reply(bytes)`: an immediate answer (PING, syntax errors, CONFIG GET, ...);
* `conn.read(op, render)` / `conn.write(op, render)`: one state-machine operation; `render`
  turns the operation's result into reply bytes once the node answers;
* `conn.read_many(ops, render)` / `conn.write_many(ops, render)`: several independent
  operations (DEL k1 k2, MGET, ...) answered together.

Renderers only ever see their operation's success types: the connection turns exceptions
(`paxosd.runtime.errors`) and `results.Error` answers into error replies with
`exception_reply` / `result_error_reply` before calling them. A renderer takes the result and
the connection's null reply (`$-1` in RESP2, `_` in RESP3), so the hot path needs no closure.

Keys and values are byte strings, as in Redis and in the key-value store (etcd's model): any
bytes, stored as they are. Arguments arrive as text whose undecodable bytes are kept as lone
surrogates (hiredis with `surrogateescape`, resp_wire.py), so `_bytes` gives back the exact
bytes sent. A value written over HTTP as JSON is its JSON text (`"x"` with its quotes), and
bytes written here that are not JSON text read on /v1 as `value_base64`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, TypeAlias

from paxosd.runtime.errors import (
    BadRequest,
    Damaged,
    NotLeader,
    Overloaded,
    ServiceError,
    Unavailable,
)
from paxosd.runtime.service_api import NodeService
from paxosd.service.commands import (
    DecisionGet,
    DecisionPropose,
    LockAcquire,
    LockRefresh,
    LockRelease,
    LockStatus,
    NameLookup,
    NameRegister,
)
from paxosd.service.errors import BadCommand
from paxosd.service.kv import (
    Compare,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    KvError,
    Put,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
)
from paxosd.service.kv.codec import plain_put, plain_range
from paxosd.service.results import (
    NOT_HOLDER,
    REQUEST_MISMATCH,
    STALE_REQUEST,
    DecisionResult,
    LockResult,
    NameResult,
    Released,
)
from paxosd.service.results import Error as ResultError

from .resp_expire import EXPIRE_COMMANDS, set_with_options
from .resp_kv import KV_COMMANDS, MultiState
from .resp_pubsub import PUBSUB_COMMANDS
from .version import VERSION

log = logging.getLogger("paxosd.api.resp")


# The Redis version paxosd tells clients to assume in INFO, for libraries that gate features
# on it. 7.0 is the first version whose COMMAND DOCS / HELLO / CLIENT SETINFO clients expect.
redis_compat_version: Final = "7.0.0"

# ---------------------------------------------------------------------------------------------
# Reply encoding. Prebuilt constants for the answers that do not vary.

OK: Final = b"+OK\r\n"
PONG: Final = b"+PONG\r\n"
ZERO: Final = b":0\r\n"
ONE: Final = b":1\r\n"
NIL2: Final = b"$-1\r\n"
NIL3: Final = b"_\r\n"
EMPTY_ARRAY: Final = b"*0\r\n"
ERR_SYNTAX: Final = b"-ERR syntax error\r\n"
ERR_NOT_INTEGER: Final = b"-ERR value is not an integer or out of range\r\n"
ERR_MAX_CLIENTS: Final = b"-ERR max number of clients reached\r\n"


def bulk(data: bytes) -> bytes:
    """A bulk string. %-formatting beats concatenation here (one allocation, measured ~40%)."""
    return b"$%d\r\n%b\r\n" % (len(data), data)


def bulk_text(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def integer(value: int) -> bytes:
    if value == 0:
        return ZERO
    if value == 1:
        return ONE
    return b":%d\r\n" % value


def array(items: Sequence[bytes]) -> bytes:
    """An array of already-encoded replies."""
    return b"*%d\r\n%b" % (len(items), b"".join(items))


def mapping(pairs: Sequence[tuple[bytes, bytes]], resp3: bool) -> bytes:
    """A map of encoded keys and values: a RESP3 map, or a flat key/value array in RESP2."""
    body = b"".join(key + value for key, value in pairs)
    return b"%c%d\r\n%b" % (37 if resp3 else 42, len(pairs) if resp3 else 2 * len(pairs), body)


def error(text: str) -> bytes:
    """An error reply; `text` starts with its code word ("ERR ...", "NOTLEADER ...")."""
    # An error reply is one line: a newline inside it would desynchronise the client.
    clean = text.replace("\r", " ").replace("\n", " ")
    return b"-" + clean.encode("utf-8", "backslashreplace") + b"\r\n"


def not_while_subscribed(name: str) -> bytes:
    return error(
        f"ERR Can't execute '{name.lower()[:64]}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
        "PING / QUIT / RESET are allowed in this context"
    )


def wrong_arity(name: str) -> bytes:
    return error(f"ERR wrong number of arguments for '{name.lower()}' command")


def unknown_command(args: Sequence[str]) -> bytes:
    # Redis's wording, so tools that match on it (redis-cli hints, test suites) keep working.
    shown = " ".join(f"'{arg[:128]}'" for arg in args[1:6])
    return error(f"ERR unknown command '{args[0][:128]}', with args beginning with: {shown}")


# JSON type names for WRONGTYPE messages.
_JSON_TYPES: Final[dict[type, str]] = {
    bool: "boolean",
    int: "number",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


def wrongtype(value: Any) -> bytes:
    kind = _JSON_TYPES.get(type(value), type(value).__name__)
    return error(
        f"WRONGTYPE the value is a JSON {kind}, not a string: it was written over HTTP; "
        "read it there"
    )


def _int_or_nil(value: int | None, nil: bytes) -> bytes:
    return nil if value is None else integer(value)


# ---------------------------------------------------------------------------------------------
# What a handler may do with its connection (implemented by resp.RespProtocol).

Render: TypeAlias = Callable[[Any, bytes], bytes]
RenderMany: TypeAlias = Callable[[list[Any], bytes], bytes]


class Connection(Protocol):
    node: NodeService
    resp3: bool
    multi: MultiState | None
    watched: dict[bytes, int]
    conn_id: int
    name: str | None
    lib_name: str
    lib_ver: str
    pubsub: Any  # resp_pubsub.PubSub | None

    def reply(self, data: bytes) -> None: ...
    def push(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def read(self, op: Any, render: Render) -> None: ...
    def write(self, op: Any, render: Render) -> None: ...
    def read_many(self, ops: list[Any], render: RenderMany) -> None: ...
    def write_many(self, ops: list[Any], render: RenderMany) -> None: ...
    def when_done(self, build: Any, render: Render) -> None: ...
    def set_protocol(self, version: int) -> None: ...
    def quit(self) -> None: ...
    def describe(self) -> str: ...
    def local_port(self) -> int: ...


Handler: TypeAlias = Callable[[Connection, list[str]], None]

# ---------------------------------------------------------------------------------------------
# Failures -> error replies (the one place where node errors become RESP).


def exception_reply(node: NodeService, exc: BaseException, write: bool) -> bytes:
    """The error reply for an operation whose future failed."""
    if isinstance(exc, NotLeader):
        return not_leader_reply(node, exc)
    if isinstance(exc, Unavailable | asyncio.CancelledError):
        return unavailable_reply(str(exc) or "no answer", write)
    if isinstance(exc, Overloaded):
        return error(f"BUSY overloaded: {exc}; the command was not accepted, retry later")
    if isinstance(exc, BadRequest) and isinstance(exc.error, KvError):
        return error(f"ERR {exc.error.detail}")  # paxosd's sentence: names the limit
    if isinstance(exc, BadRequest | BadCommand):
        return error(f"ERR {exc}")
    if isinstance(exc, Damaged):
        return error(f"DAMAGED {exc}; this node refuses to serve until repaired")
    if isinstance(exc, ServiceError):
        return error(f"ERR {exc.code}: {exc}")
    log.error("unexpected failure of a RESP command", exc_info=exc)
    return error(f"ERR internal error: {type(exc).__name__}")


def unavailable_reply(message: str, write: bool) -> bytes:
    if write:
        # Resending the command over RESP is a new request (new sequence number): say so.
        return error(
            f"UNKNOWN outcome unknown: {message}; the write may or may not have taken effect "
            "(sending it again may apply it twice)"
        )
    return error(f"TRYAGAIN no answer in time: {message}; nothing was changed, retry")


def not_leader_reply(node: NodeService, exc: NotLeader) -> bytes:
    """`-NOTLEADER leader=<id|none> <host:port|-> <message>`: where to send the command."""
    leader = exc.leader
    address = "-"
    if leader is not None:
        try:
            for member in node.members():
                if member.get("id") == leader and member.get("resp"):
                    address = str(member["resp"])
                    break
        except Exception:  # a status call failing must not hide the real answer
            log.exception("members() failed while answering NOTLEADER")
    shown = "none" if leader is None else str(leader)
    return error(f"NOTLEADER leader={shown} {address} {exc}")


def result_error_reply(result: ResultError, write: bool) -> bytes:
    """The error reply for a `results.Error` answer from the state machine."""
    if result.code == NOT_HOLDER:
        return error(f"NOTHOLDER {result.message}")
    if result.code == STALE_REQUEST:
        # A newer request of this connection was applied first; this one was not applied
        # now, and only the node knows whether an earlier copy was.
        return unavailable_reply(f"stale request ({result.message})", write)
    if result.code == REQUEST_MISMATCH:
        # The connection numbers its own writes, so this is paxosd's bug, not the client's.
        return error(
            f"ERR request_mismatch: {result.message}; this connection's request id was used "
            "for another command, so this one was not applied (a bug in paxosd: please report "
            "it); sending it again is safe"
        )
    return error(f"ERR {result.code}: {result.message}")


# ---------------------------------------------------------------------------------------------
# Renderers: a success result -> reply bytes.


def _render_ok(result: Any, nil: bytes) -> bytes:
    return OK


def _value_or_nil(result: RangeResponse, nil: bytes) -> bytes:
    """The key's value as a bulk string, nil if it does not exist."""
    if result.kvs:
        data = result.kvs[0].value
        return b"$%d\r\n%b\r\n" % (len(data), data)
    return nil


def _render_get(result: RangeResponse, nil: bytes) -> bytes:
    return _value_or_nil(result, nil)


def _render_set_nx(result: TxnResponse, nil: bytes) -> bytes:
    return OK if result.succeeded else nil


def _render_succeeded(result: TxnResponse, nil: bytes) -> bytes:
    return ONE if result.succeeded else ZERO


def _render_cas(result: TxnResponse, nil: bytes) -> bytes:
    """[1 if swapped else 0, the value now (nil if the key does not exist)]."""
    (answer,) = result.responses
    if result.succeeded:
        assert isinstance(answer, TxnResponse)  # the put and its read-back, nested
        current = _value_or_nil(answer.responses[1], nil)  # type: ignore[arg-type]
    else:
        current = _value_or_nil(answer, nil)  # type: ignore[arg-type]
    return b"*2\r\n%b%b" % (ONE if result.succeeded else ZERO, current)


def _render_deleted(result: DeleteRangeResponse, nil: bytes) -> bytes:
    return integer(result.deleted)


def _render_deleted_many(results: list[Any], nil: bytes) -> bytes:
    return integer(sum(result.deleted for result in results))


def _render_exists(result: RangeResponse, nil: bytes) -> bytes:
    return integer(result.count)


def _render_exists_many(results: list[Any], nil: bytes) -> bytes:
    return integer(sum(result.count for result in results))


def _render_mget(results: list[Any], nil: bytes) -> bytes:
    return array([_value_or_nil(result, nil) for result in results])


def _render_ok_many(results: list[Any], nil: bytes) -> bytes:
    return OK


def _render_lock(result: LockResult, nil: bytes) -> bytes:
    """[acquired 1/0, owner, fencing_token, expires_in_ms]; nil fields for a free lock."""
    owner = nil if result.owner is None else bulk_text(result.owner)
    return b"*4\r\n%b%b%b%b" % (
        ONE if result.acquired else ZERO,
        owner,
        _int_or_nil(result.fencing_token, nil),
        _int_or_nil(result.expires_in_ms, nil),
    )


def _render_released(result: Released, nil: bytes) -> bytes:
    return ONE if result.released else ZERO


def _render_register(result: NameResult, nil: bytes) -> bytes:
    owner = nil if result.owner is None else bulk_text(result.owner)
    return b"*2\r\n%b%b" % (ONE if result.registered else ZERO, owner)


def _render_lookup(result: NameResult, nil: bytes) -> bytes:
    return nil if result.owner is None else bulk_text(result.owner)


def _render_decision(result: DecisionResult, nil: bytes) -> bytes:
    chosen = result.chosen
    if chosen is None:
        return nil
    if type(chosen) is str:
        return bulk_text(chosen)
    return wrongtype(chosen)


# ---------------------------------------------------------------------------------------------
# Argument helpers


def _ms_arg(text: str) -> int | None:
    """A non-negative decimal integer argument (ASCII digits only, as Redis parses them)."""
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


# ---------------------------------------------------------------------------------------------
# Key-value commands


def _bytes(arg: str) -> bytes:
    """The exact bytes a client sent as this argument (module docstring)."""
    return arg.encode("utf-8", "surrogateescape")


def _create(key: bytes, value: bytes) -> Txn:
    """Put `value` only if `key` does not exist (SET NX, SETNX)."""
    absent = Compare(key=key, target=CompareTarget.CREATE, create_revision=0)
    return Txn(compare=(absent,), success=(Put(key=key, value=value),))


def _swap(key: bytes, expected: bytes | None, value: bytes) -> Txn:
    """CAS / CASNX: put `value` if the key holds `expected` (None: does not exist); the answer
    holds the key's value after it, either way."""
    if expected is None:
        condition = Compare(key=key, target=CompareTarget.CREATE, create_revision=0)
    else:
        condition = Compare(key=key, target=CompareTarget.VALUE, value=expected)
    swapped = Txn(success=(Put(key=key, value=value), Range(key=key)))
    return Txn(compare=(condition,), success=(swapped,), failure=(Range(key=key),))


def cmd_get(conn: Connection, args: list[str]) -> None:
    conn.read(plain_range(_bytes(args[1])), _render_get)  # every GET: the cheaper constructor


def cmd_set(conn: Connection, args: list[str]) -> None:
    if len(args) == 3:
        # Every plain SET builds its put here: the cheaper constructor (encoding checks it).
        conn.write(plain_put(_bytes(args[1]), _bytes(args[2])), _render_ok)
        return
    set_with_options(conn, args)  # NX, EX, PX, EXAT, PXAT, KEEPTTL (resp_expire.py)


def cmd_setnx(conn: Connection, args: list[str]) -> None:
    conn.write(_create(_bytes(args[1]), _bytes(args[2])), _render_succeeded)


def cmd_del(conn: Connection, args: list[str]) -> None:
    if len(args) == 2:
        conn.write(DeleteRange(key=_bytes(args[1])), _render_deleted)
    else:
        ops = [DeleteRange(key=_bytes(key)) for key in args[1:]]
        conn.write_many(ops, _render_deleted_many)


def cmd_exists(conn: Connection, args: list[str]) -> None:
    if len(args) == 2:
        conn.read(Range(key=_bytes(args[1]), count_only=True), _render_exists)
    else:
        ops = [Range(key=_bytes(key), count_only=True) for key in args[1:]]
        conn.read_many(ops, _render_exists_many)


def cmd_mget(conn: Connection, args: list[str]) -> None:
    conn.read_many([Range(key=_bytes(key)) for key in args[1:]], _render_mget)


def cmd_mset(conn: Connection, args: list[str]) -> None:
    if len(args) % 2 != 1:
        conn.reply(wrong_arity(args[0]))
        return
    ops = [Put(key=_bytes(args[i]), value=_bytes(args[i + 1])) for i in range(1, len(args), 2)]
    conn.write_many(ops, _render_ok_many)


def cmd_cas(conn: Connection, args: list[str]) -> None:
    conn.write(_swap(_bytes(args[1]), _bytes(args[2]), _bytes(args[3])), _render_cas)


def cmd_casnx(conn: Connection, args: list[str]) -> None:
    conn.write(_swap(_bytes(args[1]), None, _bytes(args[2])), _render_cas)


# ---------------------------------------------------------------------------------------------
# Locks, names, decisions


def cmd_lock(conn: Connection, args: list[str]) -> None:
    ttl_ms = _ms_arg(args[3])
    if ttl_ms is None:
        conn.reply(ERR_NOT_INTEGER)
        return
    conn.write(LockAcquire(name=args[1], owner=args[2], ttl_ms=ttl_ms), _render_lock)


def cmd_refresh(conn: Connection, args: list[str]) -> None:
    ttl_ms = _ms_arg(args[3])
    if ttl_ms is None:
        conn.reply(ERR_NOT_INTEGER)
        return
    conn.write(LockRefresh(name=args[1], owner=args[2], ttl_ms=ttl_ms), _render_lock)


def cmd_unlock(conn: Connection, args: list[str]) -> None:
    conn.write(LockRelease(name=args[1], owner=args[2]), _render_released)


def cmd_lockstatus(conn: Connection, args: list[str]) -> None:
    conn.read(LockStatus(name=args[1]), _render_lock)


def cmd_register(conn: Connection, args: list[str]) -> None:
    conn.write(NameRegister(name=args[1], owner=args[2]), _render_register)


def cmd_lookup(conn: Connection, args: list[str]) -> None:
    conn.read(NameLookup(name=args[1]), _render_lookup)


def cmd_propose(conn: Connection, args: list[str]) -> None:
    conn.write(DecisionPropose(id=args[1], value=args[2]), _render_decision)


def cmd_query(conn: Connection, args: list[str]) -> None:
    conn.read(DecisionGet(id=args[1]), _render_decision)


# ---------------------------------------------------------------------------------------------
# Connection and server commands (answered locally, never through the log)


def cmd_ping(conn: Connection, args: list[str]) -> None:
    if len(args) > 2:
        conn.reply(wrong_arity(args[0]))
    elif conn.pubsub is not None and conn.pubsub.count and not conn.resp3:
        # A subscribed RESP2 connection answers PING as a message (Redis's rule).
        conn.reply(array([bulk(b"pong"), bulk_text(args[1] if len(args) == 2 else "")]))
    elif len(args) == 2:
        conn.reply(bulk_text(args[1]))
    else:
        conn.reply(PONG)


def cmd_echo(conn: Connection, args: list[str]) -> None:
    conn.reply(bulk_text(args[1]))


def cmd_quit(conn: Connection, args: list[str]) -> None:
    conn.quit()


def cmd_select(conn: Connection, args: list[str]) -> None:
    index = _ms_arg(args[1])
    if index == 0:
        conn.reply(OK)
    elif index is None:
        conn.reply(ERR_NOT_INTEGER)
    else:
        conn.reply(error("ERR DB index is out of range (paxosd has only database 0)"))


def _role(node: NodeService) -> tuple[str, Any]:
    """(role, leader id) from the node's status; ("unknown", None) if status fails."""
    try:
        status = node.status()
    except Exception:
        log.exception("status() failed while answering a RESP command")
        return "unknown", None
    return str(status.get("role", "unknown")), status.get("leader")


def cmd_hello(conn: Connection, args: list[str]) -> None:
    version = 3 if conn.resp3 else 2
    i = 1
    if len(args) > 1:
        asked = _ms_arg(args[1])
        if asked is None:
            conn.reply(error("ERR Protocol version is not an integer or out of range"))
            return
        if asked not in (2, 3):
            conn.reply(error("NOPROTO sorry, this protocol version is not supported"))
            return
        version = asked
        i = 2
    name: str | None = None
    while i < len(args):
        option = args[i].upper()
        if option == "AUTH" and i + 2 < len(args):
            # No authentication: like Redis's passwordless "default" user, any password is
            # accepted for "default" and every other user name is refused.
            if args[i + 1] != "default":
                conn.reply(error("WRONGPASS invalid username-password pair or user is disabled."))
                return
            i += 3
        elif option == "SETNAME" and i + 1 < len(args):
            name = args[i + 1]
            i += 2
        else:
            conn.reply(error(f"ERR Syntax error in HELLO option '{args[i]}'"))
            return
    if name is not None:
        if not _valid_client_name(name):
            conn.reply(_ERR_CLIENT_NAME)
            return
        conn.name = name or None
    conn.set_protocol(version)
    role, _ = _role(conn.node)
    pairs = [
        (bulk(b"server"), bulk(b"paxosd")),
        (bulk(b"version"), bulk_text(VERSION)),
        (bulk(b"proto"), integer(version)),
        (bulk(b"id"), integer(conn.conn_id)),
        (bulk(b"mode"), bulk(b"standalone")),
        (bulk(b"role"), bulk(b"master" if role == "leader" else b"replica")),
        (bulk(b"modules"), EMPTY_ARRAY),
    ]
    conn.reply(mapping(pairs, conn.resp3))


def cmd_auth(conn: Connection, args: list[str]) -> None:
    if len(args) == 2:
        conn.reply(
            error(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        )
    elif len(args) == 3 and args[1] == "default":
        conn.reply(OK)
    elif len(args) == 3:
        conn.reply(error("WRONGPASS invalid username-password pair or user is disabled."))
    else:
        conn.reply(ERR_SYNTAX)


def cmd_reset(conn: Connection, args: list[str]) -> None:
    if conn.pubsub is not None:
        conn.pubsub.close()
        conn.pubsub = None
    conn.set_protocol(2)
    conn.name = None
    conn.multi = None
    conn.watched = {}
    conn.reply(b"+RESET\r\n")


_ERR_CLIENT_NAME: Final = error(
    "ERR Client names cannot contain spaces, newlines or special characters."
)


def _valid_client_name(name: str) -> bool:
    return all("!" <= char <= "~" for char in name)


def cmd_client(conn: Connection, args: list[str]) -> None:
    sub = args[1].upper()
    n = len(args)
    if sub == "SETNAME" and n == 3:
        if not _valid_client_name(args[2]):
            conn.reply(_ERR_CLIENT_NAME)
            return
        conn.name = args[2] or None
        conn.reply(OK)
    elif sub == "GETNAME" and n == 2:
        conn.reply(bulk_text(conn.name) if conn.name else (NIL3 if conn.resp3 else NIL2))
    elif sub == "ID" and n == 2:
        conn.reply(integer(conn.conn_id))
    elif sub in ("INFO", "LIST") and (n == 2 or sub == "LIST"):
        conn.reply(bulk_text(conn.describe() + "\n"))
    elif sub == "SETINFO" and n == 4:
        attribute = args[2].upper()
        if attribute == "LIB-NAME":
            conn.lib_name = args[3]
        elif attribute == "LIB-VER":
            conn.lib_ver = args[3]
        else:
            conn.reply(error(f"ERR Unrecognized option '{args[2]}'"))
            return
        conn.reply(OK)
    elif sub in ("NO-EVICT", "NO-TOUCH") and n == 3:
        conn.reply(OK)  # paxosd never evicts; harmless to accept
    elif sub in ("SETNAME", "GETNAME", "ID", "INFO", "SETINFO", "NO-EVICT", "NO-TOUCH"):
        conn.reply(error(f"ERR wrong number of arguments for 'client|{sub.lower()}' command"))
    elif sub in ("KILL", "PAUSE", "UNPAUSE", "REPLY", "TRACKING", "CACHING", "UNBLOCK"):
        conn.reply(error(f"ERR CLIENT {sub} is not supported by paxosd"))
    else:
        conn.reply(error(f"ERR unknown subcommand '{args[1][:128]}'. Try CLIENT HELP."))


def cmd_command(conn: Connection, args: list[str]) -> None:
    sub = args[1].upper() if len(args) > 1 else ""
    if sub == "COUNT":
        conn.reply(integer(len(COMMANDS)))
    elif sub == "LIST":
        conn.reply(array([bulk_text(name.lower()) for name in sorted(COMMANDS)]))
    elif sub == "INFO":
        # Unknown per-command metadata: nil per asked name, as Redis answers for unknown ones.
        nil = NIL3 if conn.resp3 else NIL2
        conn.reply(array([nil] * (len(args) - 2)))
    elif sub == "DOCS":
        # redis-cli asks at startup for its hints; an empty answer means "no hints" (an error
        # would make it fall back to Redis's own command docs, which would mislead).
        conn.reply(b"%0\r\n" if conn.resp3 else EMPTY_ARRAY)
    elif sub == "":
        conn.reply(EMPTY_ARRAY)
    else:
        conn.reply(error(f"ERR unknown subcommand '{args[1][:128]}'. Try COMMAND HELP."))


# What CONFIG GET reports. redis-benchmark asks for save and appendonly at startup; paxosd
# syncs every batch before answering, which is Redis's appendonly with fsync always.
_CONFIG: Final[dict[str, str]] = {
    "save": "",
    "appendonly": "yes",
    "appendfsync": "always",
    "databases": "1",
    # Keyspace notifications are always on (docs/resp.md): keyspace and keyevent channels,
    # for generic (del) and string (set) commands.
    "notify-keyspace-events": "KEg$",
}


def cmd_config(conn: Connection, args: list[str]) -> None:
    sub = args[1].upper()
    if sub == "GET":
        if len(args) < 3:
            conn.reply(wrong_arity("config|get"))
            return
        patterns = [pattern.lower() for pattern in args[2:]]
        pairs = [
            (bulk_text(key), bulk_text(value))
            for key, value in _CONFIG.items()
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)
        ]
        conn.reply(mapping(pairs, conn.resp3))
    elif sub in ("SET", "RESETSTAT", "REWRITE"):
        conn.reply(error(f"ERR CONFIG {sub} is not supported by paxosd"))
    else:
        conn.reply(error(f"ERR unknown subcommand '{args[1][:128]}'. Try CONFIG HELP."))


def cmd_info(conn: Connection, args: list[str]) -> None:
    node = conn.node
    role, leader = _role(node)
    leader_resp = "-"
    if leader is not None:
        try:
            leader_resp = next(
                (str(m.get("resp")) for m in node.members() if m.get("id") == leader), "-"
            )
        except Exception:
            log.exception("members() failed while answering INFO")
    lines = [
        "# Server",
        f"paxosd_version:{VERSION}",
        f"redis_version:{redis_compat_version}",
        "redis_mode:standalone",
        f"process_id:{os.getpid()}",
        f"tcp_port:{conn.local_port()}",
        f"node_id:{node.node_id}",
        f"cluster_id:{node.cluster_id}",
        f"role:{role}",
        f"leader:{'none' if leader is None else leader}",
        f"leader_resp:{leader_resp}",
    ]
    conn.reply(bulk_text("\r\n".join(lines) + "\r\n"))


def cmd_dbsize(conn: Connection, args: list[str]) -> None:
    conn.reply(error("ERR DBSIZE is not supported by paxosd"))


# ---------------------------------------------------------------------------------------------
# The table. Arity as in Redis: N means exactly N words (command name included), -N at least N.

COMMANDS: Final[dict[str, tuple[Handler, int]]] = {
    "GET": (cmd_get, 2),
    "SET": (cmd_set, -3),
    "SETNX": (cmd_setnx, 3),
    "DEL": (cmd_del, -2),
    "EXISTS": (cmd_exists, -2),
    "MGET": (cmd_mget, -2),
    "MSET": (cmd_mset, -3),
    "CAS": (cmd_cas, 4),
    "CASNX": (cmd_casnx, 3),
    "LOCK": (cmd_lock, 4),
    "REFRESH": (cmd_refresh, 4),
    "UNLOCK": (cmd_unlock, 3),
    "LOCKSTATUS": (cmd_lockstatus, 2),
    "REGISTER": (cmd_register, 3),
    "LOOKUP": (cmd_lookup, 2),
    "PROPOSE": (cmd_propose, 3),
    "QUERY": (cmd_query, 2),
    "PING": (cmd_ping, -1),
    "ECHO": (cmd_echo, 2),
    "QUIT": (cmd_quit, -1),
    "SELECT": (cmd_select, 2),
    "HELLO": (cmd_hello, -1),
    "AUTH": (cmd_auth, -2),
    "RESET": (cmd_reset, 1),
    "CLIENT": (cmd_client, -2),
    "COMMAND": (cmd_command, -1),
    "CONFIG": (cmd_config, -2),
    "INFO": (cmd_info, -1),
    "DBSIZE": (cmd_dbsize, 1),
    **KV_COMMANDS,
    **PUBSUB_COMMANDS,
    **EXPIRE_COMMANDS,
}

# Dispatch table keyed by the spellings clients actually send (upper and lower case), so the
# common case costs one dict lookup and no str.upper().
DISPATCH: Final[dict[str, tuple[Handler, int]]] = {
    **COMMANDS,
    **{name.lower(): entry for name, entry in COMMANDS.items()},
}
