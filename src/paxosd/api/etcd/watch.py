"""etcd's watch on the JSON gateway: `POST /v3/watch`, newline-delimited JSON both ways.

Theory of operation, as etcd 3.4's gateway serves it: the request body is a sequence of
WatchRequest JSON objects (most clients send one `create_request` and keep the response
open; a client that streams its body may create more watches, cancel them and ask for
progress on the same stream). The response is chunked: one `{"result": WatchResponse}` per
line, each line one HTTP chunk, flushed as it is made:

* a create answers `created` with the watch's id and the store's revision in its header; a
  create that cannot be made answers `created` and `canceled` with `cancel_reason` (an empty
  range: "mvcc: watcher range is empty", an id already used on the stream: "mvcc: duplicate
  watch ID provided on the WatchStream", a malformed start revision: paxosd's text);
* then the watch's events, whole revisions per response (split, with `fragment`, only when
  the watch asked), the header's revision being the newest revision the response covers;
* a progress notification is a response with no events whose header revision promises that
  every event up to it was delivered. paxosd sends one per watch (with its id), periodically
  when the watch set `progress_notify`, when the stream sends a `progress_request`, and to an
  idle watch before compaction could take its resume point. etcd answers a
  progress_request with one response for the whole stream (watch_id -1) carrying the store's
  revision; paxosd's per-watch revisions are exact for watches still catching up;
* a cancel answers `canceled`; a watch cancelled by the server says why in `cancel_reason`
  and, if it was compacted, `compact_revision` (re-list at that revision or later, then
  watch from the next): the paxosd watch hub's Cancelled item.

The same stream is served over a WebSocket (`GET /v3/watch` with an upgrade, as etcd's
gateway serves it through its wsproxy): each text message the client sends is one
WatchRequest, each message the node sends one `{"result": WatchResponse}`. Over plain HTTP/1.1
an etcd gateway reads no more of the request body once it has started its answer, so a
client that wants several watches on one stream, created as it goes, uses the WebSocket.

Watch ids are the stream's own, as in etcd: 0, 1, 2, ... unless the client picks one. A
first request that is not a WatchRequest is refused like any other etcd API request (400,
InvalidArgument); a malformed request later in the body ends the reading of requests with an
error line, and the watches already made go on. The stream ends when the body has ended and
every watch on it is cancelled, or when the client goes away.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from paxosd.service.kv.errors import GrpcCode
from paxosd.service.kv.types import Event
from paxosd.watch import (
    Cancelled,
    CancelReason,
    Created,
    Events,
    Item,
    Progress,
    WatchRequestError,
)

from .. import websocket
from ..calls import Call
from ..watch_stream import Batch, WatchStream
from . import wire
from .errors import EtcdError, http_status

__all__ = ["watch", "watch_websocket"]

log = logging.getLogger("paxosd.api.etcd")

# One WatchRequest may take at most this many bytes of the body (etcd bounds a request by
# --max-request-bytes, 1.5 MiB; a watch request is a few hundred bytes).
request_bytes_max: Final = 64 * 1024
# Watches one stream may hold at once.
stream_watches_max: Final = 10_000
EMPTY_RANGE: Final = "mvcc: watcher range is empty"
DUPLICATE_ID: Final = "mvcc: duplicate watch ID provided on the WatchStream"
UNKNOWN_ID: Final = "mvcc: watcher does not exist"


class _Requests:
    """The WatchRequests of a body, one JSON object at a time, as they arrive."""

    def __init__(self, content: Any) -> None:
        self._content = content
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self._ended = False

    async def next(self) -> Any:
        """The next JSON object of the body; None at its end. Raises wire.WireError."""
        while True:
            text = self._buffer.lstrip()
            if text:
                try:
                    document, end = self._decoder.raw_decode(text)
                except json.JSONDecodeError as exc:
                    if self._ended or len(text) > request_bytes_max:
                        raise wire.WireError("WatchRequest", f"not JSON: {exc.msg}") from None
                else:
                    self._buffer = text[end:]
                    return document
            elif self._ended:
                return None
            chunk = await self._content.readany()
            if not chunk:
                self._ended = True
                continue
            try:
                self._buffer = text + chunk.decode("utf-8")
            except UnicodeDecodeError:
                raise wire.WireError("WatchRequest", "the body is not UTF-8") from None


class _EtcdWatchStream:
    """One /v3/watch stream: etcd's watch ids over the hub's watchers."""

    def __init__(
        self,
        call: Call,
        write_lines: Callable[[list[bytes]], Awaitable[None]],
        alive: Callable[[], bool],
    ) -> None:
        node = call.node
        assert node.watches is not None
        self.call = call
        self._write_lines = write_lines
        self.header = wire.Header(*_header_fields(call))
        self.stream = WatchStream(node.watches, self._send, alive, post=self._write)
        self.ids: dict[int, int] = {}  # the stream's watch id -> the hub's
        self.names: dict[int, int] = {}  # the hub's -> the stream's
        self.next_id = 0

    def handle(self, request: Any) -> None:
        """One WatchRequest (already parsed)."""
        hub = self.call.node.watches
        assert hub is not None
        if isinstance(request, wire.WatchCreate):
            self._create(request)
        elif isinstance(request, wire.WatchCancel):
            hub_id = self.ids.get(request.watch_id)
            watcher = self.stream.watchers.get(hub_id) if hub_id is not None else None
            if watcher is None or watcher.done:
                return  # as etcd: cancelling a watch that does not exist answers nothing
            self.stream.cancel(watcher)
        elif isinstance(request, wire.WatchProgress):
            for watcher in list(self.stream.watchers.values()):
                hub.progress(watcher)

    def _create(self, create: wire.WatchCreate) -> None:
        watch_id = create.watch_id
        if watch_id == 0 or watch_id == -1:
            while self.next_id in self.ids:
                self.next_id += 1
            watch_id = self.next_id
            self.next_id += 1
        elif watch_id in self.ids:
            self._refuse(DUPLICATE_ID)
            return
        if len(self.stream.watchers) >= stream_watches_max:
            self._refuse(f"paxosd: a stream holds at most {stream_watches_max} watches")
            return
        try:
            watcher = self.stream.watch(create.request)
        except WatchRequestError as exc:
            reason = EMPTY_RANGE if exc.field == "range_end" else f"paxosd: {exc}"
            self._refuse(reason)
            return
        self.ids[watch_id] = watcher.id
        self.names[watcher.id] = watch_id

    def _refuse(self, reason: str) -> None:
        """etcd's answer to a create it cannot make: created and canceled, id -1."""
        hub = self.call.node.watches
        revision = hub.revision if hub is not None else 0
        self.stream.post(
            wire.watch_response(
                self.header, revision, -1, created=True, canceled=True, cancel_reason=reason
            )
        )

    async def _send(self, batch: Batch) -> None:
        """The batch's items as lines, written together. A revision's events go to each
        of its watchers on this stream alike: rendered once (`rendered`, for this batch),
        each watcher's line is the rendering with its id spliced in."""
        header = self.header
        names = self.names
        rendered: dict[tuple[int, bool, bool, tuple[Event, ...]], tuple[bytes, bytes]] = {}
        lines: list[bytes] = []
        for watcher, items in batch:
            watch_id = names.get(watcher.id, 0)
            prev_kv = watcher.request.prev_kv
            for item in items:
                if type(item) is Events:
                    key = (item.revision, item.fragment, prev_kv, item.events)
                    parts = rendered.get(key)
                    if parts is None:
                        parts = rendered[key] = wire.watch_events_line(
                            header,
                            item.revision,
                            item.events,
                            fragment=item.fragment,
                            prev_kv=prev_kv,
                        )
                    lines.append(wire.splice_watch_id(parts, watch_id))
                else:
                    lines.append(_line(self._control(item, watch_id)))
        await self._write_lines(lines)

    def _control(self, item: Item, watch_id: int) -> dict[str, Any]:
        """The WatchResponse of a Created, Progress or Cancelled item."""
        header = self.header
        if type(item) is Created:
            return wire.watch_response(header, item.revision, watch_id, created=True)
        if type(item) is Progress:
            return wire.watch_response(header, item.revision, watch_id)
        assert isinstance(item, Cancelled)
        reason = "" if item.reason is CancelReason.CANCELLED else item.detail
        return wire.watch_response(
            header,
            item.revision,
            watch_id,
            canceled=True,
            compact_revision=item.compact_revision,
            cancel_reason=reason,
        )

    async def _write(self, document: dict[str, Any]) -> None:
        await self._write_lines([_line(document)])


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _header_fields(call: Call) -> tuple[int, int, int]:
    from .gateway import cluster_uint64

    node = call.node
    return cluster_uint64(node.cluster_id), node.node_id, node.term()


