"""Connection limits of the HTTP port: a cap on open connections and deadlines per connection.

aiohttp serves requests but bounds neither how many connections it holds nor how long a
client may take to send a request, so a few thousand idle sockets, or clients that send a
header byte every few seconds (slowloris), could hold the node's file descriptors. This
module wraps aiohttp's per-connection protocol in a thin guard:

* **A cap.** `ConnectionGuard` is the protocol factory the listening socket uses. With
  `connections_max` connections open, a new one gets a complete `503 too_many_connections`
  answer and is closed; the open ones are served as before. Refused connections linger
  briefly so the client can read the answer (`limits.rejected_linger_s`), at most
  `limits.rejected_lingering_max` of them at a time; past that they are closed at once.
* **Deadlines**, one timer per connection, re-armed lazily: a connection with no request in
  progress is closed `idle_timeout_ms` after it opened or after its last response; once the
  first byte of a request has arrived, its headers must be complete within
  `header_timeout_ms`. The body has its own deadline (`body_timeout_ms`, answered 408 by
  `calls.read_body`), and a request being handled has none here (the node bounds its own
  work).

The middleware in `http.py` tells the guard when a request starts and when its response is
ready (`request_started` / `request_finished`); everything else is the byte stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Final, cast

from aiohttp import web

from .limits import HttpLimits, rejected_linger_s, rejected_lingering_max

__all__ = ["ConnectionGuard", "GuardedSite"]

log = logging.getLogger("paxosd.api.http")

TOO_MANY_CONNECTIONS: Final = "too_many_connections"


def _refusal(connections_max: int) -> bytes:
    body = json.dumps(
        {
            "error": TOO_MANY_CONNECTIONS,
            "message": f"this node already serves {connections_max} HTTP connections; "
            "retry later or use another node",
            "outcome": "failed",
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    """The protocol factory of one HTTP listener: aiohttp's protocols, guarded."""

    def __init__(self, limits: HttpLimits) -> None:
        # aiohttp's protocol factory (the runner's web.Server), set when the site starts.
        self.inner: Callable[[], asyncio.Protocol] | None = None
        self.limits = limits
        # aiohttp's protocol -> its guard, from the moment the listener made it (a burst of
        # accepts makes several protocols before any connection_made runs).
        self.open: dict[asyncio.Protocol, _Guarded] = {}
        self.rejected = 0  # refused connections still lingering
        self._refusal = _refusal(limits.connections_max)

    def __call__(self) -> asyncio.Protocol:
        assert self.inner is not None, "the site has not started"
        if len(self.open) >= self.limits.connections_max:
            return _Refused(self, self._refusal)
        inner = self.inner()
        guard = self.open[inner] = _Guarded(self, inner)
        return guard

    def request_started(self, request: web.BaseRequest) -> None:
        guard = self.open.get(cast(asyncio.Protocol, request.protocol))
        if guard is not None:
            guard.busy = True
            guard.head_since = None

    def request_finished(self, request: web.BaseRequest) -> None:
        guard = self.open.get(cast(asyncio.Protocol, request.protocol))
        if guard is not None:
            guard.busy = False
            guard.idle_since = guard.time()
            guard.arm(self.limits.idle_timeout_ms / 1000)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the deadlines of the module docstring."""

    def __init__(self, owner: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._owner = owner
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self.time: Callable[[], float] = _loop_time
        self.busy = False  # a request is being handled
        self.idle_since = 0.0  # connection opened, or the last response was ready
        self.head_since: float | None = None  # the first byte of the next request arrived
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.time = asyncio.get_running_loop().time
        self.idle_since = self.time()
        self.arm(self._owner.limits.idle_timeout_ms / 1000)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy and self.head_since is None:
            self.head_since = self.time()
            self.arm(self._owner.limits.header_timeout_ms / 1000)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.open.pop(self._inner, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
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
        if transport is None or transport.is_closing():
            return
        limits = self._owner.limits
        now = self.time()
        if self.busy:
            self.arm(limits.idle_timeout_ms / 1000)
            return
        if self.head_since is not None:
            due = self.head_since + limits.header_timeout_ms / 1000
            reason = "its request headers were not complete in time"
        else:
            due = self.idle_since + limits.idle_timeout_ms / 1000
            reason = "it was idle"
        if now < due:
            self.arm(due - now)
            return
        log.debug("closing an HTTP connection from %s: %s", _peer(transport), reason)
        transport.abort()  # nothing is owed: no request is in progress


class _Refused(asyncio.Protocol):
    """A connection over the cap: its 503, then the end (see ConnectionGuard)."""

    def __init__(self, owner: ConnectionGuard, answer: bytes) -> None:
        self._owner = owner
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner = self._owner
        owner.rejected += 1  # until connection_lost
        transport = cast(asyncio.Transport, transport)
        log.debug("HTTP connection refused: %d connections open", len(owner.open))
        if owner.rejected > rejected_lingering_max:
            transport.abort()
            return
        # Closing at once would reset a socket with unread request bytes and lose the answer:
        # answer, half-close, discard what comes in, abort after a while.
        transport.write(self._answer)
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(rejected_linger_s, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # discarded: nothing is served on this connection

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.rejected -= 1


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
        self._guard.inner = server
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


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "?"
