"""The watch hub, rule by rule (each test's docstring states the rule), on the real
multi-version store; the watch checker judges every stream."""

from __future__ import annotations

import pytest

from paxosd.check.watches import check_session
from paxosd.service import Request, Router, encode
from paxosd.service.kv.types import DeleteRange, EventType, Put, prefix_end
from paxosd.watch import (
    Cancelled,
    CancelReason,
    Created,
    Events,
    Filter,
    MachineHistory,
    Progress,
    WatchOptions,
    WatchRequest,
    WatchRequestError,
)

from .harness import Client, Cluster, Node


def prefix(p: bytes, **fields: object) -> WatchRequest:
    return WatchRequest(key=p, range_end=prefix_end(p), **fields)  # type: ignore[arg-type]


def checked(node: Node, *clients: Client) -> None:
    reference = node.reference()
    for client in clients:
        assert check_session(client.session, reference) == []


def test_a_watch_from_now_gets_every_later_change_of_its_key_and_nothing_else() -> None:
    node = Node()
    node.put(b"a", b"0")
    client = Client("c", WatchRequest(key=b"a"))
    client.open(node)
    node.put(b"a", b"1")
    node.put(b"b", b"x")
    node.delete(b"a")
    items = client.read()
    assert isinstance(items[0], Created) and items[0].start_revision == 3
    assert isinstance(items[1], Events)
    kinds = [(e.type, e.kv.value) for e in items[1].events]
    assert kinds == [(EventType.PUT, b"1"), (EventType.DELETE, b"")]
    checked(node, client)


def test_prefix_range_and_from_key_watches_see_exactly_their_keys() -> None:
    node = Node()
    watches = {
        "prefix": prefix(b"app/"),
        "range": WatchRequest(key=b"app/b", range_end=b"app/d"),
        "from": WatchRequest(key=b"app/c", range_end=b"\0"),
        "all": WatchRequest(key=b"", range_end=b"\0"),
    }
    clients = [Client(name, request) for name, request in watches.items()]
    for client in clients:
        client.open(node)
    for key in (b"app/a", b"app/b", b"app/c", b"app/d", b"apq", b"zzz", b"ap"):
        node.put(key)
    seen = {c.session.name: [e[1] for e in (c.read() and c.events())] for c in clients}
    assert seen["prefix"] == [b"app/a", b"app/b", b"app/c", b"app/d"]
    assert seen["range"] == [b"app/b", b"app/c"]
    assert seen["from"] == [b"app/c", b"app/d", b"apq", b"zzz"]
    assert len(seen["all"]) == 7
    checked(node, *clients)


def test_a_revision_is_one_item_in_key_order_whatever_order_the_txn_wrote() -> None:
    node = Node()
    client = Client("c", prefix(b"k"))
    client.open(node)
    node.txn(Put(key=b"k3"), Put(key=b"k1"), Put(key=b"k2"))
    items = client.read()
    assert [type(i) for i in items] == [Created, Events]
    assert [e.kv.key for e in items[1].events] == [b"k1", b"k2", b"k3"]  # type: ignore[union-attr]
    checked(node, client)


def test_filters_and_prev_kv() -> None:
    """NOPUT drops puts, NODELETE deletes; prev_kv adds the version before the change (and
    without it, none is sent)."""
    node = Node()
    node.put(b"k", b"old")
    no_put = Client("np", WatchRequest(key=b"k", filters=frozenset({Filter.NOPUT})))
    no_delete = Client("nd", WatchRequest(key=b"k", filters=frozenset({Filter.NODELETE})))
    prev = Client("prev", WatchRequest(key=b"k", prev_kv=True))
    plain = Client("plain", WatchRequest(key=b"k"))
    for client in (no_put, no_delete, prev, plain):
        client.open(node)
    node.put(b"k", b"new")
    node.delete(b"k")
    assert [e[0] for e in (no_put.read() and no_put.events())] == [1]
    assert [e[0] for e in (no_delete.read() and no_delete.events())] == [0]
    prev.read()
    assert [e[6][1] if e[6] else None for e in prev.events()] == [b"old", b"new"]
    plain.read()
    assert all(e[6] is None for e in plain.events())
    checked(node, no_put, no_delete, prev, plain)


