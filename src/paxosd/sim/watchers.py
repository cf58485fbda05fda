"""Simulated watchers: clients that watch keys on any node, read their streams fast or slowly,
move to another node, resume after failures and re-list after compaction.

Theory of operation. Every simulated node runs the node's own watch hub (paxosd.watch), fed
by its driver's applied commands (sim/cluster.py SimNode). A watcher connects to a node (the
request travels like a client's, and waits while the node is paused), and from then on reads
its watch's queue - at once when woken, or, for a slow watcher, only every so often, so that
its queue fills and the hub cancels it. What it reads travels back to it in order; what is
still in flight when the connection breaks is lost, as with a closed TCP connection. The
connection breaks when its node crashes or restarts, or when the watcher hops to another
node on its own; then it watches again on some node from the revision after the last one it
was promised (`last + 1`). A cancellation tells it where to resume (a slow one, a node
shutting down) or, "compacted", that it must re-list: it lists its keys at some node's
current revision and watches from the next.

Every watcher records its streams for the watch checker (paxosd.check.watches), which
compares them with the committed history replayed from the agreed log (`reference`). Near
the end of the run each watcher asks for progress notifications, and must by the end have been
promised every revision committed before its last request (the liveness check).

Watchers draw from a random generator of their own, so they change nothing the rest of a
seeded run does: they read the nodes' state and never send the nodes a message.
"""

from __future__ import annotations

import random
from functools import partial
from typing import TYPE_CHECKING, Any

from paxosd.check.watches import Change, Reference, Session, Stream, change_of, check_session
from paxosd.core.types import NodeId
from paxosd.service import StateMachine
from paxosd.service.kv.types import Range, prefix_end
from paxosd.sim.membership import removed
from paxosd.watch import (
    Cancelled,
    CancelReason,
    Created,
    Events,
    Filter,
    Item,
    Progress,
    Watcher,
    WatchOptions,
    WatchRequest,
)

if TYPE_CHECKING:
    from paxosd.sim.cluster import Cluster, SimNode

__all__ = ["SimWatcher", "check_watchers", "draw_watch_options", "reference"]

# How long a watcher waits before it connects again after a broken connection, in ms.
reconnect_ms = (5.0, 40.0)
# How often a slow watcher reads its stream, in ms; a fast one reads when woken, and this
# often too (its read times out: it notices a node that crashed under it).
slow_read_ms = (30.0, 250.0)
check_ms = (20.0, 60.0)
# The odds, at each of its reads, that a watcher leaves its node for another; and that it
# stays away a long while first (a client that sleeps, then resumes where it was).
hop_odds = 0.02
away_odds = 0.3
away_ms = (100.0, 800.0)
# The odds, at each read, that it asks for a progress notification.
progress_odds = 0.05
# This long before the run ends every watcher asks for progress, and slow ones read at once.
final_progress_ms = 1500.0
# ... and asks again this often (ms), as long as an answer has time to arrive.
final_progress_every_ms = 250.0


def draw_watch_options(rng: random.Random, variant: str) -> WatchOptions:
    """Small limits, so that slow watchers are cancelled, catching-up ones read several
    pages, and idle ones hear of progress (each run draws its own)."""
    queue = rng.choice((400, 1000, 4000, 64_000))
    return WatchOptions(
        queue_bytes_max=queue,
        queued_bytes_max=queue * 8,
        response_bytes_max=rng.choice((300, 2000, 1 << 20)),
        progress_interval_ms=rng.choice((50, 200, 1000)),
        progress_lead_revisions=rng.choice((5, 20, 10_000)),
        variant=variant,
    )


