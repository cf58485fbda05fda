"""`GET /v1/watch`: a watch as Server-Sent Events, for browsers (EventSource) and `curl -N`.

Theory of operation. The query names the keys as every /v1 range does (`key`, `prefix`, or
`start` with an optional `end`) and the watch's options (`start_revision`, `prev_kv`,
`filters=noput,nodelete`, `progress_notify`). The answer is `text/event-stream`, one event
per message, in the stream's order:

    event: created                      the watch exists; data: {watch_id, revision,
    retry: 1000                         start_revision}
    data: {...}

    id: 7                               every change of one revision, in key order
    data: {"revision": 7, "events": [{"type": "put", "key": ..., "value": ..., ...}]}

    id: 9                               everything up to revision 9 was delivered
    event: progress
    data: {"revision": 9}

    event: cancelled                    the watch ended; data: {reason, message,
    data: {...}                         resume_revision, compact_revision}

Each message's `id` is a revision up to which everything was delivered, so a browser's
EventSource, reconnecting on its own, sends it back as `Last-Event-ID` and the watch resumes
from the next revision, on whichever node answers, with nothing lost or repeated. A
cancellation for a slow client or a node shutting down carries the id of its resume point
too. A "compacted" cancellation does not: the client must re-list and watch again (a
reconnect that finds its revision compacted is answered 204, which stops an EventSource's
reconnecting). Values are shown as on the rest of /v1: `value` for JSON text, `value_base64`
otherwise; `prev` (with `prev_kv`) is the key before the change.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from paxosd.service.kv.types import Event, EventType
from paxosd.watch import (
    Cancelled,
    CancelReason,
    Created,
    Events,
    Item,
    Progress,
    Watcher,
    WatchRequestError,
)

from . import kv_json
from .calls import Call
from .failures import ApiError
from .schema import BAD_REQUEST
from .watch_stream import Batch, WatchStream

__all__ = ["change_json", "watch"]

# How long an EventSource waits before it reconnects, in milliseconds.
reconnect_ms: Final = 1000
# A comment line sent on an idle stream this often keeps proxies from closing it.
keepalive_s: Final = 15.0


def change_json(event: Event, prev_kv: bool) -> dict[str, Any]:
    """One change as /v1 shows it."""
    kv = event.kv
    if event.type == EventType.DELETE:
        out: dict[str, Any] = {"type": "delete", **kv_json.shown_key(kv.key)}
        out["mod_revision"] = kv.mod_revision
    else:
        out = {"type": "put", **kv_json.key_value(kv)}
    if prev_kv and event.prev_kv is not None:
        out["prev"] = kv_json.key_value(event.prev_kv)
    return out


def _message(data: dict[str, Any], *, event: str | None = None, id_: int | None = None) -> bytes:
    lines = []
    if id_ is not None:
        lines.append(f"id: {id_}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def render(watcher: Watcher, item: Item) -> bytes:
    """One item of a watch's stream as Server-Sent Events (module docstring)."""
    prev_kv = watcher.request.prev_kv
    if type(item) is Events:
        out = []
        # One message per revision: an EventSource remembers the id of each message, so a
        # revision split over two could be resumed from its middle.
        group: list[dict[str, Any]] = []
        revision = 0
        for event in item.events:
            if group and event.kv.mod_revision != revision:
                out.append(_message({"revision": revision, "events": group}, id_=revision))
                group = []
            revision = event.kv.mod_revision
            group.append(change_json(event, prev_kv))
        if group:
            out.append(_message({"revision": revision, "events": group}, id_=item.revision))
        return b"".join(out)
    if type(item) is Progress:
        return _message({"revision": item.revision}, event="progress", id_=item.revision)
    if type(item) is Created:
        created: dict[str, Any] = {
            "watch_id": item.watch_id,
            "revision": item.revision,
            "start_revision": item.start_revision,
        }
        return f"retry: {reconnect_ms}\n".encode() + _message(created, event="created")
    assert isinstance(item, Cancelled)
    data: dict[str, Any] = {
        "reason": item.reason.value,
        "message": item.detail,
        "resume_revision": item.resume_revision,
        "compact_revision": item.compact_revision,
    }
    resumable = item.reason is not CancelReason.COMPACTED
    resume_id = item.resume_revision - 1 if resumable and item.resume_revision > 1 else None
    return _message(data, event="cancelled", id_=resume_id)


async def watch(call: Call) -> web.StreamResponse:
    """GET /v1/watch (module docstring)."""
    node = call.node
    hub = node.watches
    if hub is None:
        raise ApiError(503, "damaged", f"node {node.node_id} is damaged and serves no watches")
    request = call.request
    resuming = request.headers.get("Last-Event-ID")
    try:
        wanted = kv_json.watch_from_query(request.query, resuming)
    except kv_json.KvJsonError as exc:
        raise ApiError(400, BAD_REQUEST, str(exc), field=exc.field) from None
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # proxies: pass each event on at once
        }
    )
    transport = request.transport

    async def send(batch: Batch) -> None:
        await response.write(
            b"".join(render(watcher, item) for watcher, items in batch for item in items)
        )

    async def keepalive() -> None:
        await response.write(b": keepalive\n\n")

    stream = WatchStream(
        hub,
        send,
        lambda: transport is not None and not transport.is_closing(),
        idle=keepalive,
        check_s=keepalive_s,
    )
    try:
        watcher = stream.watch(wanted)
    except WatchRequestError as exc:
        raise ApiError(400, BAD_REQUEST, f"watch: {exc}", field=exc.field) from None
    if resuming is not None and _compacted_at_once(watcher):
        stream.close()
        return web.Response(status=204)  # an EventSource stops reconnecting on a 204
    await response.prepare(request)
    stream.finish()  # one watch: the stream ends with it
    ended = await stream.run()
    if ended == "stalled" and transport is not None:
        transport.close()
    return response


def _compacted_at_once(watcher: Watcher) -> bool:
    queue = watcher.queue
    if not queue:
        return False
    last = queue[-1][0]
    return isinstance(last, Cancelled) and last.reason is CancelReason.COMPACTED and len(queue) == 2
