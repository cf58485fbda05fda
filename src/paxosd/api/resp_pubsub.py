"""Redis keyspace notifications over RESP: SUBSCRIBE and PSUBSCRIBE to paxosd's changes.

Theory of operation. Redis announces a change of a key on two channels (its "keyspace
notifications"): `__keyspace@0__:<key>` with the event's name as the message, and
`__keyevent@0__:<event>` with the key as the message. paxosd publishes exactly those for
every change of its key-value store, whatever interface made it: the event `set` for a put,
`del` for a delete, in revision order - always, without `notify-keyspace-events` (CONFIG GET
reports "KEg$"). Each subscription is a watch of the node's watch hub from the next revision:

* `SUBSCRIBE __keyspace@0__:<key>` watches that key; `SUBSCRIBE __keyevent@0__:set` (or
  `:del`) every key, without the other kind of change;
* `PSUBSCRIBE <pattern>` (Redis glob: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\\x`) watches the
  keys the pattern's literal head allows (`__keyspace@0__:config/*` the prefix `config/`, a
  pattern that may match any key every key) and sends what matches, as `pmessage`;
* UNSUBSCRIBE / PUNSUBSCRIBE end them (all of them without arguments); in RESP2 a
  subscribed connection accepts only those, PING, QUIT and RESET, as Redis does.

Like Redis's pub/sub, delivery is at most once: a message sent while a client is not
connected is lost, and a subscriber that does not read (its watch's queue reaches its bound,
or its connection's writes stay blocked for the hub's `stall_ms`) is disconnected, as Redis
does with its pubsub output-buffer limit. Other channels refuse with an error naming the
channels paxosd publishes: paxosd has no PUBLISH. Clients that need every change exactly once
across reconnects use /v1/watch, the etcd API's watch or the Python client's watch.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from paxosd.service.kv.types import EventType, prefix_end
from paxosd.watch import (
    Cancelled,
    Events,
    Filter,
    Item,
    Watcher,
    WatchHub,
    WatchRequest,
    WatchRequestError,
)

# The connection (resp.RespProtocol, seen through resp_commands.Connection): Any here, so that
# the command table can import this module.
Connection = Any

__all__ = ["PUBSUB_COMMANDS", "PubSub", "allowed_while_subscribed", "glob_regex"]

KEYSPACE: Final = b"__keyspace@0__:"
KEYEVENT: Final = b"__keyevent@0__:"
EVENT_NAMES: Final = {EventType.PUT: b"set", EventType.DELETE: b"del"}
# What a subscribed RESP2 connection may still run (Redis's rule).
_SUBSCRIBED_COMMANDS: Final = frozenset(
    {"SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PING", "QUIT", "RESET"}
)
# Subscriptions one connection may hold.
subscriptions_max: Final = 1000
ERR_CHANNEL: Final = (
    "ERR paxosd publishes only keyspace notifications: __keyspace@0__:<key> (message: set or "
    "del) and __keyevent@0__:set or __keyevent@0__:del (message: the key); it has no PUBLISH"
)


def allowed_while_subscribed(name: str) -> bool:
    return name.upper() in _SUBSCRIBED_COMMANDS


def glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    """Redis's glob (stringmatchlen) as a regular expression over the whole channel."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        elif c == b"[":
            j = i + 1
            negate = j < n and pattern[j : j + 1] == b"^"
            if negate:
                j += 1
            members = []
            while j < n and pattern[j : j + 1] != b"]":
                if pattern[j : j + 1] == b"\\" and j + 1 < n:
                    j += 1
                    members.append(re.escape(pattern[j : j + 1]))
                elif (
                    j + 2 < n and pattern[j + 1 : j + 2] == b"-" and pattern[j + 2 : j + 3] != b"]"
                ):
                    low, high = sorted((pattern[j : j + 1], pattern[j + 2 : j + 3]))
                    members.append(re.escape(low) + b"-" + re.escape(high))
                    j += 2
                else:
                    members.append(re.escape(pattern[j : j + 1]))
                j += 1
            out.append(b"[" + (b"^" if negate else b"") + b"".join(members) + b"]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"(?s:" + b"".join(out) + b")\\Z")


def _literal_head(pattern: bytes) -> bytes:
    """The pattern's characters before its first special one."""
    for i, byte in enumerate(pattern):
        if byte in b"*?[\\":
            return pattern[:i]
    return pattern


@dataclass(slots=True)
class _Subscription:
    name: bytes  # the channel or pattern, as subscribed
    pattern: re.Pattern[bytes] | None  # None: a channel
    keyspace: bool  # it can match keyspace channels
    keyevent: bool  # it can match keyevent channels
    watcher: Watcher


class PubSub:
    """The subscriptions of one RESP connection (module docstring)."""

    def __init__(self, conn: Any, hub: WatchHub, push: Callable[[bytes], None]) -> None:
        self.conn = conn
        self.hub = hub
        self._push = push
        self.channels: dict[bytes, _Subscription] = {}
        self.patterns: dict[bytes, _Subscription] = {}
        self._by_watcher: dict[int, _Subscription] = {}
        self._ready: dict[int, Watcher] = {}
        self._scheduled = False
        self.paused = False
        self._stall: asyncio.TimerHandle | None = None

    @property
    def count(self) -> int:
        return len(self.channels) + len(self.patterns)

    # -- subscribing ------------------------------------------------------------------------

    def subscribe(self, name: bytes, pattern: bool) -> str | None:
        """Subscribe to a channel or a pattern; None, or why it cannot be."""
        table = self.patterns if pattern else self.channels
        if name in table:
            return None
        if self.count >= subscriptions_max:
            return f"ERR a connection holds at most {subscriptions_max} subscriptions"
        planned = _plan(name, pattern)
        if planned is None:
            return ERR_CHANNEL
        request, keyspace, keyevent = planned
        try:
            watcher = self.hub.watch(request, self._wake)
        except WatchRequestError as exc:
            return f"ERR {exc}"
        regex = glob_regex(name) if pattern else None
        subscription = _Subscription(name, regex, keyspace, keyevent, watcher)
        table[name] = subscription
        self._by_watcher[watcher.id] = subscription
        return None

    def unsubscribe(self, name: bytes, pattern: bool) -> None:
        table = self.patterns if pattern else self.channels
        subscription = table.pop(name, None)
        if subscription is not None:
            self._forget(subscription)

    def _forget(self, subscription: _Subscription) -> None:
        self._by_watcher.pop(subscription.watcher.id, None)
        self._ready.pop(subscription.watcher.id, None)
        self.hub.close(subscription.watcher)

    def close(self) -> None:
        """The connection is gone (or RESET): every subscription ends."""
        for subscription in [*self.channels.values(), *self.patterns.values()]:
            self._forget(subscription)
        self.channels.clear()
        self.patterns.clear()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    # -- delivering -------------------------------------------------------------------------

    def _wake(self, watcher: Watcher) -> None:
        self._ready[watcher.id] = watcher
        if not self._scheduled and not self.paused:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.deliver)

    def deliver(self) -> None:
        """Send what the woken subscriptions' watches hold."""
        self._scheduled = False
        while self._ready and not self.paused:
            _, watcher = self._ready.popitem()
            subscription = self._by_watcher.get(watcher.id)
            if subscription is None:
                continue
            for item in self.hub.take(watcher):
                if not self._send(subscription, item):
                    return

    def _send(self, subscription: _Subscription, item: Item) -> bool:
        if type(item) is Events:
            resp3 = self.conn.resp3
            for event in item.events:
                key = event.kv.key
                name = EVENT_NAMES[event.type]
                for channel, message in (
                    (KEYSPACE + key, name) if subscription.keyspace else (b"", b""),
                    (KEYEVENT + name, key) if subscription.keyevent else (b"", b""),
                ):
                    if not channel:
                        continue
                    regex = subscription.pattern
                    if regex is None:
                        if channel == subscription.name:
                            self._push(_message(resp3, channel, message))
                    elif regex.match(channel):
                        self._push(_pmessage(resp3, subscription.name, channel, message))
            return True
        if type(item) is Cancelled:
            # A subscriber too slow for its queue, or a node shutting down: disconnect it, as
            # Redis disconnects a pubsub client over its output-buffer limit.
            self.conn.abort()
            return False
        return True  # created, progress: nothing to tell a Redis client

    def writing_paused(self) -> None:
        """The client is not reading: stop taking from the hub; cut it off after a while."""
        self.paused = True
        if self._stall is None and self.count:
            delay = self.hub.options.stall_ms / 1000
            self._stall = asyncio.get_running_loop().call_later(delay, self.conn.abort)

    def writing_resumed(self) -> None:
        self.paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self._ready and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.deliver)


