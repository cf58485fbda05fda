"""What a watch asks for, and what its stream carries: etcd v3's watch, field for field.

Theory of operation. A watch names keys (one key, a prefix or a range `[key, range_end)`, by
the key-value store's conventions: types.py `in_range`) and a start revision, and from then
on its stream carries, in order:

* `Created`, first: the watch exists; `revision` is the store's revision at that moment (the
  header revision of etcd's created response);
* `Events`: every change of a watched key from the start revision on (inclusive; 0 means the
  next revision), in revision order, each revision whole (`fragment` splits one only when the
  watch asked for it) - within one revision in key order;
* `Progress`: everything up to `revision` was delivered (sent periodically when asked, on
  request, and before compaction could take an idle watcher's resume point away);
* `Cancelled`, last: no more items; `resume_revision` is the revision a new watch should
  start from to miss nothing (everything before it was delivered), `compact_revision` is set
  when the history it needs is gone (re-list at that revision or later, then watch on).

Every item's `revision` is a promise: every change of the watched keys up to it is in the
stream before the item (or after the Created, at or above the start revision). So a client
that remembers the last revision it saw resumes from the next one, on any node, and gets
nothing twice and misses nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final, TypeAlias

from paxosd.service.codec import key_bytes_max
from paxosd.service.kv.types import Event, EventType

__all__ = [
    "CancelReason",
    "Cancelled",
    "Created",
    "Events",
    "Filter",
    "Item",
    "Progress",
    "WatchRequest",
    "WatchRequestError",
    "check_watch",
    "event_bytes",
]

int64_max: Final = 2**63 - 1
# What one event costs in a queue and on the wire beyond its keys and values (the revisions,
# the JSON or RESP framing): an estimate, used for the byte limits only.
event_overhead_bytes: Final = 96


class Filter(enum.IntEnum):
    """etcd's WatchCreateRequest.FilterType: the events a watch does NOT want."""

    NOPUT = 0
    NODELETE = 1


class CancelReason(enum.Enum):
    """Why a watch ended; the value is the stable code interfaces show."""

    CANCELLED = "cancelled"  # its client asked
    COMPACTED = "compacted"  # the history it needs is gone: re-list, then watch on
    SLOW = "slow"  # its client did not read, and its queue reached its bound
    CLOSING = "closing"  # the node is shutting down
    OVERLOADED = "overloaded"  # the node holds as many watches as it may


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchRequest:
    """A watch (etcd's WatchCreateRequest): `key` alone is one key; with `range_end`, the
    range `[key, range_end)` (b"\\0": every key from `key` on). `start_revision` is inclusive,
    0 meaning the next revision; a past one replays the history still held, a future one
    waits for it. `prev_kv` adds each key's previous version to its events; `filters` drop
    puts or deletes; `progress_notify` asks for periodic progress notifications; `fragment`
    lets one revision larger than a response be split over several."""

    key: bytes
    range_end: bytes = b""
    start_revision: int = 0
    prev_kv: bool = False
    filters: frozenset[Filter] = frozenset()
    progress_notify: bool = False
    fragment: bool = False

    def wants(self, kind: EventType) -> bool:
        if kind == EventType.PUT:
            return Filter.NOPUT not in self.filters
        return Filter.NODELETE not in self.filters


class WatchRequestError(ValueError):
    """A watch that cannot be made whatever the state: `field` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_watch(request: WatchRequest) -> WatchRequest:
    """`request`, checked, with etcd's normalisation: an empty key is b"\\0", the smallest
    key (so key b"" with range_end b"\\0" watches every key). Raises WatchRequestError."""
    key, end = request.key, request.range_end
    if type(key) is not bytes:
        raise WatchRequestError("key", "must be bytes")
    if type(end) is not bytes:
        raise WatchRequestError("range_end", "must be bytes")
    if len(key) > key_bytes_max or len(end) > key_bytes_max:
        raise WatchRequestError("key", f"longer than key_bytes_max = {key_bytes_max}")
    revision = request.start_revision
    if type(revision) is not int or not 0 <= revision <= int64_max:
        raise WatchRequestError(
            "start_revision",
            f"{revision!r} is not a revision: give 0 (the next one) or a positive int64",
        )
    for name in ("prev_kv", "progress_notify", "fragment"):
        if type(getattr(request, name)) is not bool:
            raise WatchRequestError(name, "must be true or false")
    for kind in request.filters:
        if type(kind) is not Filter:
            raise WatchRequestError(
                "filters", f"unknown filter {kind!r}: the filters are NOPUT and NODELETE"
            )
    if end and end != b"\0" and end <= (key or b"\0"):
        raise WatchRequestError(
            "range_end",
            f"{end!r} is not after key {key!r}: the range [key, range_end) would be empty",
        )
    if not key:
        return replace(request, key=b"\0")
    return request


def event_bytes(event: Event, prev_kv: bool) -> int:
    """What `event` costs in a watcher's queue (see event_overhead_bytes)."""
    kv = event.kv
    size = len(kv.key) + len(kv.value) + event_overhead_bytes
    prev = event.prev_kv
    if prev_kv and prev is not None:
        size += len(prev.key) + len(prev.value)
    return size


# ---------------------------------------------------------------------------------------------
# The items of a watch's stream (module docstring), in the order they come.


@dataclass(frozen=True, slots=True)
class Created:
    watch_id: int
    revision: int  # the store's revision when the watch was made
    start_revision: int  # the first revision it delivers (the request's, or revision + 1)


@dataclass(frozen=True, slots=True)
class Events:
    """Changes of one or more whole revisions (or a fragment of one: `fragment` True on all
    but the last part). `revision`: everything up to it is delivered with this item."""

    watch_id: int
    revision: int
    events: tuple[Event, ...]
    fragment: bool = False


@dataclass(frozen=True, slots=True)
class Progress:
    """Everything up to `revision` was delivered before this item."""

    watch_id: int
    revision: int


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The watch ended (`reason`, with `detail` for people). Everything before
    `resume_revision` was delivered; `compact_revision` is set when it was compacted."""

    watch_id: int
    revision: int  # the store's revision then (etcd's header revision)
    reason: CancelReason
    detail: str
    resume_revision: int
    compact_revision: int = 0


Item: TypeAlias = Created | Events | Progress | Cancelled
