"""A node's key-value store and watch hub without the engine: requests applied in order, their
events handed to the hub as the driver hands them, and a client that reads a watcher's
stream into a `paxosd.check.watches.Stream` for the checker."""

from __future__ import annotations

from typing import Any

from paxosd.check.watches import Change, Reference, Session, Stream, change_of
from paxosd.service.kv.machine import KvMachine
from paxosd.service.kv.types import Compact, DeleteRange, Put, Txn
from paxosd.watch import (
    Cancelled,
    Created,
    EventLog,
    Events,
    Filter,
    Progress,
    StoreHistory,
    Watcher,
    WatchHub,
    WatchOptions,
    WatchRequest,
)


class Node:
    """One node's store and hub. `log` records every event applied (the reference)."""

    def __init__(self, options: WatchOptions | None = None, machine: KvMachine | None = None):
        self.machine = machine or KvMachine()
        self.history = StoreHistory(self.machine.store)
        self.hub = WatchHub(lambda: self.history, options)
        self.log = EventLog()
        self.compactions: list[int] = []

    def apply(self, op: Any) -> Any:
        handler = self.machine.handlers()[type(op)]
        answer = handler(op)
        events = self.machine.take_events()
        self.log.append(events)
        if isinstance(op, Compact) and self.machine.store.compact_revision == op.revision:
            self.compactions.append(op.revision)
        self.hub.applied(events)
        return answer

    def put(self, key: bytes, value: bytes = b"v") -> int:
        answer = self.apply(Put(key=key, value=value))
        return int(answer.revision)

    def delete(self, key: bytes, range_end: bytes = b"") -> Any:
        return self.apply(DeleteRange(key=key, range_end=range_end))

    def txn(self, *ops: Any) -> Any:
        return self.apply(Txn(success=ops))

    def compact(self, revision: int | None = None) -> None:
        self.apply(Compact(revision=revision or self.machine.store.revision))

    @property
    def revision(self) -> int:
        return self.machine.store.revision

    def reference(self) -> Reference:
        return Reference([change_of(e) for e in self.log.events], self.compactions)


def item_of(item: Any) -> tuple[Any, ...]:
    """A hub item as the checker's tuple."""
    if isinstance(item, Created):
        return ("created", item.start_revision)
    if isinstance(item, Events):
        return ("events", item.revision, [change_of(e) for e in item.events], item.fragment)
    if isinstance(item, Progress):
        return ("progress", item.revision)
    assert isinstance(item, Cancelled)
    return ("cancelled", item.reason.value, item.resume_revision, item.compact_revision)


class Client:
    """A client's watch over time, on one node or another."""

    def __init__(self, name: str, request: WatchRequest) -> None:
        self.request = request
        self.session = Session(name)
        self.watcher: Watcher | None = None
        self.node: Node | None = None
        self.last = 0  # the last revision promised to it
        self.cancelled: Cancelled | None = None

    def open(self, node: Node, start: int | None = None) -> Watcher:
        if self.watcher is not None and self.node is not None:
            self.node.hub.close(self.watcher)
        request = self.request
        if start is not None:
            request = WatchRequest(
                key=request.key,
                range_end=request.range_end,
                start_revision=start,
                prev_kv=request.prev_kv,
                filters=request.filters,
                progress_notify=request.progress_notify,
                fragment=request.fragment,
            )
        self.node = node
        self.watcher = node.hub.watch(request)
        self.cancelled = None
        self.session.streams.append(
            Stream(
                node=id(node) % 1000,
                key=request.key,
                range_end=request.range_end,
                start_revision=request.start_revision,
                prev_kv=request.prev_kv,
                no_put=Filter.NOPUT in request.filters,
                no_delete=Filter.NODELETE in request.filters,
            )
        )
        return self.watcher

    def read(self) -> list[Any]:
        assert self.node is not None and self.watcher is not None
        items = self.node.hub.take(self.watcher)
        stream = self.session.streams[-1]
        for item in items:
            stream.items.append(item_of(item))
            if isinstance(item, (Events, Progress)):
                self.last = max(self.last, item.revision)
            elif isinstance(item, Created):
                self.last = max(self.last, item.start_revision - 1)
            elif isinstance(item, Cancelled):
                self.cancelled = item
                self.last = item.resume_revision - 1
        return items

    def resume(self, node: Node) -> Watcher:
        """Reconnect (to `node`) from the revision after the last one promised."""
        return self.open(node, self.last + 1)

    def events(self) -> list[Change]:
        return [
            change
            for stream in self.session.streams
            for item in stream.items
            if item[0] == "events"
            for change in item[2]
        ]


class Cluster:
    """Nodes that apply the same requests; `lagging` ones only when `catch_up` is called."""

    def __init__(self, count: int = 2, options: WatchOptions | None = None) -> None:
        self.nodes = [Node(options) for _ in range(count)]
        self.backlog: dict[int, list[Any]] = {i: [] for i in range(count)}
        self.lagging: set[int] = set()

    def apply(self, op: Any) -> Any:
        answer = None
        for i, node in enumerate(self.nodes):
            if i in self.lagging:
                self.backlog[i].append(op)
            else:
                answer = node.apply(op)
        return answer

    def catch_up(self, i: int) -> None:
        for op in self.backlog[i]:
            self.nodes[i].apply(op)
        self.backlog[i].clear()

    def reference(self) -> Reference:
        leader = next(i for i in range(len(self.nodes)) if i not in self.lagging)
        return self.nodes[leader].reference()
