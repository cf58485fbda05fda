"""The key-value commands older than etcd's model (tags 1-4: string keys, JSON values) keep
their meaning on the multi-version store: revisions as etcd's (the first write is 2), JSON
values stored as their JSON text, compare-and-swap by JSON equality."""

from __future__ import annotations

from paxosd.service import (
    Cas,
    CasResult,
    Delete,
    Deleted,
    Get,
    NotFound,
    Put,
    Value,
    Written,
)

from .helpers import Log, shape


def test_get_of_missing_key_is_not_found() -> None:
    """A key never written reads as NotFound, JSON {"value": null, "revision": 0}."""
    log = Log()
    assert log.run(Get(key="k")) == NotFound(key="k")
    assert NotFound(key="k").to_json() == {"key": "k", "value": None, "revision": 0}


def test_put_then_get_returns_value_and_revision() -> None:
    """Put answers the new revision; Get answers the value with that mod revision."""
    log = Log()
    assert log.run(Put(key="k", value={"a": [1, 2]})) == Written(key="k", revision=2)
    result = log.run(Get(key="k"))
    assert result == Value(key="k", value={"a": [1, 2]}, revision=2, create_revision=2)
    assert result.to_json() == {"key": "k", "value": {"a": [1, 2]}, "revision": 2}


def test_every_write_bumps_one_global_revision() -> None:
    """The revision counter is global; each key keeps its create and mod revisions."""
    log = Log()
    log.run(Put(key="a", value=1))
    log.run(Put(key="b", value=2))
    log.run(Put(key="a", value=3))
    assert log.machine.revision == 4
    assert log.run(Get(key="a")) == Value(key="a", value=3, revision=4, create_revision=2)
    assert log.run(Get(key="b")) == Value(key="b", value=2, revision=3, create_revision=3)


def test_delete_of_existing_key_bumps_revision() -> None:
    """Deleting a key is a write: existed=True and a new revision."""
    log = Log()
    log.run(Put(key="k", value=1))
    assert log.run(Delete(key="k")) == Deleted(key="k", existed=True, revision=3)
    assert log.run(Get(key="k")) == NotFound(key="k")


def test_delete_of_missing_key_succeeds_without_a_new_revision() -> None:
    """Deleting a missing key succeeds with existed=False and changes nothing, revision included."""
    log = Log()
    log.run(Put(key="other", value=1))
    assert log.run(Delete(key="k")) == Deleted(key="k", existed=False, revision=2)
    assert log.machine.revision == 2


def test_recreated_key_gets_a_fresh_create_revision() -> None:
    """After a delete, the next put creates the key anew."""
    log = Log()
    log.run(Put(key="k", value=1))
    log.run(Delete(key="k"))
    log.run(Put(key="k", value=2))
    assert log.run(Get(key="k")) == Value(key="k", value=2, revision=4, create_revision=4)


def test_cas_with_expected_none_creates_only_if_absent() -> None:
    """expected=None means "must not exist": it creates once, then fails."""
    log = Log()
    first = log.run(Cas(key="k", expected=None, value="v1"))
    assert first == CasResult(succeeded=True, key="k", value="v1", revision=2)
    second = log.run(Cas(key="k", expected=None, value="v2"))
    assert second == CasResult(succeeded=False, key="k", value="v1", revision=2)


def test_cas_swaps_on_json_equal_value() -> None:
    """JSON equality: object key order is irrelevant and 1 equals 1.0."""
    log = Log()
    log.run(Put(key="k", value={"a": 1, "b": [2]}))
    result = log.run(Cas(key="k", expected={"b": [2.0], "a": 1}, value="new"))
    assert result == CasResult(succeeded=True, key="k", value="new", revision=3)


def test_cas_does_not_confuse_true_with_one() -> None:
    """In Python True == 1; in JSON true is not 1, so the swap must fail."""
    log = Log()
    log.run(Put(key="k", value=[True]))
    result = log.run(Cas(key="k", expected=[1], value="new"))
    assert isinstance(result, CasResult)
    assert not result.succeeded
    assert shape(log.run(Get(key="k"))) == '{"key": "k", "value": [true], "revision": 2}'


def test_failed_cas_reports_current_state_and_changes_nothing() -> None:
    """A failed swap answers the current value and revision (null/0 if absent), no new revision."""
    log = Log()
    missing = log.run(Cas(key="k", expected=1, value=2))
    assert missing == CasResult(succeeded=False, key="k", value=None, revision=0)
    log.run(Put(key="k", value=5))
    mismatch = log.run(Cas(key="k", expected=1, value=2))
    assert mismatch == CasResult(succeeded=False, key="k", value=5, revision=2)
    assert log.machine.revision == 2
    assert mismatch.to_json() == {"succeeded": False, "key": "k", "value": 5, "revision": 2}


def test_put_of_null_is_a_value_not_a_delete() -> None:
    """JSON null is a storable value; only Delete removes a key."""
    log = Log()
    log.run(Put(key="k", value=None))
    assert log.run(Get(key="k")) == Value(key="k", value=None, revision=2, create_revision=2)


def test_old_commands_leave_version_1_and_no_history() -> None:
    """As a version-2 snapshot would restore it: every key at version 1, the history compacted
    to the command's revision (a replica that restores one and a replica that replays the
    commands must hold the same state)."""
    log = Log()
    log.run(Put(key="k", value=1))
    log.run(Put(key="k", value=2))
    store = log.machine.kv.store
    kv = store.get(b"k", store.revision)
    assert kv is not None and kv.version == 1 and kv.value == b"2"
    assert store.compact_revision == store.revision == 3


def test_kv_result_shapes() -> None:
    """Written and Deleted serialize with their documented keys."""
    assert Written(key="k", revision=4).to_json() == {"key": "k", "revision": 4}
    assert Deleted(key="k", existed=True, revision=5).to_json() == {
        "key": "k",
        "existed": True,
        "revision": 5,
    }
