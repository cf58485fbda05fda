"""Leases of the key-value store (kv/leases.py): etcd's requests and answers, keys that follow
their lease, expiry decided by log time only, in one revision; snapshots; bad input."""

from __future__ import annotations

import io
from typing import Any

import pytest

from paxosd.service import (
    AdvanceTime,
    BadCommand,
    CorruptSnapshot,
    LockAcquire,
    LockRelease,
    LockStatus,
    Put,
    Router,
    decode,
    encode,
)
from paxosd.service.kv import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    EventType,
    KvError,
    LeaseGrant,
    LeaseGrantResponse,
    LeaseKeepAlive,
    LeaseKeepAliveResponse,
    LeaseLeases,
    LeaseLeasesResponse,
    LeaseRevoke,
    LeaseRevokeResponse,
    LeaseTimeToLive,
    LeaseTimeToLiveResponse,
    Range,
    Txn,
    lease_ttl_ms_max,
)
from paxosd.service.kv import Put as KvPut
from paxosd.service.kv.leases import lock_lease_base
from paxosd.service.results import LockResult, result_from_raw, result_to_raw
from paxosd.service.snapshot import SnapshotWriter

from .helpers import Log


def put(log: Log, key: bytes, lease: int = 0, value: bytes = b"v") -> Any:
    return log.run(KvPut(key=key, value=value, lease=lease))


def keys(log: Log) -> list[bytes]:
    answer = log.machine.read(Range(key=b"\0", range_end=b"\0"))
    return [kv.key for kv in answer.kvs]  # type: ignore[union-attr]


def ttl(log: Log, lease_id: int, with_keys: bool = False) -> LeaseTimeToLiveResponse:
    answer = log.machine.read(LeaseTimeToLive(id=lease_id, keys=with_keys))
    assert isinstance(answer, LeaseTimeToLiveResponse)
    return answer


def at(log: Log, now_ms: int) -> tuple[Any, ...]:
    """Move log time to `now_ms`; the events the entry made (the leases it ended)."""
    log.run(AdvanceTime(now_ms=now_ms))
    return log.machine.events


# -- grant, ids ---------------------------------------------------------------------------


def test_grant_chooses_ids_and_refuses_an_id_in_use() -> None:
    log = Log()
    assert log.run(LeaseGrant(ttl_ms=5000)) == LeaseGrantResponse(revision=1, id=1, ttl_ms=5000)
    assert log.run(LeaseGrant(ttl_ms=5000, id=2)) == LeaseGrantResponse(
        revision=1, id=2, ttl_ms=5000
    )
    # The store skips the id asked for by the grant before.
    assert log.run(LeaseGrant(ttl_ms=10)).id == 3  # type: ignore[union-attr]
    refused = log.run(LeaseGrant(ttl_ms=99, id=2))
    assert isinstance(refused, KvError) and refused.code == "lease_exist"
    assert refused.message == "etcdserver: lease already exists"
    assert ttl(log, 2).granted_ttl_ms == 5000  # unchanged by the refused grant
    assert log.machine.read(LeaseLeases()) == LeaseLeasesResponse(revision=1, ids=(1, 2, 3))


def test_an_id_the_store_chose_is_never_chosen_again() -> None:
    """A program holding a lost lease's id cannot mistake a later lease for its own."""
    log = Log()
    first = log.run(LeaseGrant(ttl_ms=100)).id  # type: ignore[union-attr]
    log.run(LeaseRevoke(id=first))
    assert log.run(LeaseGrant(ttl_ms=100)).id != first  # type: ignore[union-attr]
    # Asked for by name, a free id is granted (etcd does the same).
    assert log.run(LeaseGrant(ttl_ms=100, id=first)).id == first  # type: ignore[union-attr]


# -- keys follow their lease ----------------------------------------------------------------