def _stream_error(code: GrpcCode, message: str) -> dict[str, Any]:
    """The gateway's error line in a stream (grpc-gateway's StreamError)."""
    status = http_status(code)
    return {
        "error": {
            "grpc_code": int(code),
            "http_code": status,
            "message": message,
            "http_status": _STATUS_TEXT.get(status, "Error"),
        }
    }


_STATUS_TEXT: Final = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}


async def watch(call: Call) -> web.StreamResponse:
    """POST /v3/watch (module docstring)."""
    node = call.node
    if node.watches is None:
        return EtcdError(
            GrpcCode.UNAVAILABLE,
            "etcdserver: server stopped",
            error="damaged",
            detail=f"node {node.node_id} is damaged and serves no watches; use another node",
        ).response()
    requests = _Requests(call.request.content)
    try:
        first = await asyncio.wait_for(requests.next(), call.body_timeout_s)
        request = wire.watch_request(first) if first is not None else None
    except wire.WireError as exc:
        return EtcdError.invalid(str(exc)).response()
    except TimeoutError:
        return EtcdError.invalid(
            f"no WatchRequest arrived within {call.body_timeout_s:g} s", "body_timeout"
        ).response()
    if first is None:
        return EtcdError.invalid(
            'the body holds no WatchRequest: send {"create_request": {"key": ...}}'
        ).response()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(call.request)
    transport = call.request.transport

    async def write_lines(lines: list[bytes]) -> None:
        # One line, one write: one HTTP chunk (clients such as etcd3gw parse chunk by chunk).
        for line in lines:
            await response.write(line + b"\n")

    stream = _EtcdWatchStream(
        call, write_lines, lambda: transport is not None and not transport.is_closing()
    )
    if request is not None:
        stream.handle(request)
    reader = asyncio.create_task(_read_requests(stream, requests))
    try:
        ended = await stream.stream.run()
    finally:
        reader.cancel()
    if ended == "stalled" and call.request.transport is not None:
        call.request.transport.close()  # the client reads nothing: let its connection go
    return response


