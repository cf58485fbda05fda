"""RESP over many keys: SCAN and KEYS, MULTI/EXEC/DISCARD with WATCH/UNWATCH as one
transaction of the store, and the store's revisions (REVISION, GETMETA).

Theory of operation. These commands are answered by the same requests as the etcd API's
(service/kv/types.py): a SCAN page is a Range cut at COUNT keys, KEYS a Range with a bound,
and a MULTI block is ONE transaction, applied at one revision or not at all:

* MULTI starts queueing: each command after it is checked (known, queueable, arity) and
  answered `+QUEUED`, or refused with an error that also dooms the block (EXEC then answers
  `-EXECABORT`), as Redis does. DISCARD drops the block.
* EXEC sends the block as one Txn: its requests, in order, as the success list, each seeing
  the writes before it; the reply is the array of each command's reply. A key may be written
  once per block (two SETs of one key, or a SET and a DEL of it, are refused whole with
  `-EXECABORT`), and a block holds at most `txn_ops_max` requests (a MGET or MSET counts one
  request per key).
* WATCH reads the mod revision of each key (0 if absent); EXEC then adds, per watched key,
  the compare "mod revision still equal", so a key changed by anyone (this connection
  included) between WATCH and EXEC makes EXEC answer a null array and apply nothing. A key
  created and deleted again between the two looks unchanged: the store keeps no version of a
  key that does not exist. EXEC and DISCARD end the watches, as UNWATCH does.
* A connection closed inside MULTI applies nothing: the block only ever lived in it.

Keys and values are those of RESP's GET/SET (resp_commands.py): any bytes, stored and read
back as they are.

SCAN's cursor is the next key to read, written as a decimal integer (Redis clients parse
cursors as integers): 0 to start and when done. It holds no state on the server, so any
connection may continue a scan. Each page is read at the revision current then: a key that
exists throughout the scan is returned exactly once; one created or deleted meanwhile may or
may not be. MATCH takes a literal prefix with one trailing `*` (`MATCH user:*`), `*`, or a
literal key; other patterns are refused by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from paxosd.runtime.service_api import NodeService
from paxosd.service.commands import validate
from paxosd.service.errors import BadCommand
from paxosd.service.kv.checks import txn_ops_max_default
from paxosd.service.kv.errors import InvalidRequest, KvError
from paxosd.service.kv.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    KeyValue,
    Put,
    Range,
    RangeResponse,
    RequestOp,
    ResponseOp,
    Txn,
    TxnResponse,
    prefix_end,
)

__all__ = ["KV_COMMANDS", "MULTI_CONTROL", "MultiState", "queue_command", "value_reply"]

# KEYS answers at most this many keys (a larger answer is refused: use SCAN).
keys_max: Final = 10_000
# SCAN's COUNT: its default and its largest value.
scan_count_default: Final = 10
scan_count_max: Final = 10_000
# Commands one MULTI block may queue (each becomes at least one request of the transaction).
multi_commands_max: Final = txn_ops_max_default

OK: Final = b"+OK\r\n"
QUEUED: Final = b"+QUEUED\r\n"
PONG: Final = b"+PONG\r\n"
NULL_ARRAY2: Final = b"*-1\r\n"
NULL3: Final = b"_\r\n"
EXECABORT_PREVIOUS: Final = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


def _error(text: str) -> bytes:
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace") + b"\r\n"


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _integer(value: int) -> bytes:
    return b":%d\r\n" % value


def _array(items: Sequence[bytes]) -> bytes:
    return b"*%d\r\n%b" % (len(items), b"".join(items))


# ---------------------------------------------------------------------------------------------
# What these commands need of the connection (resp.RespProtocol)


@dataclass(slots=True)
class MultiState:
    """A MULTI block being queued: the commands' requests and renderers, and whether one of
    them was refused (then EXEC answers EXECABORT)."""

    queued: list[Queued]
    failed: bool = False


class KvConnection(Protocol):
    node: NodeService
    resp3: bool
    multi: MultiState | None
    watched: dict[bytes, int]

    def reply(self, data: bytes) -> None: ...
    def read(self, op: Any, render: Callable[[Any, bytes], bytes]) -> None: ...
    def read_many(self, ops: list[Any], render: Callable[[list[Any], bytes], bytes]) -> None: ...
    def when_done(
        self,
        build: Callable[[], bytes | tuple[Any, bool]],
        render: Callable[[Any, bytes], bytes],
    ) -> None: ...


# ---------------------------------------------------------------------------------------------
# Values as RESP shows them


def value_reply(kv: KeyValue) -> bytes:
    """A stored value as GET answers it: its bytes, as they are."""
    return _bulk(kv.value)


def _first(answer: RangeResponse) -> KeyValue | None:
    return answer.kvs[0] if answer.kvs else None


def _key_error(answer: Any) -> bytes | None:
    """The error reply for a store refusal, or None for an answer."""
    if isinstance(answer, KvError):
        return _error(f"ERR {answer.code}: {answer.detail}")
    return None


# ---------------------------------------------------------------------------------------------
# SCAN and KEYS


def _pattern(pattern: str) -> tuple[bytes, bytes] | None:
    """(key, range_end) of a MATCH pattern paxosd serves: `prefix*`, `*`, or a literal key
    (backslash escapes a glob character); None for any other pattern."""
    literal: list[str] = []
    escaped = False
    for i, char in enumerate(pattern):
        if escaped:
            literal.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*" and i == len(pattern) - 1:
            prefix = "".join(literal).encode("utf-8", "surrogateescape")
            return (prefix, prefix_end(prefix)) if prefix else (b"\0", b"\0")
        elif char in "*?[]":
            return None
        else:
            literal.append(char)
    if escaped:
        return None
    key = "".join(literal).encode("utf-8", "surrogateescape")
    return (key, b"") if key else None


_ERR_PATTERN: Final = _error(
    "ERR paxosd matches a literal prefix with one trailing * (MATCH user:*), * or a literal "
    "key; other glob patterns are not supported"
)


def _cursor(text: str) -> bytes | None:
    """The next key a SCAN cursor names (b"" for 0: the start); None if it is not one."""
    if not (text.isascii() and text.isdigit()) or len(text) > 2600:
        return None
    number = int(text)
    if number == 0:
        return b""
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return raw[1:] if raw[:1] == b"\x01" else None


def _cursor_of(key: bytes) -> bytes:
    """The cursor that continues a scan at `key`: its bytes behind a 0x01 marker (which keeps
    leading zero bytes), as a decimal integer."""
    return str(int.from_bytes(b"\x01" + key, "big")).encode()


def cmd_scan(conn: KvConnection, args: list[str]) -> None:
    start = _cursor(args[1])
    if start is None:
        conn.reply(_error("ERR invalid cursor"))
        return
    count = scan_count_default
    span: tuple[bytes, bytes] = (b"\0", b"\0")
    i = 2
    while i < len(args):
        option = args[i].upper()
        if option == "COUNT" and i + 1 < len(args):
            text = args[i + 1]
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= scan_count_max:
                conn.reply(_error(f"ERR COUNT must be an integer in [1, {scan_count_max}]"))
                return
            count = int(text)
        elif option == "MATCH" and i + 1 < len(args):
            found = _pattern(args[i + 1])
            if found is None:
                conn.reply(_ERR_PATTERN)
                return
            span = found
        elif option == "TYPE" and i + 1 < len(args):
            if args[i + 1].lower() != "string":
                conn.reply(_array([b"$1\r\n0\r\n", b"*0\r\n"]))  # only strings here
                return
        else:
            conn.reply(b"-ERR syntax error\r\n")
            return
        i += 2
    key, range_end = span
    if not range_end:  # a literal key: one page, the key or nothing
        if start:
            conn.reply(_array([b"$1\r\n0\r\n", b"*0\r\n"]))
            return
        conn.read(Range(key=key, keys_only=True), _render_scan_page)
        return
    begin = max(key, start) if start else key
    if range_end != b"\0" and begin >= range_end:
        conn.reply(_array([b"$1\r\n0\r\n", b"*0\r\n"]))
        return
    conn.read(Range(key=begin, range_end=range_end, limit=count, keys_only=True), _render_scan_page)


def _render_scan_page(answer: Any, nil: bytes) -> bytes:
    refused = _key_error(answer)
    if refused is not None:
        return refused
    assert isinstance(answer, RangeResponse)
    cursor = _cursor_of(answer.kvs[-1].key + b"\0") if answer.more else b"0"
    return _array([_bulk(cursor), _array([_bulk(kv.key) for kv in answer.kvs])])


def cmd_keys(conn: KvConnection, args: list[str]) -> None:
    found = _pattern(args[1])
    if found is None:
        conn.reply(_ERR_PATTERN)
        return
    key, range_end = found
    conn.read(Range(key=key, range_end=range_end, limit=keys_max, keys_only=True), _render_keys)


def _render_keys(answer: Any, nil: bytes) -> bytes:
    refused = _key_error(answer)
    if refused is not None:
        return refused
    assert isinstance(answer, RangeResponse)
    if answer.more:
        return _error(
            f"ERR KEYS would answer {answer.count} keys, more than keys_max = {keys_max}; "
            "use SCAN with MATCH and COUNT"
        )
    return _array([_bulk(kv.key) for kv in answer.kvs])


# ---------------------------------------------------------------------------------------------
# Revisions


def cmd_revision(conn: KvConnection, args: list[str]) -> None:
    """The store's revision now (linearizable)."""
    conn.read(Range(key=b"\0", count_only=True), _render_revision)