def test_revoke_deletes_every_key_of_the_lease_in_one_revision() -> None:
    log = Log()
    lease = log.run(LeaseGrant(ttl_ms=10_000)).id  # type: ignore[union-attr]
    for key in (b"a", b"b", b"c"):
        put(log, key, lease)
    put(log, b"free")
    assert ttl(log, lease, with_keys=True).keys == (b"a", b"b", b"c")
    answer = log.run(LeaseRevoke(id=lease))
    assert answer == LeaseRevokeResponse(revision=6)
    events = log.machine.events
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [
        (EventType.DELETE, key, 6) for key in (b"a", b"b", b"c")
    ]
    assert [e.prev_kv.lease for e in events] == [lease] * 3
    assert keys(log) == [b"free"]
    assert ttl(log, lease) == LeaseTimeToLiveResponse(
        revision=6, id=lease, ttl_ms=-1, granted_ttl_ms=0
    )
    again = log.run(LeaseRevoke(id=lease))
    assert isinstance(again, KvError) and again.message == "etcdserver: requested lease not found"
    assert log.machine.revision == 6  # nothing changed


def test_a_lease_without_keys_ends_without_a_revision() -> None:
    log = Log()
    lease = log.run(LeaseGrant(ttl_ms=100)).id  # type: ignore[union-attr]
    assert log.run(LeaseRevoke(id=lease)) == LeaseRevokeResponse(revision=1)
    assert log.machine.revision == 1 and log.machine.events == ()


def test_a_key_follows_its_newest_version_s_lease() -> None:
    """Re-put without a lease, with another lease, with ignore_lease, deleted, by a legacy
    command, in a transaction: the key is deleted by the lease its newest version names."""
    log = Log()
    one = log.run(LeaseGrant(ttl_ms=1000)).id  # type: ignore[union-attr]
    two = log.run(LeaseGrant(ttl_ms=1000)).id  # type: ignore[union-attr]
    for key in (b"plain", b"moved", b"kept", b"deleted", b"legacy", b"txn"):
        put(log, key, one)
    put(log, b"plain")  # no lease now
    put(log, b"moved", two)
    log.run(KvPut(key=b"kept", value=b"w", ignore_lease=True))
    log.run(DeleteRange(key=b"deleted"))
    log.run(Put(key="legacy", value=1))
    log.run(Txn(success=(KvPut(key=b"txn", lease=two),)))
    assert ttl(log, one, with_keys=True).keys == (b"kept",)
    assert ttl(log, two, with_keys=True).keys == (b"moved", b"txn")
    log.run(LeaseRevoke(id=one))
    assert keys(log) == [b"legacy", b"moved", b"plain", b"txn"]


def test_a_put_with_an_unknown_or_ended_lease_is_refused_and_changes_nothing() -> None:
    log = Log()
    lease = log.run(LeaseGrant(ttl_ms=1000)).id  # type: ignore[union-attr]
    log.run(LeaseRevoke(id=lease))
    for op in (
        KvPut(key=b"k", lease=lease),
        KvPut(key=b"k", lease=12345),
        Txn(success=(KvPut(key=b"a"), KvPut(key=b"k", lease=lease))),
    ):
        refused = log.run(op)
        assert isinstance(refused, KvError) and refused.code == "lease_not_found", op
        assert refused.message == "etcdserver: requested lease not found"
    assert log.machine.revision == 1 and keys(log) == []


def test_a_transaction_compares_leases() -> None:
    log = Log()
    lease = log.run(LeaseGrant(ttl_ms=1000)).id  # type: ignore[union-attr]
    put(log, b"k", lease)
    same = Compare(key=b"k", target=CompareTarget.LEASE, result=CompareResult.EQUAL, lease=lease)
    assert log.run(Txn(compare=(same,))).succeeded  # type: ignore[union-attr]


# -- time ---------------------------------------------------------------------------------


def test_log_time_alone_ends_a_lease_the_moment_it_passes_the_deadline() -> None:
    log = Log()
    at(log, 1000)
    lease = log.run(LeaseGrant(ttl_ms=500)).id  # type: ignore[union-attr]
    put(log, b"k", lease)
    assert log.machine.wants_log_time
    assert at(log, 1400) == ()
    assert ttl(log, lease).ttl_ms == 100
    assert at(log, 1500) == ()  # the deadline itself is still live
    assert ttl(log, lease).ttl_ms == 0 and keys(log) == [b"k"]
    events = at(log, 1501)
    assert [(e.type, e.kv.key) for e in events] == [(EventType.DELETE, b"k")]
    assert keys(log) == [] and ttl(log, lease).ttl_ms == -1
    assert not log.machine.wants_log_time


