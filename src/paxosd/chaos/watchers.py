"""Watchers in a chaos run: clients that watch the workload's keys on real nodes (followers
first) through kills, pauses and partitions, recorded stream by stream for the watch checker.

Theory of operation. Each watcher reads `GET /v1/watch` (Server-Sent Events) from one node at
a time, as the Python client does, and records every stream it opens: the start revision it
asked for and every item it received (created, the changes of each revision, progress,
cancellation). When the stream fails - the node is killed, or paused so that nothing arrives
within `read_timeout_s`, or it cancels the watch - the watcher connects to the next node and
asks for the revision after the last one it was promised. A "compacted" cancellation makes it
list its keys again (a linearizable range on any node) and watch from the revision after the
listing. Near the end of the run it asks each node nothing more and simply stops.

After the run, `reference` reads the committed history back from one node (a watch of every
key from revision 2 up to the store's revision), and `check` judges every watcher's streams
against it with paxosd.check.watches, and checks that the history agrees with what the
workload's clients were told: every acknowledged put's value is in it, and it holds no put
of a value no client wrote.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from paxosd.check.history import Event, OpType
from paxosd.check.watches import Change, Reference, Session, Stream, check_session
from paxosd.service.kv.types import prefix_end
from paxosd.service.values import json_text

log = logging.getLogger("paxosd.chaos.watchers")

read_timeout_s = 3.0  # a node that sends nothing (not even a keepalive) this long is left
reconnect_s = (0.05, 0.3)
reference_timeout_s = 60.0
# What the watchers watch: every key, the kv workload's keys ("k..."), and those with the
# previous values.
WATCHES: tuple[tuple[str, bool], ...] = (("", False), ("k", False), ("k", True))


@dataclass
class ChaosWatcher:
    name: str
    endpoints: dict[int, str]
    home: int
    prefix: str
    prev_kv: bool
    rng: random.Random
    session: Session = field(init=False)
    last: int = 0  # the last revision promised (0: none yet)
    streams_failed: int = 0

    def __post_init__(self) -> None:
        self.session = Session(self.name)

    def _selector(self) -> tuple[bytes, bytes]:
        key = self.prefix.encode()
        return (key, prefix_end(key)) if key else (b"\0", b"\0")

    async def run(self, http: httpx.AsyncClient, stopping: asyncio.Event) -> None:
        order = [self.home, *(n for n in sorted(self.endpoints) if n != self.home)]
        turn = 0
        listed: tuple[int, dict[bytes, bytes]] | None = None
        while not stopping.is_set():
            node = order[turn % len(order)]
            start = self.last + 1 if self.last else 0
            outcome = await self._stream(http, node, start, listed, stopping)
            listed = None
            if outcome == "compacted":
                listed = await self._relist(http, order, stopping)
                if listed is not None:
                    self.last = listed[0]
                continue
            if outcome != "stopped":
                self.streams_failed += 1
                turn += 1
                await asyncio.sleep(self.rng.uniform(*reconnect_s))

    async def _stream(
        self,
        http: httpx.AsyncClient,
        node: int,
        start: int,
        listed: tuple[int, dict[bytes, bytes]] | None,
        stopping: asyncio.Event,
    ) -> str:
        key, end = self._selector()
        stream = Stream(node, key, end, start, self.prev_kv, listed=listed)
        self.session.streams.append(stream)
        query = {"prefix": self.prefix}
        if start:
            query["start_revision"] = str(start)
        if self.prev_kv:
            query["prev_kv"] = "true"
        timeout = httpx.Timeout(5.0, read=read_timeout_s)
        try:
            async with http.stream(
                "GET", f"{self.endpoints[node]}/v1/watch", params=query, timeout=timeout
            ) as response:
                if response.status_code == 204:
                    return "compacted"
                if response.status_code != 200:
                    return "refused"
                kind = "message"
                data: list[str] = []
                async for line in response.aiter_lines():
                    if stopping.is_set():
                        return "stopped"
                    if line.startswith("event:"):
                        kind = line.partition(":")[2].strip()
                    elif line.startswith("data:"):
                        data.append(line.partition(":")[2].lstrip())
                    elif not line and data:
                        ended = self._item(stream, kind, json.loads("\n".join(data)))
                        kind, data = "message", []
                        if ended is not None:
                            return ended
        except (httpx.HTTPError, OSError, ValueError) as exc:
            log.debug("%s: stream from node %d ended: %s", self.name, node, exc)
            return "failed"
        return "ended"

    def _item(self, stream: Stream, kind: str, data: dict[str, Any]) -> str | None:
        if kind == "created":
            stream.items.append(("created", data["start_revision"]))
            self.last = max(self.last, data["start_revision"] - 1)
        elif kind == "progress":
            stream.items.append(("progress", data["revision"]))
            self.last = max(self.last, data["revision"])
        elif kind == "cancelled":
            item = ("cancelled", data["reason"], data["resume_revision"], data["compact_revision"])
            stream.items.append(item)
            if data["reason"] == "compacted":
                return "compacted"
            self.last = max(self.last, data["resume_revision"] - 1)
            return "cancelled"
        else:
            revision = data["revision"]
            changes = [_change(c, revision) for c in data["events"]]
            stream.items.append(("events", revision, changes, False))
            self.last = max(self.last, revision)
        return None

    async def _relist(
        self, http: httpx.AsyncClient, order: list[int], stopping: asyncio.Event
    ) -> tuple[int, dict[bytes, bytes]] | None:
        for node in order:
            if stopping.is_set():
                return None
            with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                answer = await http.get(
                    f"{self.endpoints[node]}/v1/kv", params={"prefix": self.prefix}, timeout=5.0
                )
                if answer.status_code == 200:
                    found = answer.json()
                    listing = {_key(kv): _value(kv) for kv in found["kvs"]}
                    return found["revision"], listing
        return None


def _key(document: dict[str, Any]) -> bytes:
    if "key_base64" in document:
        return base64.b64decode(document["key_base64"])
    return str(document["key"]).encode()


def _value(document: dict[str, Any]) -> bytes:
    if "value_base64" in document:
        return base64.b64decode(document["value_base64"])
    return json_text(document.get("value"))


def _change(document: dict[str, Any], revision: int) -> Change:
    """A /v1 change as the checker's Change (values as the bytes the store holds)."""
    prev = document.get("prev")
    previous = None
    if prev is not None:
        previous = (
            _key(prev),
            _value(prev),
            prev["mod_revision"],
            prev["create_revision"],
            prev["version"],
        )
    if document["type"] == "delete":
        return (1, _key(document), b"", revision, 0, 0, previous)
    return (
        0,
        _key(document),
        _value(document),
        revision,
        document["create_revision"],
        document["version"],
        previous,
    )


