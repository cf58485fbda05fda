"""Snapshots of the multi-version store: history included, written while the store changes,
and version-2 snapshots converted exactly as replaying their commands would."""

from __future__ import annotations

import contextlib
import io
import itertools
import threading
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxosd.service import (
    BadCommand,
    Cas,
    CorruptSnapshot,
    Delete,
    Get,
    Put,
    Request,
    Router,
    encode,
)
from paxosd.service.kv import Compact, DeleteRange, Range, RangeResponse, Txn
from paxosd.service.kv import Put as KvPut
from paxosd.service.snapshot import SnapshotWriter, seal
from paxosd.service.values import json_text

from .helpers import Log, fuzz
from .kv_strategies import kv_ops


def kv_log(n: int) -> Log:
    log = Log()
    for i in range(n):
        log.request("c", i + 1, KvPut(key=b"k%d" % (i % 7), value=b"v%d" % i))
        if i % 5 == 4:
            log.request("d", i + 1, DeleteRange(key=b"k%d" % (i % 3)))
    return log


def test_history_survives_a_snapshot() -> None:
    """Every revision since the compacted one reads the same after a restore."""
    log = kv_log(40)
    log.run(Compact(revision=20))
    machine = log.machine
    restored = Router.restore(machine.snapshot())
    for revision in range(20, machine.revision + 1):
        query = Range(key=b"k", range_end=b"\0", revision=revision)
        assert restored.read(query) == machine.read(query)
    assert restored.read(Range(key=b"k", revision=19)) == machine.read(Range(key=b"k", revision=19))
    assert restored.kv.store.compact_revision == 20
    restored.kv.store.invariants()


def test_a_view_is_written_from_another_thread_while_the_store_changes() -> None:
    """The view holds the state of its slot, whatever is applied (and compacted) meanwhile."""
    log = kv_log(200)
    expected = log.machine.snapshot()
    view = log.machine.snapshot_view()
    out = io.BytesIO()
    started = threading.Event()

    def write() -> None:
        started.set()
        view.write(out)

    thread = threading.Thread(target=write)
    thread.start()
    started.wait()
    for i in range(300):
        log.request("e", i + 1, KvPut(key=b"k%d" % (i % 11), value=b"w"))
        if i == 150:
            log.request("f", 1, Compact(revision=log.machine.revision))
            log.request("f", 2, DeleteRange(key=b"k", range_end=b"\0"))
    thread.join()
    view.close()
    assert out.getvalue() == expected


def test_a_view_walked_halfway_keeps_its_keys_while_keys_are_added_before_it() -> None:
    """A view's writer (a worker thread) may be anywhere in its walk of the keys when the loop
    applies the next command: keys added before where it stands must not shift the rest under
    it (the index copies a chunk a view shares before changing it). Played step by step in
    one thread, so that it fails every time, not only when the threads interleave so."""
    log = Log()
    for i in range(20):
        log.request("c", i + 1, KvPut(key=b"k%02d" % (2 * i + 1), value=b"odd"))
    store = log.machine.kv.store
    with store.open_view() as whole:
        expected = list(whole.versions())
    with store.open_view() as view:
        walk = view.versions()
        first = list(itertools.islice(walk, 10))
        for i in range(10):  # even keys: all before where the walk stands
            log.request("d", i + 1, KvPut(key=b"k%02d" % (2 * i), value=b"even"))
        assert first + list(walk) == expected


def test_snapshot_bytes_do_not_depend_on_physical_compaction() -> None:
    """Equal states give equal bytes, whether or not compacted versions were freed yet."""
    one, two = kv_log(30), kv_log(30)
    view = two.machine.snapshot_view()  # holds two's compacted versions in memory
    for log in (one, two):
        log.run(Compact(revision=25))
    assert len(one.machine.kv.store.history[b"k0"]) < len(two.machine.kv.store.history[b"k0"])
    assert one.machine.snapshot() == two.machine.snapshot()
    view.close()


