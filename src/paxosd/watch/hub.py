"""The watch hub: one per node, fed by the apply path, one ordered bounded queue per watcher.

Theory of operation. The node (and the simulated node: both run this code) hands the hub
every applied command's events, in log order (`applied`), right where the driver hands it
the applied commands; so the hub knows every change up to `revision`, the same on every
node that applied as far. Each watcher is in one of two states:

* SYNCED: every change of its keys up to the hub's revision is in its queue. A new revision's
  events are matched against the synced watchers (an index by key, by prefix and a list of
  other ranges, so that idle watchers cost nothing per write) and appended to the queues of
  those they concern, one item per revision. A watch that starts at a future revision is
  synced too: it simply wants nothing below its start.
* CATCHING_UP: it still needs revisions from `next` on from the store's history (a watch
  from a past revision, one whose node installed a snapshot, ...). It reads them a page at a
  time, only when its queue has room (`take` refills it), so a watcher that does not read
  holds nothing; once a page reaches the hub's revision it becomes synced. Between pages
  nothing is held, so a compaction may take the revisions it still needs: then it is
  cancelled with the compacted revision ("re-list at revision C, then watch from C + 1").

The queue is the stream: events, progress notifications and the final cancellation are
items of ONE queue, so nothing overtakes anything. Every item's revision is a promise that
every change up to it is before it (types.py), which is what makes a resume from "the last
revision seen + 1" exact on any node.

Bounds. A watcher's queue holds at most `queue_bytes_max` (a first revision larger than that
is taken whole into an empty queue), and all queues of the node at most `queued_bytes_max`.
A synced watcher whose queue would overflow is cancelled (SLOW), its Cancelled item naming
the first revision it did not get: a slow client costs its own queue and nothing else - the
apply path only appends, never waits. The hub never reads a clock: `tick(now_ms)` brings the
time for periodic progress notifications.

Progress. `progress(watcher)` queues a notification now; `progress_notify` watches get one
every `progress_interval_ms` in which they got no event (as etcd). And every synced watcher
whose last revision heard falls `progress_lead_revisions` behind the hub's, or at or below
the revision an automatic compaction is due to compact to (`upcoming_compaction`: the
store's own rule, computed on every node as the leader computes it before it proposes the
compaction), or at or below a new compacted revision, gets one too: an idle watcher's resume
point stays ahead of what compaction removes, so a client that reconnects after a quiet
period is not told "compacted".

Planted bugs (WATCH_VARIANTS), so that the simulator's watch checker shows it can fail:
`watch-skip-revision` starts a past watch one revision late (a resume at last + 2),
`watch-compaction-race` reads a catching-up page without checking the compacted revision,
`watch-early-progress` gives a catching-up watcher a progress notification at the hub's
revision, ahead of the events it has not read yet.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from paxosd.service.kv.types import Event, in_range, prefix_end

from .history import History, event_revisions
from .types import (
    Cancelled,
    CancelReason,
    Created,
    Events,
    Item,
    Progress,
    WatchRequest,
    check_watch,
    event_bytes,
)

__all__ = ["CATCHING_UP", "DONE", "SYNCED", "WATCH_VARIANTS", "WatchHub", "WatchOptions", "Watcher"]

WATCH_VARIANTS: Final = {
    "watch-skip-revision": "a watch from a past revision starts one revision late",
    "watch-compaction-race": "a catching-up watcher reads history without checking compaction",
    "watch-early-progress": "a catching-up watcher's progress notification overtakes its events",
}

SYNCED: Final = 0
CATCHING_UP: Final = 1
DONE: Final = 2
# What a control item (created, progress, cancelled) counts in a queue.
control_bytes: Final = 64


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """The hub's limits, units last."""

    queue_bytes_max: int = 1 << 20  # one watcher's queue
    queued_bytes_max: int = 256 << 20  # all queues of the node
    watchers_max: int = 100_000
    response_bytes_max: int = 1 << 20  # one Events item `take` builds (whole revisions)
    progress_interval_ms: int = 600_000  # progress_notify watches: etcd's 10 minutes
    progress_lead_revisions: int = 10_000  # idle synced watchers hear of progress this often
    # A connection whose client reads nothing for this long is closed (the interfaces' part).
    stall_ms: int = 30_000
    variant: str = "correct"

    def __post_init__(self) -> None:
        if self.variant != "correct" and self.variant not in WATCH_VARIANTS:
            raise ValueError(f"unknown watch variant {self.variant!r}")
        for name in (
            "queue_bytes_max",
            "queued_bytes_max",
            "watchers_max",
            "response_bytes_max",
            "progress_interval_ms",
            "progress_lead_revisions",
            "stall_ms",
        ):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.queued_bytes_max < self.queue_bytes_max:
            raise ValueError("queued_bytes_max (all queues) must be at least queue_bytes_max")