def _plan(name: bytes, pattern: bool) -> tuple[WatchRequest, bool, bool] | None:
    """The watch a channel or pattern needs, and which channel families it can match."""
    if not pattern:
        if name.startswith(KEYSPACE) and len(name) > len(KEYSPACE):
            return WatchRequest(key=name[len(KEYSPACE) :]), True, False
        if name == KEYEVENT + b"set":
            return _every_key(frozenset({Filter.NODELETE})), False, True
        if name == KEYEVENT + b"del":
            return _every_key(frozenset({Filter.NOPUT})), False, True
        return None
    head = _literal_head(name)
    keyspace = head.startswith(KEYSPACE) or KEYSPACE.startswith(head)
    keyevent = head.startswith(KEYEVENT) or KEYEVENT.startswith(head)
    if not keyspace and not keyevent:
        return None
    if keyspace and not keyevent and len(head) > len(KEYSPACE):
        prefix = head[len(KEYSPACE) :]
        return WatchRequest(key=prefix, range_end=prefix_end(prefix)), True, False
    return _every_key(frozenset()), keyspace, keyevent


def _every_key(filters: frozenset[Filter]) -> WatchRequest:
    return WatchRequest(key=b"\0", range_end=b"\0", filters=filters)


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _message(resp3: bool, channel: bytes, message: bytes) -> bytes:
    return (b">3\r\n" if resp3 else b"*3\r\n") + _bulk(b"message") + _bulk(channel) + _bulk(message)