def _versions_to_keep(history: dict[bytes, list[Any]], revision: int, compacted: int) -> Any:
    """The rule a view's `versions` follows, written plainly (store.py)."""
    for key in sorted(history):
        versions = history[key]
        kept = [
            kv
            for i, kv in enumerate(versions)
            if kv.mod_revision <= revision
            and (i + 1 == len(versions) or versions[i + 1].mod_revision != kv.mod_revision)
        ]
        start = 0
        for i, kv in enumerate(kept):
            if kv.mod_revision > compacted:
                break
            start = i if kv.create_revision else i + 1
        if start < len(kept):
            yield key, kept[start:]


# Besides random ops: a key put and deleted at one revision (two nested transactions; the put
# was never readable), and compactions to recent revisions (the store starts at 1).
_view_ops = st.one_of(
    kv_ops,
    st.sampled_from(
        [
            Txn(
                success=(
                    Txn(success=(KvPut(key=b"a", value=b"x"),)),
                    Txn(success=(DeleteRange(key=b"a"),)),
                )
            ),
            DeleteRange(key=b"a", range_end=b"\0"),
        ]
    ),
    st.builds(Compact, revision=st.integers(min_value=2, max_value=40)),
)


@given(st.lists(st.lists(_view_ops, max_size=25), min_size=1, max_size=4))
@fuzz(300)
def test_a_view_keeps_exactly_the_versions_a_reader_needs(rounds: list[list[Any]]) -> None:
    """Whatever the writes, deletes, transactions and compactions, with views opened between
    them (a view keeps the versions it needs from being freed), each view hands out the
    versions the rule says, key by key, however the store changed after it was opened."""
    log = Log()
    store = log.machine.kv.store
    views = []
    for ops in rounds:
        for op in ops:
            with contextlib.suppress(BadCommand):  # an invalid op never reaches the log
                log.request("c", log.slot + 2, op)
        view = store.open_view()
        history = {key: list(versions) for key, versions in store.history.items()}
        views.append((view, list(_versions_to_keep(history, view.revision, view.compact_revision))))
    for view, expected in views:
        assert list(view.versions()) == expected
        view.close()


# -- version 2 ------------------------------------------------------------------------------


class V2Model:
    """What the previous code kept, and how its version-2 snapshot body looked."""

    def __init__(self) -> None:
        self.revision = 0
        self.kv: dict[str, tuple[Any, int, int]] = {}

    def apply(self, op: Any) -> None:
        if isinstance(op, Put):
            self.revision += 1
            old = self.kv.get(op.key)
            self.kv[op.key] = (op.value, old[1] if old else self.revision, self.revision)
        elif isinstance(op, Delete) and op.key in self.kv:
            del self.kv[op.key]
            self.revision += 1

    def body(self, applied_slot: int) -> bytes:
        rows = [[key, *self.kv[key]] for key in sorted(self.kv)]
        return seal(
            msgpack.packb([applied_slot, 0, self.revision, 0, 100_000, rows, [], [], [], []])
        )


legacy_ops = st.lists(
    st.one_of(
        st.builds(
            Put, key=st.sampled_from("abc"), value=st.sampled_from((1, "x", {"b": 1, "a": [2]}))
        ),
        st.builds(Delete, key=st.sampled_from("abc")),
    ),
    max_size=20,
)


@given(legacy_ops, legacy_ops)
@fuzz(200)
def test_a_version_2_snapshot_restores_as_replaying_its_commands(
    before: list[Any], after: list[Any]
) -> None:
    """A node that restores an old snapshot and a node that replays the old log reach the same
    state: every answer and every byte of their next snapshots agree."""
    replayed = Log()
    model = V2Model()
    for op in before:
        replayed.run(op)
        model.apply(op)
    restored = Log(Router.restore(model.body(replayed.machine.applied_slot)))
    assert restored.machine.snapshot() == replayed.machine.snapshot()
    for op in [*after, Cas(key="a", expected=1, value=2)]:
        assert restored.run(op) == replayed.run(op)
    for key in "abc":
        assert restored.run(Get(key=key)) == replayed.run(Get(key=key))
    assert restored.machine.snapshot() == replayed.machine.snapshot()