def test_leases_passed_by_one_step_of_time_end_in_one_revision() -> None:
    log = Log()
    ids = [log.run(LeaseGrant(ttl_ms=ms)).id for ms in (100, 200, 300)]  # type: ignore[union-attr]
    for i, lease in enumerate(ids):
        put(log, b"k%d" % i, lease)
    revision = log.machine.revision
    events = at(log, 250)
    assert {e.kv.key for e in events} == {b"k0", b"k1"}
    assert {e.kv.mod_revision for e in events} == {revision + 1}
    assert log.machine.revision == revision + 1
    assert keys(log) == [b"k2"]


def test_keepalive_renews_to_the_full_ttl_from_now() -> None:
    log = Log()
    lease = log.run(LeaseGrant(ttl_ms=1000)).id  # type: ignore[union-attr]
    put(log, b"k", lease)
    at(log, 900)
    assert log.run(LeaseKeepAlive(id=lease)) == LeaseKeepAliveResponse(
        revision=2, id=lease, ttl_ms=1000
    )
    assert at(log, 1500) == ()  # past the first deadline: the renewal holds
    assert ttl(log, lease).ttl_ms == 400
    assert len(at(log, 1901)) == 1


def test_two_renewals_at_one_log_time_end_the_lease_once() -> None:
    """Found by the simulator: both renewals queue the same deadline; the lease ends once."""
    log = Log()
    lease = log.run(LeaseGrant(ttl_ms=100)).id  # type: ignore[union-attr]
    put(log, b"k", lease)
    log.run(LeaseKeepAlive(id=lease))
    log.run(LeaseKeepAlive(id=lease))
    assert [e.kv.key for e in at(log, 101)] == [b"k"]
    assert log.machine.read(LeaseLeases()).ids == ()  # type: ignore[union-attr]


def test_keepalive_of_an_ended_lease_is_refused() -> None:
    log = Log()
    lease = log.run(LeaseGrant(ttl_ms=100)).id  # type: ignore[union-attr]
    at(log, 101)
    refused = log.run(LeaseKeepAlive(id=lease))
    assert isinstance(refused, KvError) and refused.code == "lease_not_found"
    assert log.machine.read(LeaseLeases()) == LeaseLeasesResponse(revision=1, ids=())


def test_a_stale_time_changes_nothing() -> None:
    """Log time never goes back: an older stamp neither ends nor revives a lease."""
    log = Log()
    at(log, 1000)
    lease = log.run(LeaseGrant(ttl_ms=100)).id  # type: ignore[union-attr]
    at(log, 50)
    assert ttl(log, lease).ttl_ms == 100


# -- snapshots and the exactly-once table ----------------------------------------------------


def test_leases_survive_a_snapshot_and_end_on_time_after_it() -> None:
    log = Log()
    at(log, 100)
    one = log.run(LeaseGrant(ttl_ms=1000)).id  # type: ignore[union-attr]
    two = log.run(LeaseGrant(ttl_ms=5000, id=77)).id  # type: ignore[union-attr]
    put(log, b"a", one)
    put(log, b"b", two)
    put(log, b"c")
    at(log, 600)
    restored = Router.restore(log.machine.snapshot())
    assert restored.snapshot() == log.machine.snapshot()
    copy = Log(restored)
    for each in (log, copy):
        assert ttl(each, one, with_keys=True).keys == (b"a",)
        assert ttl(each, one).ttl_ms == 500
        assert each.run(LeaseGrant(ttl_ms=10)).id == 2  # type: ignore[union-attr]
        assert len(at(each, 1101)) == 1
        assert keys(each) == [b"b", b"c"]
        each.run(LeaseRevoke(id=two))
        assert keys(each) == [b"c"]


