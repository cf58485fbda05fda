"""etcd's key-value semantics on the multi-version store, rule by rule."""

from __future__ import annotations

from typing import Any

import pytest

from paxosd.service import Request, Router, encode
from paxosd.service.kv import (
    Compact,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    EventType,
    KeyValue,
    KvError,
    KvLimits,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    SortOrder,
    SortTarget,
    Txn,
    TxnResponse,
    prefix_end,
)
from paxosd.service.namespace import Options


class Kv:
    """A router fed requests through the log (and reads directly), as the engine does."""

    def __init__(self, limits: KvLimits | None = None) -> None:
        self.router = Router(options=Options(kv_limits=limits or KvLimits()))
        self.slot = 0

    def log(self, op: Any) -> Any:
        self.slot += 1
        request = Request(client_id="c", seq=self.slot, op=op)
        answer, _ = self.router.apply(self.slot, encode(request))
        return answer

    def read(self, op: Any) -> Any:
        return self.router.read(op)

    def put(self, key: bytes, value: bytes = b"v") -> int:
        answer = self.log(Put(key=key, value=value))
        assert isinstance(answer, PutResponse)
        return answer.revision

    def keys(self, **fields: Any) -> list[bytes]:
        answer = self.read(Range(**fields))
        assert isinstance(answer, RangeResponse), answer
        return [kv.key for kv in answer.kvs]


def test_revisions_start_at_one_and_move_once_per_effective_write() -> None:
    """An empty store is at revision 1; a put is 2; a delete of nothing changes nothing; a
    transaction is one revision however many keys it writes."""
    kv = Kv()
    assert kv.read(Range(key=b"k")) == RangeResponse(revision=1)
    assert kv.put(b"a") == 2
    assert kv.log(DeleteRange(key=b"zz")) == DeleteRangeResponse(revision=2, deleted=0)
    answer = kv.log(Txn(success=(Put(key=b"b"), Put(key=b"c"), DeleteRange(key=b"a"))))
    assert isinstance(answer, TxnResponse) and answer.revision == 3
    assert [r.revision for r in answer.responses] == [3, 3, 3]
    assert kv.router.revision == 3


def test_versions_count_changes_and_restart_after_a_delete() -> None:
    kv = Kv()
    kv.put(b"k", b"1")
    kv.put(b"k", b"2")
    assert kv.read(Range(key=b"k")).kvs == (KeyValue(b"k", 2, 3, 2, b"2", 0),)
    kv.log(DeleteRange(key=b"k"))
    kv.put(b"k", b"3")
    assert kv.read(Range(key=b"k")).kvs == (KeyValue(b"k", 5, 5, 1, b"3", 0),)


def test_range_conventions_select_in_byte_order() -> None:
    kv = Kv()
    for key in (b"a", b"a/1", b"a/2", b"a0", b"b", b"\xff\x01"):
        kv.put(key)
    assert kv.keys(key=b"a/", range_end=prefix_end(b"a/")) == [b"a/1", b"a/2"]
    assert kv.keys(key=b"a0", range_end=b"\0") == [b"a0", b"b", b"\xff\x01"]
    assert kv.keys(key=b"\0", range_end=b"\0") == [b"a", b"a/1", b"a/2", b"a0", b"b", b"\xff\x01"]
    assert kv.keys(key=b"b", range_end=b"a") == []
    assert kv.keys(key=b"a/1") == [b"a/1"]


def test_filter_then_sort_then_limit() -> None:
    """etcdctl lock's query (sort by CREATE descending, limit 1, max_create_revision) finds
    the newest waiter created before a revision: the filters apply before sort and limit;
    count counts what passed the filters and `more` says the limit cut."""
    kv = Kv()
    created = [kv.put(b"lock/%d" % i) for i in range(5)]  # revisions 2..6
    answer = kv.read(
        Range(
            key=b"lock/",
            range_end=prefix_end(b"lock/"),
            sort_target=SortTarget.CREATE,
            sort_order=SortOrder.DESCEND,
            limit=1,
            max_create_revision=created[3] - 1,
        )
    )
    assert [x.key for x in answer.kvs] == [b"lock/2"]
    assert answer.count == 3 and answer.more