def _render_revision(answer: Any, nil: bytes) -> bytes:
    refused = _key_error(answer)
    if refused is not None:
        return refused
    return _integer(answer.revision)


def cmd_getmeta(conn: KvConnection, args: list[str]) -> None:
    """[value, create_revision, mod_revision, version, lease] of a key, or nil."""
    revision = 0
    if len(args) == 3:
        text = args[2]
        if not (text.isascii() and text.isdigit()):
            conn.reply(b"-ERR value is not an integer or out of range\r\n")
            return
        revision = int(text)
    conn.read(Range(key=_text(args[1]), revision=revision), _render_meta)


def _meta(answer: RangeResponse, nil: bytes) -> bytes:
    kv = _first(answer)
    if kv is None:
        return nil
    return _array(
        [
            value_reply(kv),
            _integer(kv.create_revision),
            _integer(kv.mod_revision),
            _integer(kv.version),
            _integer(kv.lease),
        ]
    )


def _render_meta(answer: Any, nil: bytes) -> bytes:
    refused = _key_error(answer)
    if refused is not None:
        return refused
    return _meta(answer, nil)


# ---------------------------------------------------------------------------------------------
# MULTI / EXEC / DISCARD / WATCH / UNWATCH


# How one queued command answers, from its requests' answers (and the transaction's revision).
QueuedRender = Callable[[list[ResponseOp], int, bytes], bytes]


