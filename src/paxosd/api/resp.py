"""RESP, the Redis serialization protocol, as a second client front end beside HTTP.

Every node listens for RESP (RESP2, and RESP3 after `HELLO 3`) so redis-cli, redis-benchmark
and Redis client libraries can use paxosd's KV store, locks, names and decisions. The command
semantics live in `resp_commands`; this module moves bytes.

Theory of operation, per connection (`RespProtocol`, one asyncio.Protocol, no Task):

1. **Scan, then parse.** `data_received` first walks the RESP framing of the new bytes in
   Python (`*N`, then N times `$L` + skip L bytes), enforcing the limits below, and only then
   feeds the checked bytes to the C `hiredis.Reader`, which builds the argument lists and
   decodes UTF-8. Why not hand hiredis the raw bytes: it allocates a `*N` array as soon as it
   reads the header (`*2147483647\\r\\n` asks for 16 GiB), accepts nested aggregates, and keeps
   reading a `$L` bulk of any length, so a hostile or broken client could exhaust memory. The
   scan costs about 0.5 µs for a SET (1-2 digit headers are read by byte arithmetic). Inline
   commands (`PING\\r\\n`, as telnet and redis-benchmark's PING_INLINE send them) are
   converted to RESP arrays and fed the same way, so every command goes through one queue in
   arrival order.
2. **Submit.** Each command goes to its handler, which builds the state-machine operation
   and calls `node.submit(op, client_id=..., seq=...)`: a Future, not a coroutine (the node
   validates the op; multi-key commands are validated here first, all keys or none). Writes
   carry this connection's client id (uuid4 hex) and the next sequence number, so the node
   applies each exactly once however often it retries internally.
3. **Reply in order.** A per-connection FIFO holds, in arrival order, reply bytes and
   unresolved futures. Only the HEAD gets a done-callback; when it fires, every completed entry
   at the front is rendered and the lot goes out in ONE `transport.write`. When the FIFO is
   empty and a future is already done (a node that answers at once), the reply skips the FIFO.
   Replies are collected for a whole `data_received` and written once, so a pipeline of N
   commands costs one write, not N.
4. **Program order.** Reads and writes in flight together are concurrent for the node (a
   read-index read does not wait for an uncommitted write), but a connection's commands must
   take effect in the order sent, as in Redis. So runs of reads, or of writes, are submitted
   together, and an operation of the other kind waits in the FIFO (`_Deferred`) until it
   reaches the head, that is until everything before it has completed.
5. **Backpressure.** Reading stops (`pause_reading`) while the FIFO holds
   `pending_replies_max` entries, while the transport's write buffer is over its high-water
   mark (a client that sends but does not read), or while the connection is closing; parsed
   commands wait in the hiredis reader and run when the pressure is gone. The FIFO must drain
   to `pending_replies_resume` before reading resumes, so the connection does not flap.
6. **Errors.** Framing errors (`-ERR Protocol error: ...`) are answered after the replies of
   the commands before them, then the connection closes; nothing a client sends can raise out
   of the protocol. Node errors become `-NOTLEADER`, `-UNKNOWN` (a write's outcome is unknown),
   `-TRYAGAIN` (a read got no answer), `-BUSY`; see `resp_commands.exception_reply`.

Limits (`RespLimits`), with units last: `bulk_bytes_max` (one argument), `command_bytes_max`
(all arguments of one command), `command_args_max` (arguments of one command),
`inline_bytes_max` (one inline command line), `pending_replies_max` (FIFO entries before
reading pauses), `connections_max` (open connections per server; the next gets
`-ERR max number of clients reached`).
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

import hiredis

from paxosd.runtime.service_api import NodeService
from paxosd.service.commands import validate
from paxosd.service.errors import BadCommand
from paxosd.service.results import Error as ResultError

from .resp_commands import (
    DISPATCH,
    ERR_MAX_CLIENTS,
    ERR_UTF8,
    NIL2,
    NIL3,
    OK,
    Render,
    RenderMany,
    error,
    exception_reply,
    result_error_reply,
    unknown_command,
    wrong_arity,
)

__all__ = ["RespLimits", "RespProtocol", "close_resp_clients", "serve_resp"]

log = logging.getLogger("paxosd.api.resp")

# Defaults of RespLimits. A bulk may exceed the state machine's value limit (1 MiB) so that a
# slightly-too-large value gets a per-command error from validation instead of a protocol error
# that closes the connection; anything past these is not a command paxosd could accept.
bulk_bytes_max: Final = 4 * 1024 * 1024
command_bytes_max: Final = 8 * 1024 * 1024
command_args_max: Final = 65_536
inline_bytes_max: Final = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
pending_replies_max: Final = 10_000
connections_max: Final = 10_000
# How long a connection refused for connections_max may linger before it is aborted, in seconds.
rejected_linger_s: Final = 5.0
# A `*N` / `$L` header line is the type byte, at most 20 digits and CRLF; longer is garbage.
header_bytes_max: Final = 24
# Replies gathered while running a pipeline are written once this many bytes accumulate, so
# the transport's write-buffer limit (and thus pause_writing) sees them before the whole
# pipeline has been rendered in memory.
out_flush_bytes: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class RespLimits:
    """Per-server limits; see the module docstring. Units are in the names."""

    bulk_bytes_max: int = bulk_bytes_max
    command_bytes_max: int = command_bytes_max
    command_args_max: int = command_args_max
    inline_bytes_max: int = inline_bytes_max
    pending_replies_max: int = pending_replies_max
    connections_max: int = connections_max

    @property
    def pending_replies_resume(self) -> int:
        """Reading resumes once the FIFO has drained to this many entries."""
        return self.pending_replies_max // 2


@dataclass(slots=True)
class _Shared:
    """What the connections of one server share."""

    node: NodeService
    limits: RespLimits
    connections: set[RespProtocol] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


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


class _Deferred:
    """An operation (or several, `many`) waiting in the FIFO until all before it completed."""

    __slots__ = ("many", "op", "render", "waitable", "write")

    def __init__(self, op: Any, render: Any, write: bool, many: bool) -> None:
        self.op = op
        self.render = render
        self.write = write
        self.many = many
        self.waitable: Any = None  # the future (or futures) once submitted


class RespProtocol(asyncio.Protocol):
    """One RESP client connection. See the module docstring for how it works."""

    __slots__ = (
        "_backlog",
        "_carry",
        "_client_id",
        "_closing",
        "_deferred",
        "_eof",
        "_left",
        "_limits",
        "_lost",
        "_need",
        "_nil",
        "_out",
        "_out_bytes",
        "_phase_writes",
        "_problem",
        "_queue",
        "_reader",
        "_reading_paused",
        "_seq",
        "_shared",
        "_size",
        "_stop",
        "_submit",
        "_transport",
        "_waiting",
        "_writing_paused",
        "conn_id",
        "lib_name",
        "lib_ver",
        "name",
        "node",
        "resp3",
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
        self._submit = node.submit
        self.conn_id = next(shared.ids)
        self.name: str | None = None
        self.lib_name = ""
        self.lib_ver = ""
        self.resp3 = False
        self._nil = NIL2
        self._client_id = uuid.uuid4().hex
        self._seq = 0
        self._transport: asyncio.Transport | None = None
        # Strict UTF-8: a command with undecodable bytes raises UnicodeDecodeError from gets()
        # and is skipped whole, the stream stays in sync (checked by the tests).
        self._reader = hiredis.Reader(encoding="utf-8", errors="strict")
        # Scanner state across chunks: bytes of the current bulk (and its CRLF) still to pass,
        # bulk headers still due in the current command, argument bytes of it so far, and an
        # incomplete header or inline line held back until the rest arrives.
        self._need = 0
        self._left = 0
        self._size = 0
        self._carry = b""
        # Reply FIFO: bytes, (future, render, is_write), ([futures], render_many, is_write), or
        # a _Deferred operation waiting for its turn (see "Program order" below).
        self._queue: deque[Any] = deque()
        self._out: list[bytes] = []  # replies ready to go out in the next write
        self._out_bytes = 0
        self._waiting: asyncio.Future[Any] | None = None  # the head future we have a callback on
        self._phase_writes = False  # what the operations in flight are: writes or reads
        self._deferred = 0  # _Deferred entries in the FIFO not submitted yet
        self._backlog = False  # the reader may hold parsed commands that have not run yet
        self._stop = False  # commands must not run now (backpressure or closing)
        self._reading_paused = False
        self._writing_paused = False
        self._closing = False  # QUIT or a protocol error: answer what came before, then close
        self._problem: bytes | None = None  # reply to send when the reader reaches the error
        self._eof = False  # the client half-closed: answer what it sent, then close
        self._lost = False

    # -----------------------------------------------------------------------------------------
    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCPTransport (the node runs on uvloop) has
        # the Transport methods without subclassing asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        connections = self._shared.connections
        if len(connections) >= self._limits.connections_max:
            self._reject(transport)
            return
        connections.add(self)

    def _reject(self, transport: asyncio.Transport) -> None:
        """Answer a connection over the limit with an error and end it gently.

        Closing at once would reset the socket if the client's first commands had arrived
        unread (Linux sends RST, and the client loses the error reply), so: write the error,
        half-close, discard what comes in until the client closes, abort after a while.
        """
        self._closing = self._stop = True
        self._problem = b""  # data_received discards everything
        transport.write(ERR_MAX_CLIENTS)
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(rejected_linger_s, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._closing = self._stop = True
        self._shared.connections.discard(self)
        self._queue.clear()
        self._out.clear()
        self._waiting = None

    def eof_received(self) -> bool:
        if self._problem == b"" and self._closing:  # a rejected connection: see _reject
            return False
        # `printf 'SET a 1\r\nGET a\r\n' | nc -N host port` half-closes after sending: run
        # and answer everything received, then close (returning True keeps the write side).
        self._eof = True
        self._carry = b""  # an incomplete command can never complete now
        self._pump()
        return True

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._halt()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self._closing or self._problem is not None:
            return
        reader = self._reader
        n = len(data)
        need = self._need
        if need >= n:  # all of it is the middle of one long argument
            self._need = need - n
            reader.feed(data)
            if need == n:
                self._backlog = True
                self._pump()
            return
        if self._carry:
            data = self._carry + data
            n = len(data)
            self._carry = b""
        limits = self._limits
        find = data.find
        pos = need  # scan position: the next header
        fed = 0  # data[:fed] has been fed to the reader (or converted, for inline lines)
        left = self._left
        size = self._size
        problem: bytes | None = None
        incomplete = False
        while pos < n:
            if left:
                if data[pos] != 36:  # "$"
                    problem = error(f"ERR Protocol error: expected '$', got '{chr(data[pos])}'")
                    break
                # Lengths under 100 (most keys and small values) by byte arithmetic, which
                # halves the cost of a scan. A non-digit there gives a wrong length, but hiredis
                # rejects that same header before it reads anything after it, so the stream
                # still ends at the error.
                if pos + 3 < n and data[pos + 2] == 13:
                    length = data[pos + 1] - 48
                    following = pos + 6 + length
                elif pos + 4 < n and data[pos + 3] == 13:
                    length = data[pos + 1] * 10 + data[pos + 2] - 528
                    following = pos + 7 + length
                else:
                    end = find(b"\r\n", pos + 1, pos + header_bytes_max)
                    if end < 0:
                        if n - pos < header_bytes_max:
                            incomplete = True
                        else:
                            problem = _ERR_BULK_LENGTH
                        break
                    try:
                        length = int(data[pos + 1 : end])
                    except ValueError:
                        problem = _ERR_BULK_LENGTH
                        break
                    following = end + 4 + length
                if length < 0 or length > limits.bulk_bytes_max:
                    problem = _ERR_BULK_LENGTH
                    break
                size += length
                if size > limits.command_bytes_max:
                    problem = _ERR_TOO_LARGE
                    break
                left -= 1
                pos = following  # may pass n: the argument continues in the next chunk
                continue
            if data[pos] == 42:  # "*"
                if pos + 3 < n and data[pos + 2] == 13:
                    count = data[pos + 1] - 48
                    following = pos + 4
                else:
                    end = find(b"\r\n", pos + 1, pos + header_bytes_max)
                    if end < 0:
                        if n - pos < header_bytes_max:
                            incomplete = True
                        else:
                            problem = _ERR_MULTIBULK_LENGTH
                        break
                    try:
                        count = int(data[pos + 1 : end])
                    except ValueError:
                        problem = _ERR_MULTIBULK_LENGTH
                        break
                    following = end + 2
                if count < 0 or count > limits.command_args_max:
                    problem = _ERR_MULTIBULK_LENGTH
                    break
                left = count
                size = 0
                pos = following
                continue
            # An inline command: one line of space-separated words, converted to RESP so it
            # takes its turn in the reader like any other command.
            end = find(b"\n", pos, pos + limits.inline_bytes_max)
            if end < 0:
                if n - pos < limits.inline_bytes_max:
                    incomplete = True
                else:
                    problem = error("ERR Protocol error: too big inline request")
                break
            words = data[pos:end].split()
            if words and words[0].upper() in (b"POST", b"HOST:"):
                # Someone speaks HTTP to this port (perhaps a browser tricked into it): close
                # without running anything more, as Redis does.
                log.warning("a RESP connection sent an HTTP request; closing it")
                problem = b""
                break
            if fed < pos:
                reader.feed(data, fed, pos - fed)
            fed = pos = end + 1
            if words:
                body = b"".join(b"$%d\r\n%b\r\n" % (len(word), word) for word in words)
                reader.feed(b"*%d\r\n%b" % (len(words), body))
        if pos > n:
            need = pos - n
            pos = n
        else:
            need = 0
        self._need = need
        self._left = left
        self._size = size
        if fed < pos:
            reader.feed(data, fed, pos - fed)
        if incomplete:
            self._carry = data[pos:]  # a header or inline line that ends in the next chunk
        elif problem is not None:
            # Everything before the error runs and is answered; nothing after it is read.
            self._problem = problem
            self._pause_reading()
        self._backlog = True
        self._pump()

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
                continue  # run what waited in the reader
            break
        if not self._stop and self._reading_paused and self._problem is None:
            self._reading_paused = False
            if self._transport is not None:
                self._transport.resume_reading()

    def _drain(self) -> None:
        """Run the complete commands the reader holds, in order, until empty or told to stop."""
        gets = self._reader.gets
        execute = self._execute
        while not self._stop:
            try:
                args = gets()
            except UnicodeDecodeError:
                self.reply(ERR_UTF8)
                continue
            except hiredis.HiredisError as exc:
                # The scan admits only well-framed input, but hiredis is stricter about digits
                # ("$ 3"); its verdict ends the connection like any protocol error.
                self._fail(error(f"ERR Protocol error: {exc}"))
                return
            if args is False:
                self._backlog = False
                if self._problem is not None:
                    self._fail(self._problem)
                return
            if args:  # `*0` is an empty command: no reply, as in Redis
                execute(args)

    def _execute(self, args: list[str]) -> None:
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
        out = self._out
        while queue and not self._writing_paused:
            entry = queue[0]
            kind = type(entry)
            if kind is bytes:
                data = entry
            else:
                if kind is _Deferred:
                    if entry.waitable is None:
                        # Everything before it has completed: its turn to reach the node.
                        self._release()
                    waitable, render, write = entry.waitable, entry.render, entry.write
                else:
                    waitable, render, write = entry
                if type(waitable) is list:
                    pending = next((f for f in waitable if not f.done()), None)
                    if pending is not None:
                        self._wait(pending)
                        break
                    data = self._render_many(waitable, render, write)
                else:
                    if not waitable.done():
                        self._wait(waitable)
                        break
                    data = self._render(waitable, render, write)
            queue.popleft()
            out.append(data)
            self._out_bytes += len(data)
            if self._out_bytes >= out_flush_bytes:
                self._write_out()
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
        self._problem = None
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
    # resp_commands.Connection: what handlers use

    def reply(self, data: bytes) -> None:
        if self._queue:
            self._queue.append(data)
        else:
            self._out.append(data)
            self._out_bytes += len(data)
            if self._out_bytes >= out_flush_bytes:
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
    # waits in the FIFO as a `_Deferred` until it reaches the head). Pure read or pure write
    # pipelines keep full concurrency; alternating ones pay one round trip per switch.

    def read(self, op: Any, render: Render) -> None:
        if self._deferred or (self._phase_writes and self._queue):
            self._defer(_Deferred(op, render, False, False))
            return
        self._phase_writes = False
        try:
            future = self._submit(op)
        except Exception as exc:  # the contract says "a future", but never trust a neighbour
            self.reply(exception_reply(self.node, exc, False))
            return
        self._push(future, render, False)

    def write(self, op: Any, render: Render) -> None:
        if self._deferred or (not self._phase_writes and self._queue):
            self._defer(_Deferred(op, render, True, False))
            return
        self._phase_writes = True
        self._seq += 1
        try:
            future = self._submit(op, client_id=self._client_id, seq=self._seq)
        except Exception as exc:
            self.reply(exception_reply(self.node, exc, True))
            return
        self._push(future, render, True)

    def _push(self, future: asyncio.Future[Any], render: Render, write: bool) -> None:
        queue = self._queue
        if not queue and future.done():
            data = self._render(future, render, write)
            self._out.append(data)
            self._out_bytes += len(data)
            if self._out_bytes >= out_flush_bytes:
                self._write_out()
            return
        queue.append((future, render, write))
        if len(queue) >= self._limits.pending_replies_max:
            self._halt()

    def read_many(self, ops: list[Any], render: RenderMany) -> None:
        self._many(ops, render, False)

    def write_many(self, ops: list[Any], render: RenderMany) -> None:
        self._many(ops, render, True)

    def _many(self, ops: list[Any], render: RenderMany, write: bool) -> None:
        try:
            for op in ops:
                validate(op)
        except BadCommand as exc:
            self.reply(error(f"ERR {exc}"))
            return
        if self._deferred or (self._phase_writes != write and self._queue):
            self._defer(_Deferred(ops, render, write, True))
            return
        self._phase_writes = write
        self._queue.append(([self._submit_one(op, write) for op in ops], render, write))
        if len(self._queue) >= self._limits.pending_replies_max:
            self._halt()

    def _submit_one(self, op: Any, write: bool) -> asyncio.Future[Any]:
        try:
            if write:
                self._seq += 1
                return self._submit(op, client_id=self._client_id, seq=self._seq)
            return self._submit(op)
        except Exception as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    def _defer(self, entry: _Deferred) -> None:
        self._queue.append(entry)
        self._deferred += 1
        if len(self._queue) >= self._limits.pending_replies_max:
            self._halt()

    def _release(self) -> None:
        """Submit the run of same-kind deferred operations that starts at the FIFO head."""
        write: bool | None = None
        for entry in self._queue:
            if type(entry) is not _Deferred or entry.waitable is not None:
                continue
            if write is None:
                write = entry.write
            elif entry.write != write:
                break  # the next phase: it waits until it reaches the head
            if entry.many:
                entry.waitable = [self._submit_one(op, write) for op in entry.op]
            else:
                entry.waitable = self._submit_one(entry.op, write)
            self._deferred -= 1
        if write is not None:
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


def _address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "?"


_ERR_BULK_LENGTH: Final = error("ERR Protocol error: invalid bulk length")
_ERR_MULTIBULK_LENGTH: Final = error("ERR Protocol error: invalid multibulk length")
_ERR_TOO_LARGE: Final = error("ERR Protocol error: command too large")