def make_watchers(
    endpoints: dict[int, str], leader: int | None, rng: random.Random
) -> list[ChaosWatcher]:
    """One watcher per entry of WATCHES, homed on the followers first."""
    followers = [n for n in sorted(endpoints) if n != leader] or sorted(endpoints)
    return [
        ChaosWatcher(
            f"watcher{i}",
            endpoints,
            followers[i % len(followers)],
            prefix,
            prev_kv,
            random.Random(rng.getrandbits(64)),
        )
        for i, (prefix, prev_kv) in enumerate(WATCHES)
    ]


async def reference(endpoints: dict[int, str], http: httpx.AsyncClient) -> Reference | str:
    """The committed history, read back from one node: every change from revision 2 to the
    store's revision (with previous values); or why it could not be read."""
    deadline = time.monotonic() + reference_timeout_s
    errors = []
    for node, url in sorted(endpoints.items()):
        try:
            status = (await http.get(f"{url}/v1/status", timeout=5.0)).json()
            kv = status.get("kv", {})
            revision, compacted = int(kv["revision"]), int(kv["compact_revision"])
            if compacted >= 2:
                return f"the history was compacted to {compacted}: set [kv] limits higher"
            changes: list[Change] = []
            params = {"prefix": "", "start_revision": "2", "prev_kv": "true"}
            timeout = httpx.Timeout(10.0, read=10.0)
            async with http.stream("GET", f"{url}/v1/watch", params=params, timeout=timeout) as r:
                data: list[str] = []
                kind = "message"
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        kind = line.partition(":")[2].strip()
                    elif line.startswith("data:"):
                        data.append(line.partition(":")[2].lstrip())
                    elif not line and data:
                        document = json.loads("\n".join(data))
                        if kind == "message":
                            changes += [
                                _change(c, document["revision"]) for c in document["events"]
                            ]
                            if document["revision"] >= revision:
                                return Reference(changes)
                        kind, data = "message", []
                    if time.monotonic() > deadline:
                        break
            if revision <= 1:
                return Reference([])
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            errors.append(f"node {node}: {exc}")
    return "no node gave the history back: " + "; ".join(errors)


def check(watchers: list[ChaosWatcher], history: Reference | str, events: list[Event]) -> list[str]:
    """Every watcher's streams against the history, and the history against what the
    workload's clients were told."""
    if isinstance(history, str):
        return [f"watch check not made: {history}"]
    problems: list[str] = []
    for watcher in watchers:
        problems += check_session(watcher.session, history)
    problems += _agrees_with_clients(history, events)
    return problems


def _agrees_with_clients(history: Reference, events: list[Event]) -> list[str]:
    """Each acknowledged put (and compare-and-set that swapped) of the kv workload is a put of
    the history, and every put of the history wrote a value some client asked to write to
    that key."""
    committed: dict[bytes, set[bytes]] = {}
    for change in history.changes:
        if change[0] == 0:
            committed.setdefault(change[1], set()).add(change[2])
    invoked: dict[bytes, set[bytes]] = {}
    acknowledged: list[tuple[bytes, bytes]] = []
    for event in events:
        if event.f not in ("put", "cas") or not isinstance(event.key, str):
            continue
        key = event.key.encode()
        written = event.value[1] if event.f == "cas" else event.value
        value = json_text(_thawed(written))
        if event.type == OpType.INVOKE:
            invoked.setdefault(key, set()).add(value)
        elif event.type == OpType.OK:
            acknowledged.append((key, value))
    problems = [
        f"watch history: the acknowledged put of {value!r} to {key!r} is not in the history"
        for key, value in acknowledged
        if value not in committed.get(key, set())
    ]
    for key, values in committed.items():
        if key in invoked:
            for value in values - invoked[key]:
                problems.append(f"watch history: {key!r} = {value!r} was never written by a client")
    return problems[:20]


def _thawed(value: Any) -> Any:
    """A recorded value as it was written (the recorder freezes lists into tuples)."""
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value