async def watch_websocket(call: Call) -> web.StreamResponse:
    """GET /v3/watch with a WebSocket upgrade, as etcd's gateway serves it (its wsproxy): each
    text message the client sends is a WatchRequest, each one the node sends a
    `{"result": WatchResponse}`; the watches live as long as the socket."""
    node = call.node
    if node.watches is None:
        return EtcdError(
            GrpcCode.UNAVAILABLE,
            "etcdserver: server stopped",
            error="damaged",
            detail=f"node {node.node_id} is damaged and serves no watches; use another node",
        ).response()
    socket = web.WebSocketResponse(max_msg_size=request_bytes_max)
    if not socket.can_prepare(call.request).ok:
        return EtcdError.invalid(
            "GET /v3/watch is a WebSocket (send a WebSocket upgrade); or POST the WatchRequests"
        ).response()
    await socket.prepare(call.request)

    async def write_lines(lines: list[bytes]) -> None:
        await websocket.send_text_frames(socket, call.request.transport, lines)

    stream = _EtcdWatchStream(call, write_lines, lambda: not socket.closed)
    pump = asyncio.create_task(stream.stream.run())
    try:
        async for message in socket:
            if message.type != web.WSMsgType.TEXT:
                continue
            try:
                request = wire.watch_request(json.loads(message.data))
            except wire.WireError as exc:
                stream.stream.post(_stream_error(GrpcCode.INVALID_ARGUMENT, f"paxosd: {exc}"))
                continue
            except ValueError as exc:
                reason = f"paxosd: WatchRequest: not JSON: {exc}"
                stream.stream.post(_stream_error(GrpcCode.INVALID_ARGUMENT, reason))
                continue
            if request is not None:
                stream.handle(request)
    finally:
        pump.cancel()
        stream.stream.close()
    return socket


async def _read_requests(stream: _EtcdWatchStream, requests: _Requests) -> None:
    """The rest of the body: more requests, until it ends (then the stream may finish)."""
    try:
        while True:
            document = await requests.next()
            if document is None:
                break
            request = wire.watch_request(document)
            if request is not None:
                stream.handle(request)
    except wire.WireError as exc:
        stream.stream.post(_stream_error(GrpcCode.INVALID_ARGUMENT, f"paxosd: {exc}"))
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("reading a /v3/watch body failed")
    stream.stream.finish()