def test_version_2_values_become_json_text() -> None:
    model = V2Model()
    model.apply(Put(key="k", value={"b": 1, "a": True}))
    machine = Router.restore(model.body(5))
    answer = machine.read(Range(key=b"k"))
    assert isinstance(answer, RangeResponse)
    assert answer.kvs[0].value == json_text({"a": True, "b": 1}) == b'{"a":true,"b":1}'
    assert (answer.kvs[0].mod_revision, answer.kvs[0].version) == (2, 1)


def test_version_2_cached_answers_move_to_the_new_numbering() -> None:
    """A retry of a request answered before the upgrade gets the revision a replay gives."""
    replayed = Log()
    first = replayed.request("c", 1, Put(key="k", value=1))
    body = msgpack.packb(
        [1, 0, 1, 0, 100, [["k", 1, 1, 1]], [], [], [], [["c", 1, 1, b"\0" * 8, [3, "k", 1]]]]
    )
    restored = Router.restore(seal(body))
    assert restored._sessions.check("c", 1, b"\0" * 8, 2) == (False, first)


# -- damage ---------------------------------------------------------------------------------


def _v3(*objects: object) -> bytes:
    out = io.BytesIO()
    writer = SnapshotWriter(out)
    for item in objects:
        writer.write(item)
    writer.close()
    return out.getvalue()


HEAD = ["paxosd", 5, 0, 100, ["kv", "coordination"]]
COORDINATION = ["coordination", 0, 0, 0, 0]
SESSIONS = ["sessions", 0]
BAD_SECTIONS = [
    [["kv", 0, -1], None],  # revision 0
    [["kv", 3, 4], None],  # compacted beyond the revision
    [["kv", 3, -1], [b"b", [[2, 2, 1, b"v", 0]]], [b"a", [[3, 3, 1, b"v", 0]]], None],  # order
    [["kv", 3, -1], [b"a", [[2, 2, 1, b"v", 0]]], [b"a", [[3, 3, 1, b"v", 0]]], None],  # twice
    [["kv", 3, -1], [b"a", [[2, 2, 1, b"v", 0], [2, 2, 2, b"w", 0]]], None],  # same revision
    [["kv", 3, -1], [b"a", [[2, 2, 1, b"v", 0], [2, 3, 3, b"w", 0]]], None],  # version skips
    [["kv", 3, -1], [b"a", [[0, 3, 0, b"", 0]]], None],  # starts with a tombstone
    [["kv", 3, -1], [b"a", [[2, 4, 1, b"v", 0]]], None],  # beyond the revision
    [["kv", 3, 2], [b"a", [[2, 2, 1, b"v", 0], [2, 2, 2, b"w", 0]]], None],  # compacted kept
    [["kv", 3, -1], [b"", [[2, 2, 1, b"v", 0]]], None],  # empty key
    [["kv", 3, -1], [b"a", [[2, 2, 1, "text", 0]]], None],  # value not bytes
    [["kv", 3, -1], [b"a", []], None],  # no versions
    [["kv", 3, -1]],  # no end
]


@pytest.mark.parametrize("section", BAD_SECTIONS, ids=range(len(BAD_SECTIONS)))
def test_invalid_key_value_sections_are_refused(section: list[object]) -> None:
    with pytest.raises(CorruptSnapshot):
        Router.restore(_v3(HEAD, *section, COORDINATION, SESSIONS))


def test_a_valid_hand_made_section_restores() -> None:
    """The harness above can succeed: the same shape, consistent, restores."""
    section = [["kv", 3, -1], [b"a", [[2, 2, 1, b"v", 0], [2, 3, 2, b"w", 0]]], None]
    machine = Router.restore(_v3(HEAD, *section, COORDINATION, SESSIONS))
    assert machine.read(Range(key=b"a")).kvs[0].value == b"w"
    machine.kv.store.invariants()


def test_a_request_after_restore_applies_at_the_next_slot() -> None:
    machine = Router.restore(kv_log(3).machine.snapshot())
    answer, _ = machine.apply(
        machine.applied_slot + 1, encode(Request(client_id="z", seq=1, op=KvPut(key=b"n")))
    )
    assert answer.revision == machine.revision  # type: ignore[union-attr]