class Watcher:
    """One watch on one node: its request and its queue. Interfaces read `id`, `request`,
    `done` and take items through the hub (`WatchHub.take`)."""

    __slots__ = (
        "end",
        "id",
        "idle",
        "key",
        "next",
        "notified",
        "queue",
        "queued_bytes",
        "request",
        "start",
        "state",
        "told",
        "wake",
        "woken",
    )

    def __init__(
        self, watch_id: int, request: WatchRequest, wake: Callable[[Watcher], None] | None
    ) -> None:
        self.id = watch_id
        self.request = request
        self.key = request.key
        self.end = request.range_end
        self.start = 0  # the first revision it wants
        self.next = 0  # CATCHING_UP: the next revision to read from history
        self.state = SYNCED
        self.queue: deque[tuple[Item, int]] | None = None  # made at the first item
        self.queued_bytes = 0
        self.told = 0  # the highest revision an Events or Progress queued for it carried
        self.idle = False  # it has an entry in the hub's heap of idle watchers
        self.notified = 0  # `told` when its periodic progress was last considered
        self.wake = wake
        self.woken = False

    @property
    def done(self) -> bool:
        """Cancelled or closed: no more items will be queued."""
        return self.state == DONE

    @property
    def pending(self) -> int:
        """Items waiting in its queue."""
        return 0 if self.queue is None else len(self.queue)

    def __repr__(self) -> str:
        state = ("synced", "catching up", "done")[self.state]
        return f"Watcher({self.id}, {self.key!r}..{self.end!r}, {state})"


class _Index:
    """The synced watchers, found by key: one key, a prefix, or another range."""

    __slots__ = ("keys", "lengths", "prefixes", "ranges")

    def __init__(self) -> None:
        self.keys: dict[bytes, set[Watcher]] = {}
        self.prefixes: dict[bytes, set[Watcher]] = {}
        self.lengths: dict[int, int] = {}  # prefix length -> prefixes of that length
        self.ranges: set[Watcher] = set()

    @staticmethod
    def _prefix(watcher: Watcher) -> bytes | None:
        """The prefix `watcher` watches, if its range is one."""
        key, end = watcher.key, watcher.end
        if end and end != b"\0" and prefix_end(key) == end:
            return key
        return None

    def add(self, watcher: Watcher) -> None:
        if not watcher.end:
            self.keys.setdefault(watcher.key, set()).add(watcher)
            return
        prefix = self._prefix(watcher)
        if prefix is None:
            self.ranges.add(watcher)
            return
        group = self.prefixes.get(prefix)
        if group is None:
            group = self.prefixes[prefix] = set()
            self.lengths[len(prefix)] = self.lengths.get(len(prefix), 0) + 1
        group.add(watcher)

    def remove(self, watcher: Watcher) -> None:
        if not watcher.end:
            group = self.keys.get(watcher.key)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self.keys[watcher.key]
            return
        prefix = self._prefix(watcher)
        if prefix is None:
            self.ranges.discard(watcher)
            return
        group = self.prefixes.get(prefix)
        if group is None:
            return
        group.discard(watcher)
        if not group:
            del self.prefixes[prefix]
            length = len(prefix)
            self.lengths[length] -= 1
            if not self.lengths[length]:
                del self.lengths[length]

    def match(self, key: bytes) -> Iterable[Watcher]:
        """The synced watchers whose keys include `key`."""
        found = self.keys.get(key)
        if found:
            yield from found
        if self.lengths:
            prefixes = self.prefixes
            size = len(key)
            for length in self.lengths:
                if length <= size:
                    group = prefixes.get(key[:length])
                    if group:
                        yield from group
        for watcher in self.ranges:
            if in_range(key, watcher.key, watcher.end):
                yield watcher