@dataclass(frozen=True, slots=True)
class Queued:
    ops: tuple[RequestOp, ...]
    render: QueuedRender


def _text(arg: str) -> bytes:
    """The exact bytes a client sent as this argument (resp_commands._bytes)."""
    return arg.encode("utf-8", "surrogateescape")


def _create_if_absent(key: bytes, value: bytes) -> Txn:
    absent = Compare(key=key, target=CompareTarget.CREATE, result=CompareResult.EQUAL)
    return Txn(compare=(absent,), success=(Put(key=key, value=value),))


def _q_get(args: list[str]) -> Queued:
    def render(answers: list[ResponseOp], revision: int, nil: bytes) -> bytes:
        answer = answers[0]
        assert isinstance(answer, RangeResponse)
        kv = _first(answer)
        return nil if kv is None else value_reply(kv)

    return Queued((Range(key=_text(args[1])),), render)


def _q_set(args: list[str]) -> Queued | bytes:
    key, value = _text(args[1]), _text(args[2])
    options = [option.upper() for option in args[3:]]
    if not options:
        return Queued((Put(key=key, value=value),), lambda answers, revision, nil: OK)
    if options != ["NX"]:
        return _error("ERR paxosd's MULTI supports SET key value [NX] only")

    def render(answers: list[ResponseOp], revision: int, nil: bytes) -> bytes:
        created = answers[0]
        return OK if isinstance(created, TxnResponse) and created.succeeded else nil

    return Queued((_create_if_absent(key, value),), render)