def test_a_past_start_replays_history_then_goes_on_live() -> None:
    node = Node()
    first = node.put(b"k", b"1")
    node.put(b"k", b"2")
    node.delete(b"k")
    client = Client("c", WatchRequest(key=b"k", start_revision=first, prev_kv=True))
    client.open(node)
    node.put(b"k", b"3")
    client.read()
    assert [e[2] for e in client.events()] == [b"1", b"2", b"", b"3"]
    checked(node, client)


def test_a_future_start_waits_for_it() -> None:
    node = Node()
    client = Client("c", WatchRequest(key=b"k", start_revision=4))
    client.open(node)
    node.put(b"k", b"2")  # revision 2
    node.put(b"k", b"3")
    node.put(b"k", b"4")
    client.read()
    assert [(e[3], e[2]) for e in client.events()] == [(4, b"4")]
    checked(node, client)


def test_a_compacted_start_is_created_then_cancelled_with_the_compact_revision() -> None:
    node = Node()
    for i in range(5):
        node.put(b"k", str(i).encode())
    node.compact(4)
    client = Client("c", WatchRequest(key=b"k", start_revision=3))
    client.open(node)
    items = client.read()
    assert isinstance(items[0], Created)
    cancelled = items[-1]
    assert isinstance(cancelled, Cancelled) and cancelled.reason is CancelReason.COMPACTED
    assert cancelled.compact_revision == 4 and "re-list at revision 4" in cancelled.detail
    assert node.hub.watchers == {}
    checked(node, client)


def test_the_compacted_revision_itself_cannot_be_watched_but_the_next_can() -> None:
    """After a compaction to C the change at C lost its previous version (and a delete at C
    its tombstone): a watch must start after C."""
    node = Node()
    for i in range(4):
        node.put(b"k", str(i).encode())
    node.compact(4)
    at = Client("at", WatchRequest(key=b"k", start_revision=4))
    at.open(node)
    assert isinstance(at.read()[-1], Cancelled)
    after = Client("after", WatchRequest(key=b"k", start_revision=5))
    after.open(node)
    node.put(b"k", b"x")
    after.read()
    assert [e[3] for e in after.events()] == [5, 6]


def test_a_slow_watcher_is_cancelled_with_where_to_resume_and_others_go_on() -> None:
    node = Node(WatchOptions(queue_bytes_max=2000))
    slow = Client("slow", WatchRequest(key=b"k"))
    fast = Client("fast", WatchRequest(key=b"k"))
    slow.open(node)
    fast.open(node)
    for _i in range(50):
        node.put(b"k", b"x" * 100)
        fast.read()
    items = slow.read()
    cancelled = items[-1]
    assert isinstance(cancelled, Cancelled) and cancelled.reason is CancelReason.SLOW
    assert "queue_bytes_max = 2000" in cancelled.detail
    assert node.hub.stats["cancelled_slow"] == 1
    assert len(fast.events()) == 50
    # It resumes where it was told to, and misses nothing.
    slow.resume(node)
    while slow.read():
        pass
    assert len(slow.events()) == 50
    checked(node, slow, fast)


def test_a_catching_up_watcher_reads_history_a_page_at_a_time() -> None:
    node = Node(WatchOptions(queue_bytes_max=4000))
    for i in range(100):
        node.put(b"k%d" % (i % 7), b"v" * 50)
    client = Client("c", prefix(b"k", start_revision=2))
    watcher = client.open(node)
    assert watcher.queued_bytes <= 4000
    pages = 0
    while len(client.events()) < 100:
        client.read()
        pages += 1
        assert watcher.queued_bytes <= 4000
        if pages == 2:
            node.put(b"k1", b"live")  # arrives while it catches up
    client.read()
    assert pages > 3 and len(client.events()) == 101
    checked(node, client)


def test_a_compaction_cancels_a_watcher_still_catching_up_with_where_to_relist() -> None:
    node = Node(WatchOptions(queue_bytes_max=2000))
    for _i in range(60):
        node.put(b"k", b"v" * 50)
    client = Client("c", WatchRequest(key=b"k", start_revision=2))
    client.open(node)
    client.read()  # one page
    node.compact(50)
    while client.read() and client.cancelled is None:
        pass
    assert client.cancelled is not None
    assert client.cancelled.reason is CancelReason.COMPACTED
    assert client.cancelled.compact_revision == 50
    checked(node, client)