def test_cached_lease_answers_survive_the_exactly_once_table() -> None:
    answers = [
        LeaseGrantResponse(revision=3, id=9, ttl_ms=10),
        LeaseRevokeResponse(revision=4),
        LeaseKeepAliveResponse(revision=4, id=9, ttl_ms=10),
        LeaseTimeToLiveResponse(revision=4, id=9, ttl_ms=-1, granted_ttl_ms=0),
        LeaseTimeToLiveResponse(revision=4, id=9, ttl_ms=5, granted_ttl_ms=10, keys=(b"k",)),
        LeaseLeasesResponse(revision=4, ids=(1, 9)),
    ]
    for answer in answers:
        assert result_from_raw(result_to_raw(answer)) == answer
    log = Log()
    log.request("c", 1, LeaseGrant(ttl_ms=1000))
    restored = Log(Router.restore(log.machine.snapshot()))
    # The retry is answered from the table: the same lease, not a second one.
    assert restored.request("c", 1, LeaseGrant(ttl_ms=1000)) == LeaseGrantResponse(
        revision=1, id=1, ttl_ms=1000
    )
    assert restored.machine.read(LeaseLeases()).ids == (1,)  # type: ignore[union-attr]


def _v3(*objects: object) -> bytes:
    out = io.BytesIO()
    writer = SnapshotWriter(out)
    for item in objects:
        writer.write(item)
    writer.close()
    return out.getvalue()


HEAD = ["paxosd", 5, 0, 100, ["kv", "coordination"]]
TAIL = [["coordination", 0, 0, 0, 0], ["sessions", 0]]


def test_a_hand_made_section_with_leases_restores() -> None:
    section = [["kv", 2, -1, 8, 1], [7, 100, 50], [b"a", [[2, 2, 1, b"v", 7]]], None]
    machine = Router.restore(_v3(HEAD, *section, *TAIL))
    assert machine.read(LeaseTimeToLive(id=7, keys=True)) == LeaseTimeToLiveResponse(
        revision=2, id=7, ttl_ms=50, granted_ttl_ms=100, keys=(b"a",)
    )


BAD_SECTIONS = [
    [["kv", 2, -1, 1, 0], [b"a", [[2, 2, 1, b"v", 7]]], None],  # key on an absent lease
    [["kv", 2, -1, 1, 2], [7, 100, 50], [3, 100, 50], None],  # leases out of order
    [["kv", 2, -1, 1, 1], [7, 0, 50], None],  # a TTL of 0
    [["kv", 2, -1, 1, 1], [7, lease_ttl_ms_max + 1, 50], None],  # TTL too long
    [["kv", 2, -1, 1, 1], [7, 100], None],  # short row
    [["kv", 2, -1, 0, 0], None],  # next id 0
    [["kv", 2, -1, 1, -1], None],  # negative count
    [["kv", 2, -1, 1], None],  # header of 4
]


@pytest.mark.parametrize("section", BAD_SECTIONS, ids=range(len(BAD_SECTIONS)))
def test_invalid_lease_sections_are_refused(section: list[object]) -> None:
    with pytest.raises(CorruptSnapshot):
        Router.restore(_v3(HEAD, *section, *TAIL))


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "code"),
    [
        (LeaseGrant(ttl_ms=0), "invalid_argument"),
        (LeaseGrant(ttl_ms=-5), "invalid_argument"),
        (LeaseGrant(ttl_ms=lease_ttl_ms_max + 1), "lease_ttl_too_large"),
        (LeaseGrant(ttl_ms=1.5), "invalid_argument"),  # type: ignore[arg-type]
        (LeaseGrant(ttl_ms=100, id=-1), "invalid_argument"),
        (LeaseGrant(ttl_ms=100, id=2**63), "invalid_argument"),
        (LeaseGrant(ttl_ms=100, id=lock_lease_base), "invalid_argument"),  # the locks' ids
        (LeaseRevoke(id=lock_lease_base + 1), "invalid_argument"),
        (LeaseRevoke(id=0), "invalid_argument"),
        (LeaseKeepAlive(id="1"), "invalid_argument"),  # type: ignore[arg-type]
        (LeaseTimeToLive(id=1, keys=1), "invalid_argument"),  # type: ignore[arg-type]
        (KvPut(key=b"k", lease=-1), None),  # etcd's int64: refused by the store, not here
    ],
)
def test_invalid_lease_requests_never_reach_the_log(op: Any, code: str | None) -> None:
    if code is None:
        log = Log()
        refused = log.run(op)
        assert isinstance(refused, KvError) and refused.code == "lease_not_found"
        return
    with pytest.raises(BadCommand) as caught:
        encode(op)
    assert caught.value.error.code == code  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "raw",
    [[19], [19, 10, 0, 1], [20], [20, 1, 2], [21, "x"], [22, 1, True, 0], [23, 1], [19, True]],
)
def test_malformed_lease_payloads_are_refused_by_decode(raw: list[Any]) -> None:
    import msgpack

    with pytest.raises(BadCommand):
        decode(msgpack.packb(raw))