def _request(rng: random.Random, keys: int) -> WatchRequest:
    shape = rng.choice(("key", "kv-prefix", "mvcc-prefix", "from", "all", "range"))
    if shape == "key":
        key, end = rng.choice((b"k%d" % rng.randrange(keys), b"m/%d" % rng.randrange(2))), b""
    elif shape == "kv-prefix":
        key, end = b"k", prefix_end(b"k")
    elif shape == "mvcc-prefix":
        key, end = b"m/", prefix_end(b"m/")
    elif shape == "from":
        key, end = b"k1", b"\0"
    elif shape == "range":
        key, end = b"k0", b"k2"
    else:
        key, end = b"", b"\0"
    filters: frozenset[Filter] = frozenset()
    roll = rng.random()
    if roll < 0.1:
        filters = frozenset({Filter.NOPUT})
    elif roll < 0.2:
        filters = frozenset({Filter.NODELETE})
    return WatchRequest(
        key=key,
        range_end=end,
        prev_kv=rng.random() < 0.5,
        filters=filters,
        progress_notify=rng.random() < 0.3,
        fragment=rng.random() < 0.3,
    )


class SimWatcher:
    """One watching client (module docstring)."""

    def __init__(self, cluster: Cluster, number: int, rng: random.Random) -> None:
        self.cluster = cluster
        self.name = f"w{number}"
        self.rng = rng
        self.request = _request(rng, cluster.spec.keys)
        self.slow = rng.random() < 0.3
        self.hops = rng.random() < 0.5
        self.session = Session(self.name)
        self.last: int | None = None  # the last revision promised to it (None: no watch yet)
        self.node_id = 0
        self.node: SimNode | None = None  # the node object its watch lives in
        self.watcher: Watcher | None = None
        self.stream: Stream | None = None
        self.connecting = False
        self.reading = False
        self.arrival = 0.0  # when the last item in flight reaches it (items arrive in order)
        self.relisting = False
        self.finishing = False  # the run is ending: no more hops, every new watch asks progress
        self.owed = 0  # the revision it must have been promised by the end (set by `finish`)

    # -- connecting -------------------------------------------------------------------------

    def start(self) -> None:
        start = 0
        if self.rng.random() < 0.3:
            start = self.rng.randrange(1, 20)  # a revision in the past, or soon
        self._connect(self.rng.choice(self.cluster.members), start)
        self._read_loop()

    def _connect(self, node_id: NodeId, start: int, listed: Any = None) -> None:
        """Ask `node_id` for a watch from `start` (0: the next revision)."""
        self.connecting = True
        self.node_id = node_id
        delay = self.rng.uniform(0.2, 1.0)
        self.cluster.at(self.cluster.now + delay, partial(self._arrive, node_id, start, listed))

    def _arrive(self, node_id: NodeId, start: int, listed: Any) -> None:
        cluster = self.cluster
        node = cluster.nodes[node_id]
        if node is None or not node.alive or removed(cluster, node_id):
            self._reconnect(start, listed)
            return
        if cluster._held(node_id, partial(self._arrive, node_id, start, listed)):
            return
        request = self.request
        wanted = WatchRequest(
            key=request.key,
            range_end=request.range_end,
            start_revision=start,
            prev_kv=request.prev_kv,
            filters=request.filters,
            progress_notify=request.progress_notify,
            fragment=request.fragment,
        )
        self.connecting = False
        self.node = node
        self.watcher = node.watches.watch(wanted, self._woken)
        self.stream = Stream(
            node=node_id,
            key=wanted.key or b"\0",
            range_end=wanted.range_end,
            start_revision=start,
            prev_kv=wanted.prev_kv,
            no_put=Filter.NOPUT in wanted.filters,
            no_delete=Filter.NODELETE in wanted.filters,
            listed=listed,
        )
        self.session.streams.append(self.stream)
        self.arrival = cluster.now
        if self.finishing:
            node.watches.progress(self.watcher)
        self._read_soon()
        cluster.count_mechanism("watches_created")
        if start and start <= node.watches.revision:
            cluster.count_mechanism("watches_from_the_past")

    def _reconnect(self, start: int, listed: Any = None, away: bool = False) -> None:
        """The watch is gone (its node crashed, restarted, or told it to go): watch again on
        some node, after a while (a long one if `away`), from `start`."""
        self._drop()
        self.connecting = True
        node_id = self.rng.choice(self.cluster.members)
        delay = self.rng.uniform(*(away_ms if away else reconnect_ms))
        self.cluster.at(self.cluster.now + delay, partial(self._connect, node_id, start, listed))

    def _resume(self, away: bool = False) -> None:
        self.cluster.count_mechanism("watches_resumed")
        self._reconnect((self.last or 0) + 1, away=away)

    def _drop(self) -> None:
        node, watcher = self.node, self.watcher
        if node is not None and watcher is not None and node.alive:
            node.watches.close(watcher)
        self.node = self.watcher = self.stream = None

    # -- reading ----------------------------------------------------------------------------

    def _woken(self, watcher: Watcher) -> None:
        # (While its watch is being made, `self.watcher` is not set yet: `_arrive` reads.)
        if watcher is self.watcher:
            self._read_soon()

    def _read_soon(self) -> None:
        if self.slow or self.reading:
            return
        self.reading = True
        self.cluster.at(self.cluster.now + self.rng.uniform(0.05, 0.5), self._read)

    def _read_loop(self) -> None:
        cluster = self.cluster
        if cluster.now >= cluster.liveness_end:
            return
        if not self.reading:
            self._read()
        period = slow_read_ms if self.slow else check_ms
        cluster.at(cluster.now + self.rng.uniform(*period), self._read_loop)

    def _read(self) -> None:
        """Take what the watch's queue holds and send it on its way to the client."""
        self.reading = False
        cluster = self.cluster
        node, watcher = self.node, self.watcher
        if watcher is None or node is None:
            return  # connecting
        gone = cluster.nodes[self.node_id] is not node or not node.alive
        if gone or removed(cluster, self.node_id):
            # A node removed from the cluster closes its watches, as a crashed one loses them.
            cluster.count_mechanism("watch_connections_lost")
            self._resume()
            return
        if cluster._held(self.node_id, self._read):
            return
        if self.hops and not self.finishing and self.rng.random() < hop_odds:
            cluster.count_mechanism("watches_hopped")
            self._resume(away=self.rng.random() < away_odds)
            return
        if self.rng.random() < progress_odds:
            node.watches.progress(watcher)
        items = node.watches.take(watcher)
        if not items:
            return
        stream = self.stream
        self.arrival = max(self.arrival, cluster.now) + self.rng.uniform(0.1, 1.0)
        cluster.at(self.arrival, partial(self._receive, stream, items))
        if not self.slow and watcher.pending:
            self.reading = True
            cluster.at(cluster.now + 0.05, self._read)

    def _receive(self, stream: Stream | None, items: list[Item]) -> None:
        if stream is not self.stream or stream is None:
            return  # the connection they came on is gone
        for item in items:
            stream.items.append(_recorded(item))
            if isinstance(item, Created):
                self.last = max(self.last or 0, item.start_revision - 1)
            elif isinstance(item, Events | Progress):
                self.last = max(self.last or 0, item.revision)
            elif isinstance(item, Cancelled):
                self._cancelled(item)
                return

    def _cancelled(self, item: Cancelled) -> None:
        cluster = self.cluster
        cluster.count_mechanism(f"watches_cancelled_{item.reason.value}")
        if item.reason is CancelReason.COMPACTED:
            self._relist()
            return
        self.last = max(self.last or 0, item.resume_revision - 1)
        self._resume()

    def _relist(self) -> None:
        """List the watched keys at a node's revision, then watch from the next one."""
        self._drop()
        self.connecting = True
        node_id = self.rng.choice(self.cluster.members)
        self.cluster.at(
            self.cluster.now + self.rng.uniform(0.2, 1.0), partial(self._list_at, node_id)
        )

    def _list_at(self, node_id: NodeId) -> None:
        cluster = self.cluster
        node = cluster.nodes[node_id]
        if node is None or not node.alive:
            cluster.at(cluster.now + self.rng.uniform(*reconnect_ms), self._relist)
            return
        if cluster._held(node_id, partial(self._list_at, node_id)):
            return
        machine = node.replica.learner.machine
        assert isinstance(machine, StateMachine)
        request = self.request
        # The node's own state (serializable): what it has applied is committed.
        answer = machine.read(
            Range(key=request.key or b"\0", range_end=request.range_end, serializable=True)
        )
        revision = answer.revision  # type: ignore[union-attr]
        listing = {kv.key: kv.value for kv in answer.kvs}  # type: ignore[union-attr]
        cluster.count_mechanism("watches_relisted")
        self.last = revision
        self._connect(node_id, revision + 1, (revision, listing))

    def finish(self) -> None:
        """Near the end: read at once from now on, and ask for progress notifications, to
        learn how far it got. It owes the checker every revision committed by then."""
        self.slow = False
        self.finishing = True
        self.owed = self._committed()
        self._ask_progress()

    def _ask_progress(self) -> None:
        """Ask its node for a progress notification, again every `final_progress_every_ms`
        while the end is far enough for the answer to arrive: writes that were still
        retrying at the first request (or a key it does not watch changing) move the
        revision on, and without a later progress notification nothing would tell it."""
        cluster = self.cluster
        node, watcher = self.node, self.watcher
        if node is not None and watcher is not None and node.alive and not watcher.done:
            self.owed = max(self.owed, self._committed())
            node.watches.progress(watcher)
            self._read_soon()
        if cluster.now + 2 * final_progress_every_ms < cluster.liveness_end:
            cluster.at(cluster.now + final_progress_every_ms, self._ask_progress)

    def _committed(self) -> int:
        """The newest revision any live node has applied."""
        return max(
            (node.watches.revision for node in self.cluster.nodes.values() if node and node.alive),
            default=0,
        )