def test_progress_carries_what_was_delivered_never_more() -> None:
    node = Node(WatchOptions(queue_bytes_max=3000))
    for _ in range(40):
        node.put(b"k", b"v" * 50)
    synced = Client("synced", WatchRequest(key=b"k"))
    catching = Client("catching", WatchRequest(key=b"k", start_revision=2))
    synced.open(node)
    w = catching.open(node)
    node.hub.progress(synced.watcher)  # type: ignore[arg-type]
    node.hub.progress(w)
    assert next(i for i in synced.read() if isinstance(i, Progress)).revision == node.revision
    progress = [i for i in catching.read() if isinstance(i, Progress)]
    assert progress and progress[0].revision < node.revision
    checked(node, synced, catching)


def test_periodic_progress_only_when_no_event_was_sent_in_the_interval() -> None:
    node = Node(WatchOptions(progress_interval_ms=1000))
    client = Client("c", WatchRequest(key=b"k", progress_notify=True))
    client.open(node)
    node.hub.tick(500)
    node.put(b"k")
    node.hub.tick(1000)  # an event went out in this interval: no notification
    assert not [i for i in client.read() if isinstance(i, Progress)]
    node.put(b"other")
    node.hub.tick(2000)
    progress = [i for i in client.read() if isinstance(i, Progress)]
    assert [p.revision for p in progress] == [node.revision]
    checked(node, client)


def test_idle_watchers_hear_of_progress_before_a_compaction_takes_their_resume_point() -> None:
    node = Node(WatchOptions(progress_lead_revisions=10))
    idle = Client("idle", WatchRequest(key=b"quiet"))
    idle.open(node)
    for _ in range(25):
        node.put(b"busy")
    progress = [i.revision for i in idle.read() if isinstance(i, Progress)]
    assert progress and progress[-1] > node.revision - 10
    node.compact(node.revision)
    progress = [i.revision for i in idle.read() if isinstance(i, Progress)]
    assert progress == [node.revision]
    # So it can resume (on this node or another) past the compaction.
    idle.resume(node)
    assert idle.cancelled is None and not isinstance(idle.read()[-1], Cancelled)
    checked(node, idle)


def test_fragments_only_when_asked() -> None:
    node = Node(WatchOptions(response_bytes_max=1000))
    whole = Client("whole", prefix(b"k"))
    parts = Client("parts", prefix(b"k", fragment=True))
    whole.open(node)
    parts.open(node)
    node.txn(*(Put(key=b"k%02d" % i, value=b"v" * 100) for i in range(20)))
    assert len([i for i in whole.read() if isinstance(i, Events)]) == 1
    fragments = [i for i in parts.read() if isinstance(i, Events)]
    assert len(fragments) > 2
    assert all(f.fragment for f in fragments[:-1]) and not fragments[-1].fragment
    checked(node, whole, parts)


def test_responses_merge_whole_revisions_up_to_the_byte_limit() -> None:
    node = Node(WatchOptions(response_bytes_max=1000))
    client = Client("c", WatchRequest(key=b"k"))
    client.open(node)
    for _ in range(30):
        node.put(b"k", b"v" * 100)
    events = [i for i in client.read() if isinstance(i, Events)]
    assert 3 <= len(events) < 30
    assert all(len({e.kv.mod_revision for e in i.events}) == len(i.events) for i in events)
    checked(node, client)


def test_resume_on_another_node_that_is_behind_waits_and_misses_nothing() -> None:
    cluster = Cluster(2)
    a, b = cluster.nodes
    client = Client("c", prefix(b"p/", prev_kv=True))
    client.open(a)
    cluster.lagging.add(1)
    for i in range(5):
        cluster.apply(Put(key=b"p/%d" % i, value=b"1"))
    client.read()
    client.resume(b)  # b has none of the five yet: the watch waits for its start
    cluster.apply(DeleteRange(key=b"p/", range_end=prefix_end(b"p/")))
    cluster.lagging.clear()
    cluster.catch_up(1)
    cluster.apply(Put(key=b"p/x", value=b"2"))
    client.read()
    assert [e[0] for e in client.events()] == [0] * 5 + [1] * 5 + [0]
    checked(a, client)