def test_lease_requests_round_trip_through_the_log() -> None:
    for op in (
        LeaseGrant(ttl_ms=1),
        LeaseGrant(ttl_ms=lease_ttl_ms_max, id=lock_lease_base - 1),
        LeaseRevoke(id=3),
        LeaseKeepAlive(id=3),
        LeaseTimeToLive(id=3),
        LeaseTimeToLive(id=3, keys=True),
        LeaseLeases(),
    ):
        assert decode(encode(op)) == op


# -- locks are held by leases: one TTL machine -----------------------------------------------


def test_a_held_lock_is_held_by_a_lease_no_request_can_touch() -> None:
    log = Log()
    held = log.run(LockAcquire(name="L", owner="a", ttl_ms=1000))
    assert isinstance(held, LockResult) and held.fencing_token == 1
    lessor = log.machine.kv.leases
    assert set(lessor.leases) == {lock_lease_base + 1}
    assert log.machine.wants_log_time  # the store keeps time moving for the lock's lease
    assert log.machine.read(LeaseLeases()).ids == ()  # type: ignore[union-attr]
    refused = log.run(KvPut(key=b"k", lease=lock_lease_base + 1))
    assert isinstance(refused, KvError) and refused.code == "lease_not_found"
    at(log, 1001)  # the lease ends: the lock is free, and time may rest
    free = log.machine.read(LockStatus(name="L"))
    assert isinstance(free, LockResult) and not free.acquired
    assert not lessor.leases and not log.machine.wants_log_time
    again = log.run(LockAcquire(name="L", owner="b", ttl_ms=500))
    assert isinstance(again, LockResult) and again.fencing_token == 2
    log.run(LockRelease(name="L", owner="b"))
    assert not lessor.leases  # released: its lease ended with it


def test_locks_and_their_leases_survive_a_snapshot() -> None:
    log = Log()
    log.run(LockAcquire(name="L", owner="a", ttl_ms=1000))
    at(log, 400)
    restored = Log(Router.restore(log.machine.snapshot()))
    assert restored.machine.snapshot() == log.machine.snapshot()
    for each in (log, restored):
        status = each.machine.read(LockStatus(name="L"))
        assert isinstance(status, LockResult) and status.expires_in_ms == 600
        at(each, 1001)
        assert not each.machine.read(LockStatus(name="L")).acquired  # type: ignore[union-attr]


def test_a_snapshot_whose_locks_have_expiry_dates_still_loads() -> None:
    """Before locks were held by leases, a lock row held its expiry in log time."""
    head = ["paxosd", 5, 1000, 100, ["kv", "coordination"]]
    section = [["kv", 1, -1], None]
    coordination = [
        ["coordination", 2, 2, 0, 0],
        ["gone", "b", 1, 900, True],  # expired before the snapshot's log time
        ["held", "a", 2, 5000, True],
    ]
    machine = Router.restore(_v3(head, *section, *coordination, ["sessions", 0]))
    log = Log(machine)
    status = machine.read(LockStatus(name="held"))
    assert isinstance(status, LockResult) and status.owner == "a" and status.expires_in_ms == 4000
    assert not machine.read(LockStatus(name="gone")).acquired  # type: ignore[union-attr]
    at(log, 5001)
    assert not machine.read(LockStatus(name="held")).acquired  # type: ignore[union-attr]
    taken = log.run(LockAcquire(name="held", owner="c", ttl_ms=1000))
    assert isinstance(taken, LockResult) and taken.fencing_token == 3
