"""Connection limits of the HTTP port: caps on open connections and deadlines per connection.

aiohttp serves requests but bounds neither how many connections it holds nor how long a
client may take to send a request, so a few thousand idle sockets, or clients that send a
header byte every few seconds (slowloris), could hold the node's file descriptors. This
module wraps aiohttp's per-connection protocol in a thin guard:

* **Caps** (`limits.Admission`). `ConnectionGuard` is the protocol factory the listening
  socket uses; each new connection is judged when it is made, by its source address. Past
  `connections_per_address_max` connections from its address, or `connections_max` in all,
  it gets a complete `503 too_many_connections` answer and is closed; the open ones are
  served as before. The last `reserved_connections` slots serve only `GET /healthz` and
  `GET /v1/status`, one request per connection: the request line is read before aiohttp sees
  anything, and any other request gets the 503. Refused connections linger briefly so the
  client can read the answer (half-closed, what it sends is read and dropped, so the kernel
  never resets the answer away; `limits.rejected_linger_s`), at most
  `limits.rejected_lingering_max` of them at a time and a few per address; past that they
  are closed at once.
* **Deadlines**, one timer per connection, re-armed lazily: a new connection must send its
  first byte within `first_byte_timeout_ms`; a connection with no request in progress is
  closed `idle_timeout_ms` after its last response; once the first byte of a request has
  arrived, its headers must be complete within `header_timeout_ms`. The body has its own
  deadline (`body_timeout_ms`, answered 408 by `calls.read_body`), and a request being
  handled has none here (the node bounds its own work).

The middleware in `http.py` tells the guard when a request starts and when its response is
ready (`request_started` / `request_finished`); everything else is the byte stream.

What aiohttp refuses before any handler runs (a header line over 8190 bytes, a control
character in a header, a request line that is not HTTP) is answered in paxosd's JSON shape
too (`JsonErrorsRequestHandler`), as every other refusal is.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Final, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .limits import Admission, HttpLimits, Verdict, rejected_linger_s, source_address

__all__ = ["ConnectionGuard", "GuardedSite"]

log = logging.getLogger("paxosd.api.http")

TOO_MANY_CONNECTIONS: Final = "too_many_connections"


# The only requests the reserved slots serve: watching a node must work when it is busy.
RESERVED_PATHS: Final = (b"/healthz", b"/v1/status")
# The request line of a reserved connection is read before aiohttp sees it; a longer one is
# not one of the reserved requests.
request_line_bytes_max: Final = 1024


def _refusal(message: str) -> bytes:
    body = json.dumps(
        {"error": TOO_MANY_CONNECTIONS, "message": message, "outcome": "failed"}
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _is_reserved_request(line: bytes) -> bool:
    """Whether a request line (`GET /v1/status?x HTTP/1.1`) is one the reserved slots serve."""
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
        return False
    return parts[1].split(b"?", 1)[0] in RESERVED_PATHS


class ConnectionGuard:
    """The protocol factory of one HTTP listener: aiohttp's protocols, guarded."""

    def __init__(self, limits: HttpLimits) -> None:
        # aiohttp's protocol factory (the runner's web.Server), set when the site starts.
        self.inner: Callable[[], asyncio.Protocol] | None = None
        self.limits = limits
        self.admission = Admission(
            limits.connections_max,
            limits.connections_per_address_max,
            limits.reserved_connections,
        )
        # aiohttp's protocol -> its guard, for the middleware's calls.
        self.open: dict[asyncio.Protocol, _Guarded] = {}
        self._full = _refusal(
            f"this node already serves {limits.connections_max} HTTP connections; "
            "retry later or use another node"
        )
        self._reserved_only = _refusal(
            "this node's HTTP connections are all in use (the last few serve only GET "
            "/healthz and GET /v1/status); retry later or use another node"
        )

    def __call__(self) -> asyncio.Protocol:
        assert self.inner is not None, "the site has not started"
        return _Guarded(self)

    def refusal(self, verdict: Verdict, address: str) -> bytes:
        if verdict is Verdict.REFUSE_ADDRESS:
            return _refusal(
                f"this node already serves {self.admission.per_address_max} HTTP connections "
                f"from {address}; reuse them (keep-alive) or close some, or retry later"
            )
        if verdict is Verdict.SERVE_RESERVED:
            return self._reserved_only
        return self._full

    def request_started(self, request: web.BaseRequest) -> None:
        guard = self.open.get(cast(asyncio.Protocol, request.protocol))
        if guard is not None:
            guard.busy = True
            guard.head_since = None

    def request_finished(self, request: web.BaseRequest) -> bool:
        """The response is ready; True if the connection must close after it (a reserved
        slot serves one request)."""
        guard = self.open.get(cast(asyncio.Protocol, request.protocol))
        if guard is None:
            return False
        guard.busy = False
        guard.idle_since = guard.time()
        guard.arm(self.limits.idle_timeout_ms / 1000)
        return guard.reserved