def test_sorting_is_stable_and_descend_is_the_exact_reverse() -> None:
    kv = Kv()
    kv.log(Txn(success=(Put(key=b"a", value=b"x"), Put(key=b"b", value=b"x"))))
    kv.put(b"c", b"w")
    ascend = kv.keys(key=b"a", range_end=b"\0", sort_target=SortTarget.VALUE)
    assert ascend == [b"c", b"a", b"b"]
    descend = kv.keys(
        key=b"a", range_end=b"\0", sort_target=SortTarget.MOD, sort_order=SortOrder.DESCEND
    )
    assert descend == [b"c", b"b", b"a"]


def test_keys_only_and_count_only() -> None:
    kv = Kv()
    kv.put(b"a", b"1")
    kv.put(b"b", b"2")
    answer = kv.read(Range(key=b"a", range_end=b"c", keys_only=True, limit=1))
    assert answer.kvs == (KeyValue(b"a", 2, 2, 1, b"", 0),) and answer.more and answer.count == 2
    assert kv.read(Range(key=b"a", range_end=b"c", count_only=True)) == RangeResponse(
        revision=3, count=2
    )


def test_history_reads_and_compaction() -> None:
    """Past revisions read as they were; compaction refuses below it (naming the oldest
    revision held), keeps it readable at and above; future revisions are refused."""
    kv = Kv()
    kv.put(b"k", b"1")  # 2
    kv.put(b"k", b"2")  # 3
    kv.log(DeleteRange(key=b"k"))  # 4
    assert kv.read(Range(key=b"k", revision=2)).kvs[0].value == b"1"
    assert kv.read(Range(key=b"k", revision=4)).kvs == ()
    assert kv.log(Compact(revision=3)) == CompactionResponse(revision=4)
    assert kv.read(Range(key=b"k", revision=3)).kvs[0].value == b"2"
    refused = kv.read(Range(key=b"k", revision=2))
    assert isinstance(refused, KvError) and refused.code == "compacted"
    assert "oldest revision held is 3" in refused.detail
    again = kv.log(Compact(revision=3))
    assert isinstance(again, KvError) and again.code == "compacted"
    future = kv.read(Range(key=b"k", revision=5))
    assert isinstance(future, KvError) and future.code == "future_revision"
    beyond = kv.log(Compact(revision=9))
    assert isinstance(beyond, KvError) and beyond.code == "future_revision"


def test_put_flags() -> None:
    kv = Kv()
    missing = kv.log(Put(key=b"k", ignore_value=True))
    assert isinstance(missing, KvError) and missing.message == "etcdserver: key not found"
    kv.put(b"k", b"old")
    answer = kv.log(Put(key=b"k", ignore_value=True, prev_kv=True))
    assert answer == PutResponse(revision=3, prev_kv=KeyValue(b"k", 2, 2, 1, b"old", 0))
    assert kv.read(Range(key=b"k")).kvs == (KeyValue(b"k", 2, 3, 2, b"old", 0),)
    leased = kv.log(Put(key=b"k", value=b"v", lease=42))
    assert isinstance(leased, KvError) and leased.message == "etcdserver: requested lease not found"
    assert kv.router.revision == 3


def test_delete_range_is_one_revision_with_prev_kvs_and_events() -> None:
    kv = Kv()
    kv.put(b"p/a")
    kv.put(b"p/b")
    answer = kv.log(DeleteRange(key=b"p/", range_end=prefix_end(b"p/"), prev_kv=True))
    assert answer.deleted == 2 and answer.revision == 4
    assert [x.key for x in answer.prev_kvs] == [b"p/a", b"p/b"]
    events = kv.router.events
    assert [(e.type, e.kv, e.prev_kv.key) for e in events] == [
        (EventType.DELETE, KeyValue(b"p/a", 0, 4, 0, b"", 0), b"p/a"),
        (EventType.DELETE, KeyValue(b"p/b", 0, 4, 0, b"", 0), b"p/b"),
    ]


