"""Watches in the Python clients: every change, in order, resumed on another node after a
failure - without I/O (the sync and async clients own the connections).

Theory of operation. A watch reads `GET /v1/watch` (Server-Sent Events, docs/http-api.md) from
one node. Every message's id is a revision up to which the node delivered everything, and
`WatchState.revision` keeps the last one; when the connection fails, the node stops, or the
node cancels the watch because its client was slow, the watch connects again - to the next
endpoint, after a jittered backoff - asking for `revision + 1`, so it gets nothing twice and
misses nothing. The retry policy is bounded: `retries_max` failed connections in a row (no
`created` in between) end the watch with `Unavailable`.

Two things end a watch for good: a "compacted" cancellation (the history it needs is gone:
`WatchCompacted` says at which revision to re-list), and a request the cluster refuses
(`BadRequest`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .core import BadRequest, KeyValue, RevisionCompacted, Unavailable
from .kv import selector, to_key_value

__all__ = ["WatchCompacted", "WatchEvent", "WatchState", "retries_max_default"]

retries_max_default = 10
backoff_s_min = 0.05
backoff_s_max = 2.0
# A node sends something (a keepalive comment at least) every 15 s; silence for longer than
# this means the connection or the node is gone.
read_timeout_s = 45.0


class WatchCompacted(RevisionCompacted):
    """The history the watch needs was compacted: re-list the keys at `compact_revision` or
    later, then watch from the revision after the list."""

    def __init__(self, message: str, compact_revision: int, revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision
        self.revision = revision  # the last revision the watch delivered everything up to


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: `type` "put" or "delete", the key, its new value (None for a delete),
    the revision of the change, the key after it (`kv`, None for a delete) and, if the watch
    asked for `prev_kv`, the key before it (`prev`, None if it did not exist)."""

    type: str
    key: str
    value: Any
    revision: int
    kv: KeyValue | None = None
    prev: KeyValue | None = None


@dataclass(slots=True)
class WatchState:
    """One watch across its connections (module docstring)."""

    endpoints: list[str]
    keys: dict[str, str]
    start_revision: int = 0
    prev_kv: bool = False
    filters: tuple[str, ...] = ()
    progress_notify: bool = False
    retries_max: int = retries_max_default
    rng: random.Random = field(default_factory=random.Random)
    revision: int = 0  # everything up to here was delivered (0: nothing yet)
    failures: int = 0  # failed connections in a row
    turn: int = 0
    errors: list[str] = field(default_factory=list)
    node: str | None = None  # the endpoint of the current connection

    @classmethod
    def make(
        cls,
        endpoints: list[str],
        key: str | None,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        progress_notify: bool = False,
        retries_max: int = retries_max_default,
    ) -> WatchState:
        keys = selector(key, prefix=prefix, start=start, end=end)
        if type(start_revision) is not int or start_revision < 0:
            raise BadRequest(
                f"start_revision must be 0 (the next one) or more, not {start_revision!r}"
            )
        if type(retries_max) is not int or retries_max < 1:
            raise BadRequest("retries_max must be a positive integer")
        filters = tuple(name for name, on in (("noput", no_put), ("nodelete", no_delete)) if on)
        state = cls(
            list(endpoints),
            keys,
            start_revision,
            prev_kv,
            filters,
            progress_notify,
            retries_max,
        )
        state.turn = state.rng.randrange(len(endpoints))
        if start_revision:
            state.revision = start_revision - 1
        return state

    def url(self) -> str:
        """Where the next connection goes, asking for what comes after `revision`."""
        self.node = self.endpoints[self.turn % len(self.endpoints)]
        query: dict[str, str] = dict(self.keys)
        if self.revision:
            query["start_revision"] = str(self.revision + 1)
        if self.prev_kv:
            query["prev_kv"] = "true"
        if self.filters:
            query["filters"] = ",".join(self.filters)
        if self.progress_notify:
            query["progress_notify"] = "true"
        return f"{self.node}/v1/watch?{urlencode(query)}"

    def refused(self, status: int, body: bytes) -> float:
        """The node answered the watch request with an error instead of a stream: raises
        the error if it is definite, else how long to wait before trying again."""
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        code = data.get("error", "") if isinstance(data, dict) else ""
        message = data.get("message", "") if isinstance(data, dict) else ""
        if status == 204:  # a reconnect whose revision is compacted
            raise WatchCompacted(
                f"compacted: revision {self.revision + 1} has been compacted; re-list",
                0,
                self.revision,
            )
        if 400 <= status < 500 and status not in (408, 429):
            raise BadRequest(f"{code}: {message}")
        return self.failed(f"{self.node}: {status} {code}: {message}")

    def failed(self, why: str) -> float:
        """A connection failed or ended: how long to wait before the next one (raises
        Unavailable once `retries_max` failed in a row)."""
        self.failures += 1
        self.errors.append(why)
        if self.failures >= self.retries_max:
            detail = "; ".join(self.errors[-3:])
            raise Unavailable(
                f"the watch could not reconnect after {self.failures} attempts "
                f"(last revision delivered: {self.revision}): {detail}"
            )
        self.turn += 1
        base = min(backoff_s_max, backoff_s_min * (2 ** min(self.failures, 8)))
        return base * (0.5 + self.rng.random())

    def message(self, kind: str, data: str) -> list[WatchEvent]:
        """One Server-Sent Event: the changes it carries (raises WatchCompacted when the
        node cancelled the watch as compacted; returns [] for everything else)."""
        try:
            document = json.loads(data)
        except ValueError:
            return []
        if not isinstance(document, dict):
            return []
        if kind == "created":
            # A watch "from the next revision" is pinned to the one the node named, so that a
            # reconnect before the first change does not skip what happened in between.
            self.failures = 0
            start = int(document.get("start_revision", 0))
            if start:
                self.revision = max(self.revision, start - 1)
            return []
        if kind == "progress":
            self.revision = max(self.revision, int(document.get("revision", 0)))
            return []
        if kind == "cancelled":
            reason = document.get("reason")
            if reason == "compacted":
                raise WatchCompacted(
                    f"compacted: {document.get('message', '')}",
                    int(document.get("compact_revision", 0)),
                    self.revision,
                )
            resume = int(document.get("resume_revision", 0))
            if resume:
                self.revision = max(self.revision, resume - 1)
            return []
        revision = int(document.get("revision", 0))
        events = [_event(change, revision) for change in document.get("events", [])]
        self.revision = max(self.revision, revision)
        return events


def _event(change: dict[str, Any], revision: int) -> WatchEvent:
    prev = change.get("prev")
    prev_kv = to_key_value(prev) if isinstance(prev, dict) else None
    if change.get("type") == "delete":
        key = to_key_value({**change, "mod_revision": revision}).key
        return WatchEvent("delete", key, None, revision, None, prev_kv)
    kv = to_key_value(change)
    return WatchEvent("put", kv.key, kv.value, revision, kv, prev_kv)


class EventParser:
    """Server-Sent Events from lines: (event name, data, id) for each message."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def line(self, line: str) -> tuple[str, str] | None:
        if not line:
            if not self._data:
                self._event = "message"
                return None
            message = (self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None