def _recorded(item: Item) -> tuple[Any, ...]:
    if isinstance(item, Created):
        return ("created", item.start_revision)
    if isinstance(item, Events):
        return ("events", item.revision, [change_of(e) for e in item.events], item.fragment)
    if isinstance(item, Progress):
        return ("progress", item.revision)
    assert isinstance(item, Cancelled)
    return ("cancelled", item.reason.value, item.resume_revision, item.compact_revision)


# -- the judgement --------------------------------------------------------------------------


def reference(payloads: list[bytes], options: Any) -> Reference:
    """The committed history: every change, replayed from the agreed log with a fresh state
    machine, and every compaction that took effect."""
    machine = StateMachine(options=options)
    changes: list[Change] = []
    compactions: list[int] = []
    compacted = machine.kv.store.compact_revision
    for index, payload in enumerate(payloads, 1):
        machine.apply(index, payload)
        for event in machine.events:
            changes.append(change_of(event))
        store = machine.kv.store
        if store.compact_revision != compacted:
            compacted = store.compact_revision
            compactions.append(compacted)
    return Reference(_in_key_order(changes), compactions)


def _in_key_order(changes: list[Change]) -> list[Change]:
    """Each revision's changes in key order (stable: one key twice in a revision keeps its
    order), as a watch delivers them."""
    return sorted(changes, key=lambda c: (c[3], c[1]))


def check_watchers(cluster: Cluster, history: Reference) -> list[str]:
    problems: list[str] = []
    for watcher in cluster.watchers:
        problems += check_session(watcher.session, history)
        if watcher.last is not None and watcher.last < watcher.owed:
            problems.append(
                f"liveness: watcher {watcher.name} was promised revisions up to "
                f"{watcher.last} only; revision {watcher.owed} was committed before its last "
                f"progress request (the run ended at revision {history.last_revision})"
            )
    return problems