def _q_setnx(args: list[str]) -> Queued:
    def render(answers: list[ResponseOp], revision: int, nil: bytes) -> bytes:
        created = answers[0]
        return _integer(int(isinstance(created, TxnResponse) and created.succeeded))

    return Queued((_create_if_absent(_text(args[1]), _text(args[2])),), render)


def _q_del(args: list[str]) -> Queued:
    def render(answers: list[ResponseOp], revision: int, nil: bytes) -> bytes:
        return _integer(sum(a.deleted for a in answers if isinstance(a, DeleteRangeResponse)))

    return Queued(tuple(DeleteRange(key=_text(key)) for key in args[1:]), render)


def _q_exists(args: list[str]) -> Queued:
    def render(answers: list[ResponseOp], revision: int, nil: bytes) -> bytes:
        return _integer(sum(a.count for a in answers if isinstance(a, RangeResponse)))

    ops = tuple(Range(key=_text(key), count_only=True) for key in args[1:])
    return Queued(ops, render)


def _q_mget(args: list[str]) -> Queued:
    def render(answers: list[ResponseOp], revision: int, nil: bytes) -> bytes:
        items = []
        for answer in answers:
            assert isinstance(answer, RangeResponse)
            kv = _first(answer)
            items.append(nil if kv is None else value_reply(kv))
        return _array(items)

    return Queued(tuple(Range(key=_text(key)) for key in args[1:]), render)


def _q_mset(args: list[str]) -> Queued | bytes:
    if len(args) % 2 != 1:
        return _error("ERR wrong number of arguments for 'mset' command")
    ops = tuple(Put(key=_text(args[i]), value=_text(args[i + 1])) for i in range(1, len(args), 2))
    return Queued(ops, lambda answers, revision, nil: OK)


def _q_getmeta(args: list[str]) -> Queued | bytes:
    if len(args) != 2:
        return _error("ERR paxosd's MULTI supports GETMETA key (without a revision)")

    def render(answers: list[ResponseOp], revision: int, nil: bytes) -> bytes:
        answer = answers[0]
        assert isinstance(answer, RangeResponse)
        return _meta(answer, nil)

    return Queued((Range(key=_text(args[1])),), render)


def _q_revision(args: list[str]) -> Queued:
    return Queued((), lambda answers, revision, nil: _integer(revision))


def _q_ping(args: list[str]) -> Queued:
    return Queued((), lambda answers, revision, nil: PONG)


def _q_unwatch(args: list[str]) -> Queued:
    return Queued((), lambda answers, revision, nil: OK)


# Commands a MULTI block may hold: (builder, Redis arity).
QUEUEABLE: Final[dict[str, tuple[Callable[[list[str]], Queued | bytes], int]]] = {
    "GET": (_q_get, 2),
    "SET": (_q_set, -3),
    "SETNX": (_q_setnx, 3),
    "DEL": (_q_del, -2),
    "EXISTS": (_q_exists, -2),
    "MGET": (_q_mget, -2),
    "MSET": (_q_mset, -3),
    "GETMETA": (_q_getmeta, -2),
    "REVISION": (_q_revision, 1),
    "PING": (_q_ping, 1),
    "UNWATCH": (_q_unwatch, 1),
}
# Commands that act on the block itself rather than being queued.
MULTI_CONTROL: Final = frozenset({"EXEC", "DISCARD", "MULTI", "WATCH", "QUIT", "RESET"})


def queue_command(conn: KvConnection, args: list[str], known: bool) -> None:
    """Queue a command inside MULTI (`known`: the command exists outside MULTI)."""
    multi = conn.multi
    assert multi is not None
    name = args[0].upper()
    entry = QUEUEABLE.get(name)
    if entry is None:
        multi.failed = True
        if not known:
            shown = " ".join(f"'{arg[:128]}'" for arg in args[1:6])
            conn.reply(
                _error(f"ERR unknown command '{args[0][:128]}', with args beginning with: {shown}")
            )
        else:
            names = " ".join(sorted(QUEUEABLE))
            conn.reply(
                _error(f"ERR {name} cannot be queued in MULTI on paxosd (queueable: {names})")
            )
        return
    builder, arity = entry
    n = len(args)
    if n != arity and (arity > 0 or n < -arity):
        multi.failed = True
        conn.reply(_error(f"ERR wrong number of arguments for '{args[0].lower()}' command"))
        return
    if len(multi.queued) >= multi_commands_max:
        multi.failed = True
        conn.reply(_error(f"ERR a MULTI block holds at most {multi_commands_max} commands"))
        return
    queued = builder(args)
    if isinstance(queued, bytes):
        multi.failed = True
        conn.reply(queued)
        return
    multi.queued.append(queued)
    conn.reply(QUEUED)


