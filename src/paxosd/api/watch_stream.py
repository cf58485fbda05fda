"""One client connection's watches and the task that writes their streams to it.

Theory of operation. The node's watch hub (paxosd.watch) keeps each watcher's items in a
bounded queue and calls `wake` when one arrives; the interfaces (etcd's /v3/watch, /v1's
Server-Sent Events, RESP's SUBSCRIBE) each own a `WatchStream` per connection, which takes
the woken watchers' items and hands them to the interface's `send` (which renders and writes
them), in the order they woke, many watchers at a time: a write to a key watched by a
thousand watchers of one stream is a thousand responses, and the interface renders the
revision once for all of them and writes them together (one write per batch, not one per
watcher; batches of at most `batch_bytes` of queued items, so that the rendered lines held at
once stay bounded whatever the number of watchers). The hub's items are the same for every
interface; what they become on the wire is each interface's `send` alone (etcd's JSON
WatchResponse per watch id here; a gRPC stream's WatchResponse, also per watch id, would
render a revision's events once per batch the same way). The hub never waits for a connection:
a client that does not read fills its socket, then its watcher's queue, and the hub cancels
that watcher (its queue's bound); a write that stays blocked for the hub's `stall_ms` closes
the connection, so a client that never reads costs at most its queue and one socket buffer.

The stream ends when its connection is gone (a write fails, or the transport closes: checked
every `check_s` while idle, when the interface may also write something to keep proxies from
closing an idle connection: `idle`) or when the interface says so (`finish`), and then every watcher
it still holds is closed in the hub.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias

from paxosd.watch import Item, Watcher, WatchHub, WatchRequest

__all__ = ["Batch", "WatchStream", "batch_bytes", "check_s"]

log = logging.getLogger("paxosd.api.watch")

# How often an idle stream checks that its connection is still there.
check_s: Final = 5.0
# One `send` takes the items of watchers whose queues held at most this much together (and
# at least one watcher's, however large).
batch_bytes: Final = 256 * 1024

# Watchers and the items taken from their queues, in the order they woke.
Batch: TypeAlias = list[tuple[Watcher, list[Item]]]


class WatchStream:
    """The watchers of one connection (module docstring). `send(batch)` writes the items of
    the batch's watchers, in its order; `alive()` says whether the connection is still open."""

    def __init__(
        self,
        hub: WatchHub,
        send: Callable[[Batch], Awaitable[None]],
        alive: Callable[[], bool],
        *,
        post: Callable[[Any], Awaitable[None]] | None = None,
        idle: Callable[[], Awaitable[None]] | None = None,
        check_s: float = check_s,
    ) -> None:
        self.hub = hub
        self._send = send
        self._post = post
        self._idle = idle
        self._posts: list[Any] = []
        self._alive = alive
        self._stall_s = hub.options.stall_ms / 1000
        self._check_s = check_s
        self.watchers: dict[int, Watcher] = {}
        self._ready: dict[int, Watcher] = {}
        self._woken = asyncio.Event()
        self._finishing = False
        self.ended: str | None = None  # why the stream ended, once it has

    def watch(self, request: WatchRequest) -> Watcher:
        """A new watcher on this stream (raises WatchRequestError, see WatchHub.watch)."""
        watcher = self.hub.watch(request, self._wake)
        self.watchers[watcher.id] = watcher
        self._wake(watcher)
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        self.hub.cancel(watcher)

    def post(self, message: Any) -> None:
        """Something of the interface's own to write, in order with the watchers' items
        (the stream's `post` writes it)."""
        assert self._post is not None
        self._posts.append(message)
        self._woken.set()

    def finish(self) -> None:
        """End the stream once every watcher's items are written and none is left open."""
        self._finishing = True
        self._woken.set()

    def _wake(self, watcher: Watcher) -> None:
        self._ready[watcher.id] = watcher
        self._woken.set()

    async def run(self) -> str:
        """Write until the stream ends; why it ended ("finished", "gone" or "stalled")."""
        try:
            self.ended = await self._pump()
        finally:
            self.close()
        return self.ended

    async def _pump(self) -> str:
        hub = self.hub
        while True:
            if self._posts:
                assert self._post is not None
                message = self._posts.pop(0)
                try:
                    await asyncio.wait_for(self._post(message), self._stall_s)
                except TimeoutError:
                    return "stalled"
                except (ConnectionError, RuntimeError) as exc:
                    log.debug("watch stream write failed: %s", exc)
                    return "gone"
                continue
            if not self._ready:
                if self._finishing and all(w.done for w in self.watchers.values()):
                    return "finished"
                try:
                    await asyncio.wait_for(self._woken.wait(), self._check_s)
                except TimeoutError:
                    if not self._alive():
                        return "gone"
                    if self._idle is not None:
                        try:
                            await asyncio.wait_for(self._idle(), self._stall_s)
                        except TimeoutError:
                            return "stalled"
                        except (ConnectionError, RuntimeError):
                            return "gone"
                    continue
                self._woken.clear()
                continue
            ready = list(self._ready.values())
            self._ready.clear()
            start = 0
            while start < len(ready):
                # A batch: watchers while their queues hold at most batch_bytes together.
                end, size = start, 0
                while end < len(ready) and (end == start or size < batch_bytes):
                    size += ready[end].queued_bytes
                    end += 1
                taken = ready[start:end]
                start = end
                batch: Batch = []
                for watcher in taken:
                    items = hub.take(watcher)
                    if items:
                        batch.append((watcher, items))
                if batch:
                    try:
                        await asyncio.wait_for(self._send(batch), self._stall_s)
                    except TimeoutError:
                        return "stalled"
                    except (ConnectionError, RuntimeError) as exc:
                        log.debug("watch stream write failed: %s", exc)
                        return "gone"
                for watcher in taken:
                    if watcher.done and not watcher.pending:
                        self.watchers.pop(watcher.id, None)
                        hub.close(watcher)

    def close(self) -> None:
        """Forget every watcher of this stream in the hub."""
        for watcher in self.watchers.values():
            self.hub.close(watcher)
        self.watchers.clear()
        self._ready.clear()