class WatchHub:
    """Every watcher of one node (module docstring). Not thread-safe: the node's event loop
    (or the simulator) calls it."""

    def __init__(
        self,
        source: Callable[[], History],
        options: WatchOptions | None = None,
        upcoming_compaction: Callable[[History], int | None] | None = None,
    ) -> None:
        self._source = source
        # The revision the next automatic compaction will compact to, if one is due (the
        # store's own rule, which the leader follows when it proposes one): idle watchers
        # hear of progress before it happens.
        self._upcoming = upcoming_compaction
        self.options = WatchOptions() if options is None else options
        history = source()
        self._history = history
        self.revision = history.revision  # every change up to here has been fed
        self.compact_revision = history.compact_revision
        self.watchers: dict[int, Watcher] = {}
        self._index = _Index()
        self._ids = itertools.count(1)
        self._queued_total = 0
        # (due ms, id) of progress_notify watchers; (told, id) of synced watchers.
        self._periodic: list[tuple[float, int]] = []
        self._idle: list[tuple[int, int]] = []
        self._now_ms = 0.0
        self._compaction_due = -1
        variant = self.options.variant
        self._skip = variant == "watch-skip-revision"
        self._race = variant == "watch-compaction-race"
        self._early = variant == "watch-early-progress"
        self.stats = {"events_queued": 0, "cancelled_slow": 0, "cancelled_compacted": 0}

    # -----------------------------------------------------------------------------------------
    # Watches

    def watch(
        self, request: WatchRequest, wake: Callable[[Watcher], None] | None = None
    ) -> Watcher:
        """A new watcher (raises WatchRequestError for a request that cannot be made). Its
        queue starts with Created; if it cannot be served it is already cancelled. `wake` is
        called (with the watcher) when an item arrives in a queue its client emptied with
        `take`: then it should take again."""
        request = check_watch(request)
        self._follow_source()
        watcher = Watcher(next(self._ids), request, wake)
        revision = self.revision
        start = request.start_revision or revision + 1
        watcher.start = start
        if self._skip and request.start_revision and start <= revision:
            watcher.start = start + 1  # the planted bug: a resume at last + 2, said to be last + 1
        # What Created tells a client: it wants nothing older than its start.
        watcher.told = start - 1
        self._push(watcher, Created(watcher.id, revision, start), control_bytes)
        if len(self.watchers) >= self.options.watchers_max:
            self._cancel(
                watcher,
                CancelReason.OVERLOADED,
                f"this node holds watchers_max = {self.options.watchers_max} watches; "
                "watch on another node or cancel some",
                watcher.start,
            )
            return watcher
        self.watchers[watcher.id] = watcher
        if watcher.start <= revision:
            watcher.state = CATCHING_UP
            watcher.next = watcher.start
            self._fill(watcher)
        else:
            self._synced(watcher)
        if request.progress_notify:
            due = self._now_ms + self.options.progress_interval_ms
            heapq.heappush(self._periodic, (due, watcher.id))
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        """Its client asked: Cancelled goes at the end of its queue."""
        if watcher.state != DONE:
            self._cancel(watcher, CancelReason.CANCELLED, "cancelled by the client")

    def close(self, watcher: Watcher) -> None:
        """Its client is gone: forget it and its queue."""
        if watcher.state != DONE:
            self._retire(watcher)
        self._queued_total -= watcher.queued_bytes
        watcher.queued_bytes = 0
        watcher.queue = None

    def close_all(self, detail: str = "the node is shutting down") -> None:
        """Every watch ends (the node stops): each gets its Cancelled with its resume point."""
        for watcher in list(self.watchers.values()):
            self._cancel(watcher, CancelReason.CLOSING, detail)

    def progress(self, watcher: Watcher) -> None:
        """A progress notification now (in its queue, after what is already there)."""
        if watcher.state != DONE:
            self._progress(watcher)

    def take(self, watcher: Watcher) -> list[Item]:
        """Everything queued for `watcher`, consecutive events merged into items of at most
        `response_bytes_max` bytes of whole revisions (split only if the watch asked for
        fragments); then its queue is refilled from history if it is catching up."""
        watcher.woken = False
        queue = watcher.queue
        if not queue:
            return []
        budget = self.options.response_bytes_max
        fragment = watcher.request.fragment
        if len(queue) == 1:
            # One item (a watcher that keeps up): it goes out as it was queued, unless it
            # is a revision to split into fragments.
            item, size = queue[0]
            if type(item) is not Events or not fragment or size <= budget or len(item.events) < 2:
                watcher.queued_bytes -= size
                self._queued_total -= size
                watcher.queue = None
                if watcher.state == CATCHING_UP:
                    self._fill(watcher)
                return [item]
        items: list[Item] = []
        merged: list[Event] = []
        merged_bytes = 0
        merged_revision = 0
        while queue:
            item, size = queue.popleft()
            watcher.queued_bytes -= size
            self._queued_total -= size
            if type(item) is Events:
                if merged and merged_bytes + size > budget:
                    items.append(Events(watcher.id, merged_revision, tuple(merged)))
                    merged, merged_bytes = [], 0
                if fragment and size > budget and len(item.events) > 1:
                    items.extend(_fragments(item, budget, watcher.request.prev_kv))
                    continue
                merged.extend(item.events)
                merged_bytes += size
                merged_revision = item.revision
                continue
            if merged:
                items.append(Events(watcher.id, merged_revision, tuple(merged)))
                merged, merged_bytes = [], 0
            items.append(item)
        if merged:
            items.append(Events(watcher.id, merged_revision, tuple(merged)))
        watcher.queue = None  # an idle watcher holds no queue (made again at the next item)
        if watcher.state == CATCHING_UP:
            self._fill(watcher)
        return items

    def status(self) -> dict[str, int]:
        """Figures for an operator (the node's /v1/status)."""
        catching_up = sum(1 for w in self.watchers.values() if w.state == CATCHING_UP)
        return {
            "watchers": len(self.watchers),
            "catching_up": catching_up,
            "revision": self.revision,
            "queued_bytes": self._queued_total,
            **self.stats,
        }

    # -----------------------------------------------------------------------------------------
    # The apply path

    def applied(self, events: Sequence[Event]) -> None:
        """One applied command's events (in the order it made them; none for a command that
        changed no key). Called for every applied command, in log order."""
        history = self._source()  # `_follow_source`, inline: every command passes here
        if history is not self._history:
            self._replaced(history)
        if events:
            revision = events[0].kv.mod_revision
            if revision == self.revision + 1:
                self.revision = revision
                if self.watchers:  # every applied command passes here, watched or not
                    self._fan_out(revision, events)
            elif revision > self.revision:
                # Revisions were skipped (this node's state jumped): whoever wants them, and
                # this one, reads them from history.
                self._jumped(revision)
        compacted = history.compact_revision
        if compacted > self.compact_revision:
            self.compact_revision = compacted
        if self._idle:
            if events and self._upcoming is not None:
                due = self._upcoming(history)
                if due is not None and due > self._compaction_due:
                    self._compaction_due = due
            if self._idle[0][0] < self._idle_bound():
                self._idle_progress()

    def tick(self, now_ms: float) -> None:
        """Time passes: periodic progress notifications that are due."""
        self._now_ms = now_ms
        self._follow_source()
        periodic = self._periodic
        interval = self.options.progress_interval_ms
        while periodic and periodic[0][0] <= now_ms:
            _, watch_id = heapq.heappop(periodic)
            watcher = self.watchers.get(watch_id)
            if watcher is None:
                continue
            if watcher.told == watcher.notified:  # nothing sent in the interval
                self._progress(watcher)
            watcher.notified = watcher.told
            heapq.heappush(periodic, (now_ms + interval, watch_id))

    # -----------------------------------------------------------------------------------------
    # Inside

    def _follow_source(self) -> History:
        """The node's state may have been replaced (a snapshot installed): then every synced
        watcher catches up from the new state's history."""
        history = self._source()
        if history is not self._history:
            self._replaced(history)
        return history

    def _replaced(self, history: History) -> None:
        self._history = history
        self.compact_revision = history.compact_revision
        if history.revision > self.revision:
            self._jumped(history.revision)

    def _jumped(self, revision: int) -> None:
        """The state moved from `self.revision` to `revision` without the events between
        (a snapshot was installed): every synced watcher that wants them reads them from the
        new state's history."""
        following = self.revision + 1
        self.revision = revision
        for watcher in list(self.watchers.values()):
            if watcher.state == SYNCED and watcher.start <= revision:
                self._index.remove(watcher)
                watcher.state = CATCHING_UP
                watcher.next = max(watcher.start, following)
                self._fill(watcher)

    def _fan_out(self, revision: int, events: Sequence[Event]) -> None:
        match = self._index.match
        if len(events) == 1:
            # One key changed (most writes): every watcher of it gets the same events, so
            # they are made and measured once per prev_kv choice, not once per watcher
            # (a key may have thousands). Pushing may cancel a watcher, which changes the
            # index: the watchers are listed first.
            event = events[0]
            kind = event.type
            made: dict[bool, tuple[tuple[Event, ...], int]] = {}
            for watcher in list(match(event.kv.key)):
                request = watcher.request
                if revision < watcher.start or (request.filters and not request.wants(kind)):
                    continue
                prev_kv = request.prev_kv
                queued = made.get(prev_kv)
                if queued is None:
                    queued = made[prev_kv] = _queued(events, prev_kv)
                self._push_queued(watcher, revision, *queued)
            return
        events = sorted(events, key=_key_of)
        targets: dict[Watcher, list[Event]] = {}
        for event in events:
            for watcher in match(event.kv.key):
                if revision >= watcher.start and watcher.request.wants(event.type):
                    found = targets.get(watcher)
                    if found is None:
                        targets[watcher] = [event]
                    else:
                        found.append(event)
        for watcher, found in targets.items():
            self._push_events(watcher, revision, found)

    def _push_events(self, watcher: Watcher, revision: int, events: list[Event]) -> bool:
        """Queue one revision's events; False if that cancelled the watcher (slow)."""
        return self._push_queued(watcher, revision, *_queued(events, watcher.request.prev_kv))

    def _push_queued(
        self, watcher: Watcher, revision: int, events: tuple[Event, ...], size: int
    ) -> bool:
        """Queue one revision's events as `_queued` made them for this watcher; False if
        that cancelled the watcher (slow)."""
        if watcher.queue:
            options = self.options
            if watcher.queued_bytes + size > options.queue_bytes_max:
                self._slow(watcher, revision, f"its queue holds {watcher.queued_bytes} bytes")
                return False
            if self._queued_total + size > options.queued_bytes_max:
                self._slow(watcher, revision, "the node's watch queues are full")
                return False
        self.stats["events_queued"] += len(events)
        self._push(watcher, Events(watcher.id, revision, events), size)
        return True

    def _slow(self, watcher: Watcher, revision: int, why: str) -> None:
        self.stats["cancelled_slow"] += 1
        limit = self.options.queue_bytes_max
        self._cancel(
            watcher,
            CancelReason.SLOW,
            f"the client did not read its stream: {why} (queue_bytes_max = {limit}); "
            f"watch again from revision {revision}",
            revision,
        )

    def _push(self, watcher: Watcher, item: Item, size: int) -> None:
        queue = watcher.queue
        if queue is None:
            queue = watcher.queue = deque()
        queue.append((item, size))
        watcher.queued_bytes += size
        self._queued_total += size
        kind = type(item)
        if (kind is Events or kind is Progress) and item.revision > watcher.told:
            watcher.told = item.revision
        if not watcher.woken and watcher.wake is not None:
            watcher.woken = True
            watcher.wake(watcher)

    def _covered(self, watcher: Watcher) -> int:
        """Every change of `watcher`'s keys up to this revision is in its queue. A watch
        that starts in the future (perhaps on a node behind the one it came from) wants
        nothing below its start, so its promises never go below `start - 1`: a client that
        resumes from them never gets a change twice."""
        if watcher.state == SYNCED:
            return max(self.revision, watcher.start - 1)
        return watcher.next - 1

    def _progress(self, watcher: Watcher) -> None:
        revision = self._covered(watcher)
        if self._early:
            revision = max(revision, self.revision)  # the planted bug: ahead of the events
        queue = watcher.queue
        if queue and type(queue[-1][0]) is Progress:
            queue.pop()  # one notification says all the last one did
            watcher.queued_bytes -= control_bytes
            self._queued_total -= control_bytes
        self._push(watcher, Progress(watcher.id, revision), control_bytes)

    def _cancel(
        self,
        watcher: Watcher,
        reason: CancelReason,
        detail: str,
        resume: int | None = None,
        compact_revision: int = 0,
    ) -> None:
        if resume is None:
            resume = max(self._covered(watcher) + 1, watcher.start)
        self._retire(watcher)
        item = Cancelled(watcher.id, self.revision, reason, detail, resume, compact_revision)
        self._push(watcher, item, control_bytes)

    def _retire(self, watcher: Watcher) -> None:
        if watcher.state == SYNCED:
            self._index.remove(watcher)
        watcher.state = DONE
        self.watchers.pop(watcher.id, None)

    def _synced(self, watcher: Watcher) -> None:
        watcher.state = SYNCED
        self._index.add(watcher)
        if not watcher.idle:
            watcher.idle = True
            heapq.heappush(self._idle, (watcher.told, watcher.id))

    def _fill(self, watcher: Watcher) -> None:
        """Read history for a catching-up watcher while its queue has room (module
        docstring): whole revisions, in order; synced once it reaches the hub's revision."""
        options = self.options
        room = options.queue_bytes_max - watcher.queued_bytes
        if room < options.queue_bytes_max // 2 and watcher.queue:
            return  # wait until the client has read more
        history = self._history
        first, last = watcher.next, self.revision
        if first > last:
            self._synced(watcher)
            return
        if first <= history.compact_revision and not self._race:
            self._compacted(watcher, history.compact_revision)
            return
        request = watcher.request
        events = history.changes(watcher.key, watcher.end, first, last)
        for revision, group in event_revisions(events):
            wanted = [e for e in group if request.wants(e.type)]
            if not wanted:
                continue
            size = sum(event_bytes(e, request.prev_kv) for e in wanted)
            if watcher.queue and size > options.queue_bytes_max - watcher.queued_bytes:
                watcher.next = revision  # the rest when the client has read this
                return
            if not request.prev_kv:
                wanted = [e if e.prev_kv is None else Event(e.type, e.kv, None) for e in wanted]
            self.stats["events_queued"] += len(wanted)
            self._push(watcher, Events(watcher.id, revision, tuple(wanted)), size)
        watcher.next = last + 1
        self._synced(watcher)

    def _compacted(self, watcher: Watcher, compact_revision: int) -> None:
        self.stats["cancelled_compacted"] += 1
        self._cancel(
            watcher,
            CancelReason.COMPACTED,
            f"revision {watcher.next} has been compacted (the oldest revision held is "
            f"{compact_revision}): re-list at revision {compact_revision} or later, then "
            "watch from the revision after the list",
            watcher.next,
            compact_revision,
        )

    def _idle_bound(self) -> int:
        """Synced watchers last told of a revision below this hear of progress now."""
        bound = max(
            self.revision - self.options.progress_lead_revisions,
            self.compact_revision + 1,
            self._compaction_due + 1,
        )
        return min(bound, self.revision)

    def _idle_progress(self) -> None:
        idle = self._idle
        bound = self._idle_bound()
        while idle and idle[0][0] < bound:
            _, watch_id = heapq.heappop(idle)
            watcher = self.watchers.get(watch_id)
            if watcher is None:
                continue
            if watcher.state != SYNCED:
                watcher.idle = False  # back in the heap when it is synced again
                continue
            if watcher.told < bound:
                self._progress(watcher)
            heapq.heappush(idle, (watcher.told, watch_id))


def _key_of(event: Event) -> bytes:
    return event.kv.key


def _queued(events: Sequence[Event], prev_kv: bool) -> tuple[tuple[Event, ...], int]:
    """A revision's events as a watcher gets them (without the previous versions unless it
    asked for them) and what they cost in its queue."""
    size = 0
    for event in events:
        size += event_bytes(event, prev_kv)
    if not prev_kv:
        return tuple(e if e.prev_kv is None else Event(e.type, e.kv, None) for e in events), size
    return tuple(events), size


def _fragments(item: Events, budget: int, prev_kv: bool) -> list[Events]:
    """One revision's events in parts of at most `budget` bytes (at least one event each),
    all but the last marked as fragments."""
    parts: list[Events] = []
    current: list[Event] = []
    size = 0
    for event in item.events:
        cost = event_bytes(event, prev_kv)
        if current and size + cost > budget:
            parts.append(Events(item.watch_id, item.revision, tuple(current), True))
            current, size = [], 0
        current.append(event)
        size += cost
    parts.append(Events(item.watch_id, item.revision, tuple(current), False))
    return parts
