"""RESP, the Redis serialization protocol, as a second client front end beside HTTP.

Every node listens for RESP (RESP2, and RESP3 after `HELLO 3`) so redis-cli, redis-benchmark
and Redis client libraries can use paxosd's KV store, locks, names and decisions. Framing is
`resp_wire.RespScanner` (bytes in, commands out, no I/O); command semantics live in
`resp_commands`; this module owns the connection: the order of replies, flow control, limits.

Theory of operation, per connection (`RespProtocol`, one asyncio.Protocol, no Task):

1. **Scan.** `data_received` feeds the bytes to the connection's scanner, which checks the
   framing and the size limits and hands out complete commands in arrival order.
2. **Submit.** Each command goes to its handler, which builds the state-machine operation
   and calls the node's `submit(op, client_id=..., seq=...)`: a Future, not a coroutine (the
   node validates the op; multi-key commands are validated here first, all keys or none).
   Writes carry this connection's client id (uuid4 hex) and the next sequence number, so the
   node applies each exactly once however often it retries internally.
3. **Reply in order.** A per-connection FIFO of `_Entry` values holds, in command order, the
   replies owed: known bytes, or the operations whose answers make them. Only the HEAD's
   future gets a done-callback; when it fires, every completed entry at the front is rendered
   and the lot goes out in ONE `transport.write`. When the FIFO is empty and a future is
   already done (a node that answers at once), the reply skips the FIFO. Replies are
   collected for a whole `data_received` and written once, so a pipeline of N commands costs
   one write, not N.
4. **Program order.** Reads and writes in flight together are concurrent for the node (a
   read-index read does not wait for an uncommitted write), but a connection's commands must
   take effect in the order sent, as in Redis. So runs of reads, or of writes, are submitted
   together, and an operation of the other kind waits in the FIFO (a deferred entry) until it
   reaches the head, that is until everything before it has completed.
5. **Backpressure.** Reading stops (`pause_reading`) while the FIFO holds
   `pending_replies_max` entries, while the transport's write buffer is over its high-water
   mark (a client that sends but does not read), or while the connection is closing; parsed
   commands wait in the scanner and run when the pressure is gone. The FIFO must drain to
   `pending_replies_resume` before reading resumes, so the connection does not flap.
6. **Errors.** Framing errors (`-ERR Protocol error: ...`) are answered after the replies of
   the commands before them, then the connection closes; nothing a client sends can raise out
   of the protocol. Node errors become `-NOTLEADER`, `-UNKNOWN` (a write's outcome is unknown),
   `-TRYAGAIN` (a read got no answer), `-BUSY`; see `resp_commands.exception_reply`.
7. **Limits on time and connections** (`limits.RespLimits`, `limits.Admission`). At
   `connections_max` open connections, or `connections_per_address_max` from the new one's
   source address, a new one is answered `-ERR max number of clients reached` and closed
   (the answer delivered, not reset away: see `_reject`); the open ones are served as before.
   A new connection that sends nothing for `first_byte_timeout_ms` is closed, as is one with
   no command in progress and no reply owed for `idle_timeout_ms`; a command that is still
   incomplete
   `command_timeout_ms` after it began (a client trickling bytes) is answered
   `-ERR Protocol error: ...` and the connection closed. One timer per connection, re-armed
   lazily, keeps both.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, cast

from paxosd.runtime.service_api import NodeService
from paxosd.service.commands import validate
from paxosd.service.errors import BadCommand
from paxosd.service.results import Error as ResultError

from .limits import Admission, RespLimits, Verdict, rejected_linger_s, source_address
from .resp_commands import (
    DISPATCH,
    ERR_MAX_CLIENTS,
    NIL2,
    NIL3,
    OK,
    Render,
    RenderMany,
    error,
    exception_reply,
    not_while_subscribed,
    result_error_reply,
    unknown_command,
    wrong_arity,
)
from .resp_kv import MULTI_CONTROL, MultiState, queue_command
from .resp_pubsub import PubSub, allowed_while_subscribed
from .resp_wire import BEGAN, VIOLATED, RespProtocolError, RespScanner

__all__ = ["RespLimits", "RespProtocol", "close_resp_clients", "serve_resp"]

log = logging.getLogger("paxosd.api.resp")

# Replies gathered while running a pipeline are written once this many bytes accumulate, so
# the transport's write-buffer limit (and thus pause_writing) sees them before the whole
# pipeline has been rendered in memory.
out_flush_bytes: Final = 256 * 1024


@dataclass(slots=True)
class _Shared:
    """What the connections of one server share."""

    node: NodeService
    limits: RespLimits
    connections: set[RespProtocol] = field(default_factory=set)
    admission: Admission = field(init=False)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        limits = self.limits
        self.admission = Admission(limits.connections_max, limits.connections_per_address_max)


# Servers made by serve_resp -> their shared state, for close_resp_clients. Keyed by the server
# object, which is an asyncio.base_events.Server, or a uvloop.loop.Server under uvloop.
_SERVERS: weakref.WeakKeyDictionary[asyncio.AbstractServer, _Shared] = weakref.WeakKeyDictionary()


async def serve_resp(
    node: NodeService, host: str, port: int, *, limits: RespLimits | None = None
) -> asyncio.base_events.Server:
    """Listen for RESP clients of `node` on host:port (port 0: any free port).

    The caller owns the server: `server.close()` stops accepting, `close_resp_clients(server)`
    also closes the open connections (asyncio 3.11's Server.close leaves them open).
    """
    shared = _Shared(node, limits or RespLimits())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: RespProtocol(node, shared=shared), host, port)
    _SERVERS[server] = shared
    return server


def close_resp_clients(server: asyncio.AbstractServer) -> int:
    """Close every open connection of a server made by `serve_resp`; returns how many."""
    shared = _SERVERS.get(server)
    if shared is None:
        return 0
    connections = list(shared.connections)
    for connection in connections:
        connection.abort()
    return len(connections)


class _Entry:
    """One reply the connection owes, in command order.

    `reply` is its bytes once known (at once for local answers such as PING or a syntax
    error). Otherwise it waits for `waitable`: the future of one operation, or, when `many`,
    the list of futures of a multi-key command, rendered together by `render`. A `deferred`
    entry has not reached the node yet (`op` is its operation, or list of operations): it is
    submitted when everything before it has completed (see "Program order").
    """

    __slots__ = ("deferred", "lazy", "many", "op", "render", "reply", "waitable", "write")

    def __init__(
        self,
        waitable: Any,
        render: Any,
        write: bool,
        many: bool = False,
        reply: bytes | None = None,
    ) -> None:
        self.waitable = waitable
        self.render = render
        self.write = write
        self.many = many
        self.reply = reply
        self.deferred = False
        self.lazy = False  # `op` is a function that builds the operation (when_done)
        self.op: Any = None

    @classmethod
    def known(cls, reply: bytes) -> _Entry:
        return cls(None, None, False, False, reply)

    @classmethod
    def later(cls, op: Any, render: Any, write: bool, many: bool) -> _Entry:
        entry = cls(None, render, write, many)
        entry.deferred = True
        entry.op = op
        return entry

    def unfinished(self) -> asyncio.Future[Any] | None:
        """A future this entry still waits for, or None once it can be rendered."""
        if self.many:
            return next((f for f in self.waitable if not f.done()), None)
        return None if self.waitable.done() else cast("asyncio.Future[Any]", self.waitable)


class RespProtocol(asyncio.Protocol):
    """One RESP client connection. See the module docstring for how it works."""

    __slots__ = (
        "_active_at",
        "_address",
        "_backlog",
        "_client_id",
        "_closing",
        "_deferred",
        "_eof",
        "_heard",
        "_limits",
        "_lost",
        "_nil",
        "_node_submit",
        "_out",
        "_out_bytes",
        "_partial_since",
        "_phase_writes",
        "_queue",
        "_reading_paused",
        "_rejected",
        "_scanner",
        "_seq",
        "_shared",
        "_stop",
        "_time",
        "_timer",
        "_timer_at",
        "_transport",
        "_waiting",
        "_writing_paused",
        "conn_id",
        "lib_name",
        "lib_ver",
        "multi",
        "name",
        "node",
        "pubsub",
        "resp3",
        "watched",
    )

    def __init__(
        self,
        node: NodeService,
        limits: RespLimits | None = None,
        *,
        shared: _Shared | None = None,
    ) -> None:
        if shared is None:
            shared = _Shared(node, limits or RespLimits())
        self._shared = shared
        self._limits = shared.limits
        self.node = node
        # The one call into the node, bound once: it runs for every command.
        self._node_submit = node.submit
        self.conn_id = next(shared.ids)
        self.name: str | None = None
        self.lib_name = ""
        self.lib_ver = ""
        self.resp3 = False
        self._nil = NIL2
        self.multi: MultiState | None = None  # a MULTI block being queued (resp_kv)
        self.watched: dict[bytes, int] = {}  # WATCHed keys -> their mod revision then
        self.pubsub: PubSub | None = None  # SUBSCRIBE's subscriptions (resp_pubsub)
        self._client_id = uuid.uuid4().hex
        self._seq = 0
        self._transport: asyncio.Transport | None = None
        self._scanner = RespScanner(self._limits)
        self._queue: deque[_Entry] = deque()  # replies owed, in command order
        self._out: list[bytes] = []  # replies ready to go out in the next write
        self._out_bytes = 0
        self._waiting: asyncio.Future[Any] | None = None  # the head future we have a callback on
        self._phase_writes = False  # what the operations in flight are: writes or reads
        self._deferred = 0  # deferred entries in the FIFO not submitted yet
        self._backlog = False  # the scanner may hold commands that have not run yet
        self._stop = False  # commands must not run now (backpressure or closing)
        self._reading_paused = False
        self._writing_paused = False
        self._closing = False  # QUIT or a protocol error: answer what came before, then close
        self._eof = False  # the client half-closed: answer what it sent, then close
        self._lost = False
        # Judged when the connection is made (by its source address): refused, or admitted
        # and counted until connection_lost.
        self._rejected = False
        self._address = "?"
        self._heard = False  # any byte has arrived (the first-byte deadline)
        # Deadlines (see "Limits on time"): loop time of the last bytes heard, and
        # since when the scanner holds an incomplete command (None: it holds none).
        self._time = time_of_loop
        self._active_at = 0.0
        self._partial_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # -----------------------------------------------------------------------------------------
    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCPTransport (the node runs on uvloop) has
        # the Transport methods without subclassing asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        shared = self._shared
        self._address = source_address(transport.get_extra_info("peername"))
        verdict = shared.admission.judge(self._address)
        if verdict is not Verdict.SERVE:
            self._reject(transport, verdict)
            return
        shared.admission.opened(self._address)
        shared.connections.add(self)
        self._time = asyncio.get_running_loop().time
        self._active_at = self._time()
        self._arm(self._limits.first_byte_s)

    def _reject(self, transport: asyncio.Transport, verdict: Verdict) -> None:
        """Answer a connection over a limit with an error and end it gently.

        Closing at once would reset the socket if the client's first commands had arrived
        unread (Linux sends RST, and the client loses the error reply), so: write the error,
        half-close, discard what comes in until the client closes, abort after a while. Only
        `rejected_lingering_max` refused connections linger at a time, and a few per address;
        past that they are aborted at once, so a flood of connections cannot hold descriptors
        by lingering, nor crowd out the refusals of other clients.
        """
        self._rejected = self._closing = self._stop = True
        shared = self._shared
        address = self._address
        log.debug("RESP connection from %s refused: %s", address, verdict.value)
        if not shared.admission.may_linger(address):
            self._rejected = False  # nothing to give back in connection_lost
            transport.abort()
            return
        if verdict is Verdict.REFUSE_ADDRESS:
            transport.write(
                error(
                    f"ERR max number of clients reached from {address} "
                    f"({shared.admission.per_address_max} connections): reuse or close some"
                )
            )
        else:
            transport.write(ERR_MAX_CLIENTS)
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(rejected_linger_s, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        first = not self._lost
        self._lost = self._closing = self._stop = True
        if self._rejected:
            if first:
                self._shared.admission.stopped_lingering(self._address)
            return
        if self in self._shared.connections:
            self._shared.connections.discard(self)
            self._shared.admission.closed(self._address)
        self._queue.clear()
        self._out.clear()
        self._waiting = None
        if self.pubsub is not None:
            self.pubsub.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def eof_received(self) -> bool:
        if self._rejected:
            return False
        # `printf 'SET a 1\r\nGET a\r\n' | nc -N host port` half-closes after sending: run
        # and answer everything received, then close (returning True keeps the write side).
        self._eof = True
        self._scanner.end_of_input()
        self._partial_since = None
        self._pump()
        return True

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._halt()
        if self.pubsub is not None:
            self.pubsub.writing_paused()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._pump()
        if self.pubsub is not None:
            self.pubsub.writing_resumed()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # closing (a rejected connection, QUIT, an error): nothing more runs
        self._heard = True
        state = self._scanner.feed(data)
        self._active_at = self._time()
        if state:
            self._fed_unevenly(state)
        elif self._partial_since is not None:
            self._partial_since = None
        self._backlog = True
        self._pump()

    def _fed_unevenly(self, state: int) -> None:
        """The bytes did not end where a command ends: a command is incomplete, or broken."""
        if state & VIOLATED:
            self._partial_since = None
            self._pause_reading()  # nothing after the error is read
        elif state & BEGAN or self._partial_since is None:
            self._partial_since = self._active_at
            self._arm(self._limits.command_timeout_ms / 1000)

    # -----------------------------------------------------------------------------------------
    # Running commands and writing replies

    def _pump(self) -> None:
        """Run parsed commands and write finished replies, as far as backpressure allows."""
        while not self._lost:
            if self._backlog and not self._stop:
                self._drain()
            self._flush()
            if self._closing or (self._eof and not self._backlog):
                if not self._queue and self._transport is not None:
                    self._transport.close()
                return
            if self._stop and self._can_resume():
                self._stop = False
                continue  # run what waited in the scanner
            break
        if not self._stop and self._reading_paused and not self._scanner.violated:
            self._reading_paused = False
            if self._partial_since is not None:
                # The client could not send while we paused: its command's clock restarts.
                self._partial_since = self._time()
            if self._transport is not None:
                self._transport.resume_reading()

    def _drain(self) -> None:
        """Run the complete commands the scanner holds, in order, until empty or told to stop."""
        next_command = self._scanner.next_command
        execute = self._execute
        while not self._stop:
            try:
                args = next_command()
            except RespProtocolError as exc:
                if not exc.reply:
                    log.warning("closing a RESP connection: %s", exc.reason)
                else:
                    log.debug("closing a RESP connection: %s", exc.reason)
                self._fail(exc.reply)
                return
            if args is None:
                self._backlog = False
                return
            execute(args)

    def _execute(self, args: list[str]) -> None:
        pubsub = self.pubsub
        subscribed = pubsub is not None and pubsub.count and not self.resp3
        if subscribed and not allowed_while_subscribed(args[0]):
            self.reply(not_while_subscribed(args[0]))
            return
        if self.multi is not None:
            name = args[0].upper()
            if name not in MULTI_CONTROL:
                queue_command(self, args, name in DISPATCH)
                return
        entry = DISPATCH.get(args[0])
        if entry is None:
            entry = DISPATCH.get(args[0].upper())
            if entry is None:
                self.reply(unknown_command(args))
                return
        handler, arity = entry
        n = len(args)
        if n != arity and (arity > 0 or n < -arity):
            self.reply(wrong_arity(args[0]))
            return
        try:
            handler(self, args)
        except Exception as exc:  # a bug in a handler must cost one reply, not the server
            log.exception("RESP command %r failed", args[0][:64])
            self.reply(error(f"ERR internal error: {type(exc).__name__}"))

    def _flush(self) -> None:
        """Move completed entries from the FIFO head to the output, then write the output."""
        queue = self._queue
        while queue and not self._writing_paused:
            entry = queue[0]
            data = entry.reply
            if data is None and entry.deferred:
                # Everything before it has completed: its turn to reach the node.
                self._release()
                data = entry.reply  # a lazy entry may have answered without the node
            if data is None:
                waiting = entry.unfinished()
                if waiting is not None:
                    self._wait(waiting)
                    break
                if entry.many:
                    data = self._render_many(entry.waitable, entry.render, entry.write)
                else:
                    data = self._render(entry.waitable, entry.render, entry.write)
            queue.popleft()
            self._emit(data)
        self._write_out()

    def _emit(self, data: bytes) -> None:
        """Add a reply to the next write; write at once past `out_flush_bytes`."""
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes >= out_flush_bytes:
            self._write_out()

    def _write_out(self) -> None:
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_bytes = 0
        if self._transport is not None and not self._lost:
            self._transport.write(data)  # may call pause_writing() before returning

    def _wait(self, future: asyncio.Future[Any]) -> None:
        if self._waiting is not future:
            self._waiting = future
            future.add_done_callback(self._wake)

    def _wake(self, future: asyncio.Future[Any]) -> None:
        if future is self._waiting:
            self._waiting = None
            self._pump()

    def _render(self, future: asyncio.Future[Any], render: Render, write: bool) -> bytes:
        try:
            result = future.result()
        except BaseException as exc:  # CancelledError included: the outcome is unknown
            return exception_reply(self.node, exc, write)
        if type(result) is ResultError:
            return result_error_reply(result, write)
        try:
            return render(result, self._nil)
        except Exception as exc:
            log.exception("rendering a RESP reply failed for %r", result)
            return error(f"ERR internal error: {type(exc).__name__}")

    def _render_many(
        self, futures: list[asyncio.Future[Any]], render: RenderMany, write: bool
    ) -> bytes:
        results = []
        for future in futures:
            try:
                result = future.result()
            except BaseException as exc:
                return exception_reply(self.node, exc, write)
            if type(result) is ResultError:
                return result_error_reply(result, write)
            results.append(result)
        try:
            return render(results, self._nil)
        except Exception as exc:
            log.exception("rendering a RESP reply failed for %r", results)
            return error(f"ERR internal error: {type(exc).__name__}")

    # -----------------------------------------------------------------------------------------
    # Flow control

    def _halt(self) -> None:
        """Stop running commands and reading until `_can_resume`."""
        self._stop = True
        self._pause_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self._lost and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _can_resume(self) -> bool:
        return (
            not self._closing
            and not self._writing_paused
            and len(self._queue) <= self._limits.pending_replies_resume
        )

    def _fail(self, reply: bytes) -> None:
        """Answer `reply` after everything before it, then close."""
        if reply:
            self.reply(reply)
        self._closing = True
        self._halt()

    def abort(self) -> None:
        """Close the connection now, without waiting for pending replies."""
        self._closing = self._stop = True
        if self._transport is not None and not self._lost:
            self._transport.abort()

    # -----------------------------------------------------------------------------------------
    # Deadlines: idle connections and slow commands

    def _arm(self, delay_s: float) -> None:
        """Make sure a deadline check runs within `delay_s` seconds."""
        at = self._time() + delay_s
        timer = self._timer
        if timer is not None:
            if self._timer_at <= at:
                return  # an earlier check is due; it re-arms for what remains
            timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_at(at, self._check_deadlines)

    def _check_deadlines(self) -> None:
        self._timer = None
        if self._closing or self._lost:
            return
        limits = self._limits
        now = self._time()
        due = now + limits.idle_timeout_ms / 1000  # the next check, at the latest
        since = self._partial_since
        if since is not None and not self._reading_paused:
            command_due = since + limits.command_timeout_ms / 1000
            if now >= command_due:
                log.debug("closing a RESP connection: a command incomplete for %.1f s", now - since)
                self._fail(
                    error(
                        f"ERR Protocol error: command not complete {limits.command_timeout_ms}"
                        " ms after it began; closing the connection"
                    )
                )
                self._pump()
                return
            due = min(due, command_due)
        if not self._heard:
            first_due = self._active_at + limits.first_byte_s
            if now >= first_due:
                log.debug("closing a RESP connection from %s: it sent nothing", self._address)
                self._closing = self._stop = True
                if self._transport is not None:
                    self._transport.close()
                return
            self._arm(first_due - now)
            return
        owed = (self._queue or self._backlog) and not self._writing_paused
        if since is None and not owed:
            # Idle: nothing arriving, nothing owed (or a client that stopped reading replies).
            idle_due = self._active_at + limits.idle_timeout_ms / 1000
            if now >= idle_due:
                log.debug("closing a RESP connection idle for %.1f s", now - self._active_at)
                self._closing = self._stop = True
                if self._transport is not None:
                    self._transport.close()
                return
            due = min(due, idle_due)
        self._arm(due - now)

    # -----------------------------------------------------------------------------------------
    # resp_commands.Connection: what handlers use

    def reply(self, data: bytes) -> None:
        if self._queue:
            self._queue.append(_Entry.known(data))
        else:
            self._emit(data)

    def push(self, data: bytes) -> None:
        """A keyspace notification (resp_pubsub), sent now, after the replies owed."""
        if self._lost:
            return
        if self._queue:
            self._queue.append(_Entry.known(data))
        else:
            self._emit(data)
            self._write_out()

    # A single operation is not validated here: `NodeService.submit` validates every op and
    # answers BadRequest (-ERR) for a bad one, and doing it twice cost 0.8 µs of the ~3.5 µs
    # this layer spends per command. Multi-key commands validate first, so that one bad key
    # refuses the whole command instead of applying half of it.
    #
    # Program order. A read and a write in flight together are concurrent for the node: a
    # read-index read does not wait for a write that is not committed yet, and a read may be
    # served after a later write was applied. Redis clients expect a connection's commands to
    # take effect in order (`SET k v` then `GET k` in one pipeline must see v), so a
    # connection submits in phases: consecutive reads together, consecutive writes together,
    # and an operation of the other kind only once everything before it has completed (it
    # waits in the FIFO as a deferred entry until it reaches the head). Pure read or pure
    # write pipelines keep full concurrency; alternating ones pay one round trip per switch.

    def read(self, op: Any, render: Render) -> None:
        if self._deferred or (self._phase_writes and self._queue):
            self._defer(_Entry.later(op, render, False, False))
            return
        self._phase_writes = False
        try:
            future = self._node_submit(op)
        except Exception as exc:  # the contract says "a future", but never trust a neighbour
            self.reply(exception_reply(self.node, exc, False))
            return
        self._push(future, render, False)

    def write(self, op: Any, render: Render) -> None:
        if self._deferred or (not self._phase_writes and self._queue):
            self._defer(_Entry.later(op, render, True, False))
            return
        self._phase_writes = True
        self._seq += 1
        try:
            future = self._node_submit(op, client_id=self._client_id, seq=self._seq)
        except Exception as exc:
            self.reply(exception_reply(self.node, exc, True))
            return
        self._push(future, render, True)

    def _push(self, future: asyncio.Future[Any], render: Render, write: bool) -> None:
        queue = self._queue
        if not queue and future.done():
            self._emit(self._render(future, render, write))
            return
        queue.append(_Entry(future, render, write))
        if len(queue) >= self._limits.pending_replies_max:
            self._halt()

    def read_many(self, ops: list[Any], render: RenderMany) -> None:
        self._many(ops, render, False)

    def write_many(self, ops: list[Any], render: RenderMany) -> None:
        self._many(ops, render, True)

    def _many(self, ops: list[Any], render: RenderMany, write: bool) -> None:
        try:
            for op in ops:
                validate(op, self.node.kv_limits)
        except BadCommand as exc:
            self.reply(error(f"ERR {exc}"))
            return
        if self._deferred or (self._phase_writes != write and self._queue):
            self._defer(_Entry.later(ops, render, write, True))
            return
        self._phase_writes = write
        futures = [self._submit_one(op, write) for op in ops]
        self._queue.append(_Entry(futures, render, write, True))
        if len(self._queue) >= self._limits.pending_replies_max:
            self._halt()

    def _submit_one(self, op: Any, write: bool) -> asyncio.Future[Any]:
        try:
            if write:
                self._seq += 1
                return self._node_submit(op, client_id=self._client_id, seq=self._seq)
            return self._node_submit(op)
        except Exception as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    def _defer(self, entry: _Entry) -> None:
        self._queue.append(entry)
        self._deferred += 1
        if len(self._queue) >= self._limits.pending_replies_max:
            self._halt()

    def _release(self) -> None:
        """Submit the run of same-kind deferred operations that starts at the FIFO head."""
        write: bool | None = None
        for entry in self._queue:
            if not entry.deferred:
                continue
            if entry.lazy:
                if write is None:  # at the head: everything before it has completed
                    self._build(entry)
                break
            if write is None:
                write = entry.write
            elif entry.write != write:
                break  # the next phase: it waits until it reaches the head
            if entry.many:
                entry.waitable = [self._submit_one(op, write) for op in entry.op]
            else:
                entry.waitable = self._submit_one(entry.op, write)
            entry.deferred = False
            entry.op = None
            self._deferred -= 1
        if write is not None:
            self._phase_writes = write

    def when_done(self, build: Any, render: Render) -> None:
        """Once every reply owed before this one is complete, call `build()`: it returns the
        reply's bytes, or (operation, is_write) to run and answer with `render`. (EXEC builds
        its transaction from the answers of the WATCHes before it.)"""
        if not self._queue:
            built = build()
            if isinstance(built, bytes):
                self.reply(built)
            elif built[1]:
                self.write(built[0], render)
            else:
                self.read(built[0], render)
            return
        entry = _Entry.later(build, render, False, False)
        entry.lazy = True
        self._defer(entry)

    def _build(self, entry: _Entry) -> None:
        built = entry.op()
        entry.op = None
        entry.deferred = False
        self._deferred -= 1
        if isinstance(built, bytes):
            entry.reply = built
            return
        op, write = built
        entry.write = write
        entry.waitable = self._submit_one(op, write)
        self._phase_writes = write

    def set_protocol(self, version: int) -> None:
        self.resp3 = version == 3
        self._nil = NIL3 if self.resp3 else NIL2

    def quit(self) -> None:
        self.reply(OK)
        self._closing = True
        self._halt()

    def describe(self) -> str:
        """This connection as one CLIENT INFO line (the fields redis-py parses as integers)."""
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        sock = transport.get_extra_info("sockname") if transport is not None else None
        return (
            f"id={self.conn_id} addr={_address(peer)} laddr={_address(sock)} fd=-1 "
            f"name={self.name or ''} age=0 idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 "
            f"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll={len(self._queue)} omem=0 "
            f"tot-mem=0 events=r cmd=client|info user=default redir=-1 "
            f"resp={3 if self.resp3 else 2} lib-name={self.lib_name} lib-ver={self.lib_ver} "
            f"paxosd-client-id={self._client_id}"
        )

    def local_port(self) -> int:
        sock = self._transport.get_extra_info("sockname") if self._transport else None
        return int(sock[1]) if isinstance(sock, tuple) and len(sock) >= 2 else 0


def time_of_loop() -> float:
    """The running loop's clock, for a protocol used before `connection_made`."""
    return asyncio.get_running_loop().time()


def _address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "?"