def test_transaction_compares_every_target_and_ranges() -> None:
    kv = Kv()
    kv.put(b"a", b"1")  # create 2
    kv.put(b"b", b"2")  # create 3

    def holds(**compare: Any) -> bool:
        answer = kv.read(Txn(compare=(Compare(**compare),)))
        assert isinstance(answer, TxnResponse)
        return answer.succeeded

    assert holds(key=b"a", target=CompareTarget.VALUE, value=b"1")
    assert holds(key=b"a", target=CompareTarget.VERSION, version=1)
    assert holds(
        key=b"a", target=CompareTarget.CREATE, result=CompareResult.LESS, create_revision=3
    )
    assert holds(key=b"b", target=CompareTarget.MOD, result=CompareResult.GREATER, mod_revision=2)
    assert holds(key=b"a", target=CompareTarget.LEASE, lease=0)
    assert holds(key=b"zz", target=CompareTarget.CREATE, create_revision=0)  # absent
    assert not holds(key=b"zz", target=CompareTarget.VALUE, value=b"")  # absent: false
    assert not holds(key=b"a", range_end=b"c", target=CompareTarget.VALUE, value=b"1")
    assert holds(
        key=b"a",
        range_end=b"c",
        target=CompareTarget.VALUE,
        result=CompareResult.NOT_EQUAL,
        value=b"x",
    )


def test_nested_compares_read_the_state_before_the_transaction() -> None:
    """etcd evaluates every compare on the chosen path before any op runs."""
    kv = Kv()
    absent = Compare(key=b"k", target=CompareTarget.CREATE, create_revision=0)
    answer = kv.log(
        Txn(success=(Put(key=b"k"), Txn(compare=(absent,), success=(Put(key=b"seen"),))))
    )
    assert isinstance(answer, TxnResponse) and answer.responses[1].succeeded
    assert answer.responses[1].revision == 0  # a nested answer has no header, as etcd's
    assert kv.keys(key=b"seen") == [b"seen"]


def test_ops_see_the_writes_before_them_in_one_revision() -> None:
    kv = Kv()
    answer = kv.log(Txn(success=(Put(key=b"a", value=b"1"), Range(key=b"a"))))
    assert answer.responses[1] == RangeResponse(
        revision=2, kvs=(KeyValue(b"a", 2, 2, 1, b"1", 0),), count=1
    )


def test_a_refused_transaction_changes_nothing() -> None:
    """A range answer over the limit refuses the transaction after it wrote: undone."""
    kv = Kv()
    for i in range(5):
        kv.put(b"k%d" % i)
    snapshot = kv.router.snapshot()
    big = Txn(success=(Put(key=b"new"), Range(key=b"k", range_end=b"\0")))
    limits = KvLimits(range_keys_max=3)
    tight = Kv(limits)
    for i in range(5):
        tight.put(b"k%d" % i)
    refused = tight.read(Range(key=b"k", range_end=b"\0"))
    assert isinstance(refused, KvError) and "range_keys_max = 3" in refused.detail
    assert "6 keys" in refused.detail or "5 keys" in refused.detail
    answer = kv.log(big)  # applied answers use the defaults, which every replica shares
    assert isinstance(answer, TxnResponse)
    assert kv.router.snapshot() != snapshot
    before = tight.router.kv.store.history_bytes, tight.router.revision
    error = tight.read(Txn(success=(Range(key=b"k", range_end=b"\0"),)))
    assert isinstance(error, KvError)
    assert (tight.router.kv.store.history_bytes, tight.router.revision) == before
    tight.router.kv.store.invariants()


def test_answer_limit_in_a_write_transaction_undoes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests applied from the log are bounded by limits every replica shares; a range over
    them refuses its transaction after the transaction wrote: the writes are undone."""
    from paxosd.service.kv import machine

    monkeypatch.setattr(machine, "APPLIED_LIMITS", KvLimits(range_bytes_max=100))
    kv = Kv()
    for i in range(10):
        kv.put(b"k%d" % i, b"x" * 20)
    store = kv.router.kv.store
    before = (store.revision, store.history_bytes, store.live_keys)
    answer = kv.log(Txn(success=(Put(key=b"k0", value=b"y"), Range(key=b"k", range_end=b"\0"))))
    assert isinstance(answer, KvError) and answer.code == "answer_too_large"
    assert "range_bytes_max = 100" in answer.detail
    assert kv.router.events == ()
    assert (store.revision, store.history_bytes, store.live_keys) == before
    assert kv.read(Range(key=b"k0")).kvs[0].value == b"x" * 20
    store.invariants()


def test_a_key_put_and_deleted_by_two_nested_transactions() -> None:
    """etcd lets one nested transaction put a key and a later one delete it: both changes
    carry the request's revision, the delete wins, and both are events."""
    kv = Kv()
    kv.put(b"a", b"old")
    answer = kv.log(
        Txn(
            success=(
                Txn(success=(Put(key=b"a", value=b"new"),)),
                Txn(success=(DeleteRange(key=b"a"),)),
            )
        )
    )
    assert isinstance(answer, TxnResponse) and answer.revision == 3
    assert [e.type for e in kv.router.events] == [EventType.PUT, EventType.DELETE]
    assert kv.read(Range(key=b"a")).kvs == ()
    assert kv.read(Range(key=b"a", revision=2)).kvs[0].value == b"old"
    data = kv.router.snapshot()
    assert Router.restore(data).snapshot() == data
    kv.router.kv.store.invariants()