def test_a_node_whose_state_jumps_catches_its_watchers_up_from_history() -> None:
    """A snapshot install replaces the state: revisions arrive without their events, and
    the synced watchers read them from the new state's history."""
    node = Node()
    client = Client("c", prefix(b"k"))
    client.open(node)
    other = Node()
    for i in range(5):
        other.put(b"k%d" % i)
    node.machine = other.machine
    node.history = type(node.history)(other.machine.store)
    node.log = other.log
    node.put(b"k9")
    client.read()
    assert [e[3] for e in client.events()] == [2, 3, 4, 5, 6, 7]
    checked(node, client)


def test_cancel_and_close() -> None:
    node = Node()
    client = Client("c", WatchRequest(key=b"k"))
    watcher = client.open(node)
    node.hub.cancel(watcher)
    node.put(b"k")
    items = client.read()
    assert isinstance(items[-1], Cancelled) and items[-1].reason is CancelReason.CANCELLED
    other = node.hub.watch(WatchRequest(key=b"k"))
    node.put(b"k")
    node.hub.close(other)
    assert other.queue is None and node.hub.watchers == {}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (WatchRequest(key=b"k", start_revision=-1), "start_revision"),
        (WatchRequest(key=b"k", start_revision=2**63), "start_revision"),
        (WatchRequest(key=b"b", range_end=b"a"), "range_end"),
        (WatchRequest(key=b"k", filters=frozenset({2})), "filters"),  # type: ignore[arg-type]
        (WatchRequest(key="k"), "key"),  # type: ignore[arg-type]
    ],
)
def test_a_watch_that_cannot_be_made_is_refused_naming_the_field(
    request_: WatchRequest, field: str
) -> None:
    node = Node()
    with pytest.raises(WatchRequestError) as raised:
        node.hub.watch(request_)
    assert raised.value.field == field


def test_too_many_watchers_are_cancelled_as_overloaded() -> None:
    node = Node(WatchOptions(watchers_max=2))
    node.hub.watch(WatchRequest(key=b"a"))
    node.hub.watch(WatchRequest(key=b"b"))
    third = node.hub.watch(WatchRequest(key=b"c"))
    items = node.hub.take(third)
    assert isinstance(items[-1], Cancelled) and items[-1].reason is CancelReason.OVERLOADED


def test_idle_watchers_hear_of_progress_before_an_automatic_compaction_is_applied() -> None:
    """The hub knows the store's automatic compaction rule (the leader's): when a compaction
    becomes due, idle watchers are told of progress past it before the Compact reaches
    the log, so a client that reconnects later resumes after it."""
    from paxosd.watch import WatchHub, compaction_due

    node = Node()
    node.hub = WatchHub(
        lambda: node.history,
        WatchOptions(progress_lead_revisions=10_000),
        compaction_due(revisions_max=5, bytes_max=1 << 30),
    )
    idle = Client("idle", WatchRequest(key=b"quiet"))
    idle.open(node)
    for _ in range(8):
        node.put(b"busy")
    due = node.machine.store.compaction_target(5, 1 << 30)
    assert due is not None  # the leader would propose Compact(due) now ...
    progress = [i.revision for i in idle.read() if isinstance(i, Progress)]
    assert progress and progress[-1] > due  # ... and the idle watcher already knows more
    node.compact(due)
    idle.resume(node)
    assert not isinstance(idle.read()[-1], Cancelled)
    checked(node, idle)


def test_the_history_of_the_machine_a_replica_holds_now() -> None:
    """MachineHistory, asked for every applied command, hands out the same history while the
    replica keeps its machine, and the new machine's history once a snapshot replaced it."""
    held = [Router()]
    source = MachineHistory(lambda: held[0])
    first = source()
    held[0].apply(1, encode(Request(client_id="c", seq=1, op=Put(key=b"k", value=b"v"))))
    assert source() is first and first.revision == 2
    held[0] = Router.restore(held[0].snapshot())
    replaced = source()
    assert replaced is not first and replaced.store is held[0].kv.store
    assert replaced.revision == 2 and source() is replaced