def _pmessage(resp3: bool, pattern: bytes, channel: bytes, message: bytes) -> bytes:
    head = b">4\r\n" if resp3 else b"*4\r\n"
    return head + _bulk(b"pmessage") + _bulk(pattern) + _bulk(channel) + _bulk(message)


def _confirmation(resp3: bool, kind: bytes, name: bytes | None, count: int) -> bytes:
    head = b">3\r\n" if resp3 else b"*3\r\n"
    shown = (b"_\r\n" if resp3 else b"$-1\r\n") if name is None else _bulk(name)
    return head + _bulk(kind) + shown + b":%d\r\n" % count


# -- the commands ------------------------------------------------------------------------------


def _pubsub(conn: Connection) -> PubSub | None:
    """The connection's subscriptions (made at the first subscribe); None if the node serves
    no watches (damaged)."""
    state: PubSub | None = conn.pubsub
    if state is None:
        hub = conn.node.watches
        if hub is None:
            return None
        state = conn.pubsub = PubSub(conn, hub, conn.push)
    return state


def _subscribe(conn: Connection, args: list[str], pattern: bool) -> None:
    state = _pubsub(conn)
    if state is None:
        conn.reply(b"-ERR this node is damaged and publishes nothing; use another node\r\n")
        return
    kind = b"psubscribe" if pattern else b"subscribe"
    out = []
    for text in args[1:]:
        name = text.encode()
        refusal = state.subscribe(name, pattern)
        if refusal is not None:
            out.append(b"-" + refusal.encode() + b"\r\n")
            continue
        out.append(_confirmation(conn.resp3, kind, name, state.count))
    conn.reply(b"".join(out))


def _unsubscribe(conn: Connection, args: list[str], pattern: bool) -> None:
    state = conn.pubsub
    kind = b"punsubscribe" if pattern else b"unsubscribe"
    if state is None:
        names: list[bytes] = [text.encode() for text in args[1:]]
    else:
        table = state.patterns if pattern else state.channels
        names = [text.encode() for text in args[1:]] or list(table)
    if not names:
        conn.reply(_confirmation(conn.resp3, kind, None, state.count if state else 0))
        return
    out = []
    for name in names:
        if state is not None:
            state.unsubscribe(name, pattern)
        out.append(_confirmation(conn.resp3, kind, name, state.count if state else 0))
    conn.reply(b"".join(out))


def cmd_subscribe(conn: Connection, args: list[str]) -> None:
    _subscribe(conn, args, pattern=False)


def cmd_psubscribe(conn: Connection, args: list[str]) -> None:
    _subscribe(conn, args, pattern=True)


def cmd_unsubscribe(conn: Connection, args: list[str]) -> None:
    _unsubscribe(conn, args, pattern=False)


def cmd_punsubscribe(conn: Connection, args: list[str]) -> None:
    _unsubscribe(conn, args, pattern=True)


def cmd_publish(conn: Connection, args: list[str]) -> None:
    conn.reply(b"-" + ERR_CHANNEL.encode() + b"\r\n")


PUBSUB_COMMANDS: Final[dict[str, tuple[Any, int]]] = {
    "SUBSCRIBE": (cmd_subscribe, -2),
    "PSUBSCRIBE": (cmd_psubscribe, -2),
    "UNSUBSCRIBE": (cmd_unsubscribe, -1),
    "PUNSUBSCRIBE": (cmd_punsubscribe, -1),
    "PUBLISH": (cmd_publish, 3),
}