def test_events_of_a_put() -> None:
    kv = Kv()
    kv.put(b"k", b"1")
    kv.put(b"k", b"2")
    (event,) = kv.router.events
    assert event.type is EventType.PUT and event.revision == 3
    assert event.kv == KeyValue(b"k", 2, 3, 2, b"2", 0)
    assert event.prev_kv == KeyValue(b"k", 2, 2, 1, b"1", 0)
    kv.log(Range(key=b"k"))
    assert kv.router.events == ()


def test_a_plain_put_answers_as_any_put() -> None:
    """A put with no lease and no flags takes the commit path's short way: its answer, its
    event, its version and the exactly-once table's copy are those of any other put."""
    kv = Kv()
    kv.put(b"k", b"1")
    answer = kv.log(Put(key=b"k", value=b"2"))
    assert answer == PutResponse(revision=3) and repr(answer) == repr(PutResponse(revision=3))
    assert hash(answer) == hash(PutResponse(revision=3))
    assert kv.router.events[0].kv == KeyValue(b"k", 2, 3, 2, b"2", 0)
    retry = encode(Request(client_id="c", seq=kv.slot, op=Put(key=b"k", value=b"2")))
    again, _ = kv.router.apply(kv.slot + 1, retry)  # the client retried: applied once
    assert again == answer and kv.router.revision == 3


def test_compaction_frees_versions_but_not_under_an_open_view() -> None:
    """Physical compaction waits for the snapshot views that still need the versions."""
    kv = Kv()
    for i in range(10):
        kv.put(b"k", b"%d" % i)
    store = kv.router.kv.store
    view = kv.router.snapshot_view()
    kv.log(Compact(revision=11))
    assert len(store.history[b"k"]) == 10  # the view captured compact revision -1
    view.close()
    kv.put(b"other")  # any write lets the store catch up
    assert len(store.history[b"k"]) == 1
    assert store.history_bytes == 0  # compacted at the current revision; "other" is new
    store.invariants()


@pytest.mark.parametrize(("revisions_max", "bytes_max"), [(3, 10**9), (10**9, 500)])
def test_compaction_target_keeps_history_within_both_bounds(
    revisions_max: int, bytes_max: int
) -> None:
    kv = Kv()
    for i in range(20):
        kv.put(b"k%d" % (i % 4), b"x" * 50)
    store = kv.router.kv.store
    target = store.compaction_target(revisions_max, bytes_max)
    assert target is not None
    kv.log(Compact(revision=target))
    assert (
        store.revision - store.compact_revision <= revisions_max or store.history_bytes <= bytes_max
    )
    assert store.history_bytes <= max(bytes_max, store.history_bytes)
    assert store.compaction_target(revisions_max, bytes_max) is None


def test_automatic_compaction_waits_for_an_eighth_over_a_limit() -> None:
    """The leader proposes a Compact once the history is an eighth over a limit, to bring it
    back within both: under a steady write load, one every eighth of the history, not one
    per tick (each is a log entry, an apply on every replica and a log line)."""
    from paxosd.service.kv.checks import KvLimits
    from paxosd.service.kv.compaction import AutoCompactor
    from paxosd.service.kv.store import MvccStore

    store = MvccStore()
    compactor = AutoCompactor(KvLimits(history_revisions_max=80))

    def write(count: int) -> None:
        for i in range(count):
            store.begin()
            store.put(b"k%d" % (i % 7), b"v", 0)
            store.commit(True)

    write(88)  # revision 89: within 80 + 80 // 8 (an empty store is at revision 1)
    assert compactor.due(store) is None
    write(1)
    proposed = compactor.due(store)
    assert proposed is not None and proposed.revision == store.revision - 80
    assert compactor.due(store) is None  # in flight: not proposed again at once