class _Guarded(asyncio.Protocol):
    """One connection: judged when made, then aiohttp's protocol with the deadlines of the
    module docstring (or, refused, its 503 and the end)."""

    def __init__(self, owner: ConnectionGuard) -> None:
        self._owner = owner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._address = "?"
        self.time: Callable[[], float] = _loop_time
        self.admitted = False  # counted in the owner's admission until connection_lost
        self.lingering = False  # refused, delivering its 503
        self.reserved = False  # on a reserved slot: health or status, one request
        self._line = b""  # a reserved connection's request line, until it is judged
        self.heard = False  # any byte has arrived
        self.busy = False  # a request is being handled
        self.idle_since = 0.0  # connection opened, or the last response was ready
        self.head_since: float | None = None  # the first byte of the next request arrived
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.time = asyncio.get_running_loop().time
        owner = self._owner
        self._address = source_address(transport.get_extra_info("peername"))
        verdict = owner.admission.judge(self._address)
        if verdict is Verdict.REFUSE_ADDRESS or verdict is Verdict.REFUSE_FULL:
            log.debug("HTTP connection from %s refused: %s", self._address, verdict.value)
            self._refuse(owner.refusal(verdict, self._address))
            return
        owner.admission.opened(self._address)
        self.admitted = True
        self.reserved = verdict is Verdict.SERVE_RESERVED
        self.idle_since = self.time()
        self.arm(owner.limits.first_byte_s)
        if not self.reserved:
            self._serve()

    def _serve(self) -> None:
        """Hand the connection to aiohttp."""
        owner = self._owner
        assert owner.inner is not None and self._transport is not None
        inner = self._inner = owner.inner()
        owner.open[inner] = self
        inner.connection_made(self._transport)

    def _refuse(self, answer: bytes) -> None:
        """Answer 503 and end the connection without losing the answer: write it, half-close,
        read and drop whatever comes until the client closes, abort after a while. Closing at
        once would make the kernel reset a socket with unread request bytes, and the reset
        would destroy the answer before the client read it."""
        transport = self._transport
        assert transport is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._owner.admission.may_linger(self._address):
            transport.abort()
            return
        self.lingering = True
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(rejected_linger_s, transport.abort)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # dropped: nothing is served on this connection
        self.heard = True
        if not self.busy and self.head_since is None:
            self.head_since = self.time()
            self.arm(self._owner.limits.header_timeout_ms / 1000)
        inner = self._inner
        if inner is None:
            self._judge_request_line(data)
            return
        inner.data_received(data)

    def _judge_request_line(self, data: bytes) -> None:
        """A reserved slot: serve the request if it is health or status, else the 503."""
        self._line += data
        end = self._line.find(b"\r\n")
        if end < 0 and len(self._line) <= request_line_bytes_max:
            return  # the line is not complete yet
        if 0 <= end <= request_line_bytes_max and _is_reserved_request(self._line[:end]):
            self._serve()
            line, self._line = self._line, b""
            assert self._inner is not None
            self._inner.data_received(line)
            return
        self._refuse(self._owner.refusal(Verdict.SERVE_RESERVED, self._address))

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return False  # refused, or a reserved connection that said nothing: close
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        owner = self._owner
        if self.lingering:
            owner.admission.stopped_lingering(self._address)
        if self.admitted:
            owner.admission.closed(self._address)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inner is not None:
            owner.open.pop(self._inner, None)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def arm(self, delay_s: float) -> None:
        """Make sure a deadline check runs within `delay_s` seconds."""
        at = self.time() + delay_s
        if self._timer is not None:
            if self._timer_at <= at:
                return  # an earlier check is due; it re-arms for what remains
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_at(at, self._check)

    def _check(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing() or self.lingering:
            return
        limits = self._owner.limits
        now = self.time()
        if self.busy:
            self.arm(limits.idle_timeout_ms / 1000)
            return
        if not self.heard:
            due = self.idle_since + limits.first_byte_s
            reason = "it sent nothing"
        elif self.head_since is not None:
            due = self.head_since + limits.header_timeout_ms / 1000
            reason = "its request headers were not complete in time"
        else:
            due = self.idle_since + limits.idle_timeout_ms / 1000
            reason = "it was idle"
        if now < due:
            self.arm(due - now)
            return
        log.debug("closing an HTTP connection from %s: %s", self._address, reason)
        transport.abort()  # nothing is owed: no request is in progress


class JsonErrorsRequestHandler(RequestHandler):
    """aiohttp's protocol, answering its own refusals (bad request lines and headers) as
    `{"error": "bad_request", "message": ..., "outcome": "failed"}` instead of plain text.
    A client's malformed request is logged at debug level, not as an error of the node."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("error answering a request from %s", request.remote, exc_info=exc)
            code, text = "internal", "internal error; the details are in the node's log"
        else:
            log.debug("refused a malformed request from %s: %s", request.remote, message)
            code, text = "bad_request", f"not a request this node can read: {message or exc}"
        if request.writer.output_size > 0:  # as aiohttp's own: an answer already began
            raise ConnectionError("a response was sent already; cannot send the error")
        body = {"error": code, "message": text[:500], "outcome": "failed"}
        response = web.json_response(body, status=status)
        response.force_close()
        return response


class GuardedSite(web.TCPSite):
    """aiohttp's TCPSite, listening with a `ConnectionGuard` around the runner's protocols."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard):
        super().__init__(runner, host, port)
        self._guard = guard

    async def start(self) -> None:
        # TCPSite.start with the protocol factory wrapped (aiohttp pinned: see pyproject).
        # BaseSite.start registers the site with the runner, so runner.cleanup() stops it.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        # web.Server's own factory, with our handler class (aiohttp pinned: see pyproject).
        self._guard.inner = functools.partial(
            JsonErrorsRequestHandler,
            server,
            loop=server._loop,
            **server._kwargs,
        )
        self._server = await asyncio.get_running_loop().create_server(
            self._guard,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