def cmd_multi(conn: KvConnection, args: list[str]) -> None:
    if conn.multi is not None:
        conn.reply(_error("ERR MULTI calls can not be nested"))
        return
    conn.multi = MultiState([])
    conn.reply(OK)


def cmd_discard(conn: KvConnection, args: list[str]) -> None:
    if conn.multi is None:
        conn.reply(_error("ERR DISCARD without MULTI"))
        return
    conn.multi = None
    conn.watched = {}
    conn.reply(OK)


def cmd_watch(conn: KvConnection, args: list[str]) -> None:
    if conn.multi is not None:
        conn.reply(_error("ERR WATCH inside MULTI is not allowed"))
        return
    keys = [_text(key) for key in args[1:]]
    ops = [Range(key=key) for key in keys]
    watched = conn.watched

    def render(answers: list[Any], nil: bytes) -> bytes:
        for key, answer in zip(keys, answers, strict=True):
            refused = _key_error(answer)
            if refused is not None:
                return refused
            kv = _first(answer)
            # The first WATCH of a key counts: a later one must not hide a change between.
            watched.setdefault(key, kv.mod_revision if kv is not None else 0)
        return OK

    conn.read_many(ops, render)


def cmd_unwatch(conn: KvConnection, args: list[str]) -> None:
    conn.watched = {}
    conn.reply(OK)


def cmd_exec(conn: KvConnection, args: list[str]) -> None:
    multi = conn.multi
    if multi is None:
        conn.reply(_error("ERR EXEC without MULTI"))
        return
    conn.multi = None
    if multi.failed:
        conn.watched = {}
        conn.reply(EXECABORT_PREVIOUS)
        return
    null = NULL3 if conn.resp3 else NULL_ARRAY2

    def build() -> bytes | tuple[Any, bool]:
        # Runs once every reply before EXEC is done, so the WATCHes' answers are in.
        watched, conn.watched = conn.watched, {}
        compares = tuple(
            Compare(key=key, target=CompareTarget.MOD, result=CompareResult.EQUAL,
                    mod_revision=revision)
            for key, revision in watched.items()
        )  # fmt: skip
        ops = tuple(op for queued in multi.queued for op in queued.ops)
        txn = Txn(compare=compares, success=ops)
        try:
            validate(txn, conn.node.kv_limits)
        except InvalidRequest as exc:
            return _error(f"EXECABORT {exc.error.code}: {exc.error.detail}")
        except BadCommand as exc:
            return _error(f"EXECABORT {exc}")
        return txn, not txn.is_read_only()

    def render(answer: Any, nil: bytes) -> bytes:
        refused = _key_error(answer)
        if refused is not None:
            return _error(f"EXECABORT {answer.code}: {answer.detail}")
        assert isinstance(answer, TxnResponse)
        if not answer.succeeded:
            return null
        replies = []
        i = 0
        for queued in multi.queued:
            count = len(queued.ops)
            replies.append(queued.render(list(answer.responses[i : i + count]), answer.revision,
                                         nil))  # fmt: skip
            i += count
        return _array(replies)

    conn.when_done(build, render)


KV_COMMANDS: Final[dict[str, tuple[Callable[[Any, list[str]], None], int]]] = {
    "SCAN": (cmd_scan, -2),
    "KEYS": (cmd_keys, 2),
    "REVISION": (cmd_revision, 1),
    "GETMETA": (cmd_getmeta, -2),
    "MULTI": (cmd_multi, 1),
    "EXEC": (cmd_exec, 1),
    "DISCARD": (cmd_discard, 1),
    "WATCH": (cmd_watch, -2),
    "UNWATCH": (cmd_unwatch, 1),
}
