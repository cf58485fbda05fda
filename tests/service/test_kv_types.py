"""etcd's conventions for ranges, prefixes and errors, as paxosd's types carry them."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxosd.service.kv import (
    Compare,
    CompareTarget,
    EventType,
    GrpcCode,
    InvalidRequest,
    KeyValue,
    KvLimits,
    in_range,
    prefix_end,
)
from paxosd.service.kv.errors import (
    answer_too_large,
    compacted,
    future_revision,
    key_not_found,
    lease_not_found,
)
from paxosd.service.kv.types import Event

from .helpers import fuzz


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"a", b"b"),
        (b"config/app/", b"config/app0"),
        (b"a\xff", b"b"),
        (b"a\xff\xff", b"b"),
        (b"\xff", b"\0"),
        (b"\xff\xff", b"\0"),
        (b"", b"\0"),
    ],
)
def test_prefix_end_as_etcd_clients_compute_it(prefix: bytes, end: bytes) -> None:
    """The last byte below 0xff is incremented after dropping trailing 0xff bytes; no such
    byte means every key from the prefix on (b"\\0")."""
    assert prefix_end(prefix) == end


@given(st.binary(min_size=1, max_size=4), st.binary(min_size=1, max_size=6))
@fuzz(500)
def test_a_prefix_range_holds_exactly_the_keys_with_the_prefix(prefix: bytes, key: bytes) -> None:
    """[P, prefix_end(P)) is exactly the keys that start with P, in byte order."""
    assert in_range(key, prefix, prefix_end(prefix)) == key.startswith(prefix)


def test_range_conventions() -> None:
    """Empty range_end: one key; b"\\0": every key from `key`; otherwise [key, range_end)."""
    assert in_range(b"k", b"k", b"")
    assert not in_range(b"k2", b"k", b"")
    assert in_range(b"zzz", b"k", b"\0")
    assert not in_range(b"a", b"k", b"\0")
    assert in_range(b"\x01", b"\0", b"\0")
    assert in_range(b"b", b"a", b"c")
    assert not in_range(b"c", b"a", b"c")
    assert not in_range(b"b", b"c", b"a")  # an end before the start selects nothing


def test_compare_operand_follows_the_target() -> None:
    assert Compare(key=b"k", target=CompareTarget.VALUE, value=b"v").operand == b"v"
    assert Compare(key=b"k", target=CompareTarget.CREATE).operand == 0
    assert Compare(key=b"k", target=CompareTarget.LEASE, lease=7).operand == 7


def test_delete_events_carry_the_tombstone() -> None:
    """A delete event's kv has the deleting revision and zeros elsewhere, as etcd's."""
    before = KeyValue(b"k", 2, 4, 2, b"v", 0)
    event = Event(EventType.DELETE, KeyValue(b"k", 0, 9, 0, b"", 0), before)
    assert event.revision == 9


def test_errors_carry_etcd_text_and_paxosd_detail() -> None:
    """The exact etcd messages clients match on; details that name revisions and limits."""
    error = compacted(3, 10)
    assert error.message == "etcdserver: mvcc: required revision has been compacted"
    assert error.grpc_code is GrpcCode.OUT_OF_RANGE
    assert "oldest revision held is 10" in error.detail
    error = future_revision(50, 12)
    assert error.message == "etcdserver: mvcc: required revision is a future revision"
    assert "at revision 12" in error.detail
    assert key_not_found(b"k", "ignore_value").message == "etcdserver: key not found"
    assert lease_not_found(7).grpc_code is GrpcCode.NOT_FOUND
    assert lease_not_found(7).message == "etcdserver: requested lease not found"
    error = answer_too_large("keys", 5000, "range_keys_max", 1000)
    assert "5000" in error.detail and "range_keys_max = 1000" in error.detail
    assert error.to_json()["grpc_code"] == 8


def test_invalid_request_survives_pickling() -> None:
    """Errors cross process boundaries (the test clusters, the checker's workers)."""
    error = InvalidRequest("Txn", compacted(1, 2))
    again = pickle.loads(pickle.dumps(error))
    assert again.field == "Txn" and again.error == error.error


def test_limits_are_checked() -> None:
    """A limit outside its range is a configuration error, said plainly."""
    KvLimits(txn_ops_max=1)
    for bad in (0, -1, 10_001, 1.5, True):
        with pytest.raises(ValueError, match="txn_ops_max"):
            KvLimits(txn_ops_max=bad)  # type: ignore[arg-type]
