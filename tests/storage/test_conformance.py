"""The LogStore contract, run identically against every backend (file, sqlite, memory)."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import (
    Accepted,
    Configured,
    InlineSnapshot,
    Promised,
    Rebuilding,
    Record,
    Snapshot,
)
from paxosd.core.types import Ballot, ballot_round_max, node_id_max
from paxosd.storage import (
    CompactionPolicy,
    CorruptLog,
    ForeignDataDir,
    InvalidRecord,
    StoreClosed,
    fold,
)

from .harness import (
    HARNESSES,
    OTHER_IDENTITY,
    Harness,
    Store,
    records,
    restart,
    state,
)

BACKENDS = sorted(HARNESSES)
B1 = Ballot(1, 1)
B2 = Ballot(2, 0)
B3 = Ballot(3, 2)


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return HARNESSES[request.param](tmp_path / "data")


@pytest.fixture
def store(harness: Harness) -> Iterator[Store]:
    opened = harness.open()
    yield opened
    opened.close()


def test_fresh_store_is_empty(store: Store) -> None:
    recovered = store.load()
    assert state(recovered) == (None, {}, False, None, None)
    assert recovered.repaired_tail_bytes == 0
    assert recovered.records() == []


def test_round_trip_through_reopen(harness: Harness, store: Store) -> None:
    written: list[Record] = [
        Promised(B1),
        Accepted(1, B1, (b"put a 1", b"")),
        Accepted(2, B1, ()),
        Rebuilding(True),
        InlineSnapshot(0, b""),
    ]
    store.write(written)
    store.sync()
    reopened = harness.reopen(store)
    recovered = reopened.load()
    assert recovered.promised == B1
    assert recovered.accepted == {1: (B1, (b"put a 1", b"")), 2: (B1, ())}
    assert recovered.rebuilding
    assert recovered.snapshot == InlineSnapshot(0, b"")
    assert state(fold(recovered.records())) == state(recovered)
    reopened.close()


def test_latest_accepted_wins_per_slot(harness: Harness, store: Store) -> None:
    store.write([Accepted(5, B1, (b"old",))])
    store.sync()
    store.write([Accepted(5, B2, (b"new",)), Accepted(6, B2, (b"x",))])
    store.write([Accepted(6, B3, (b"y",))])  # same slot twice in one group commit
    store.sync()
    reopened = harness.reopen(store)
    assert reopened.load().accepted == {5: (B2, (b"new",)), 6: (B3, (b"y",))}
    reopened.close()


def test_promised_never_goes_backwards(harness: Harness, store: Store) -> None:
    store.write([Promised(B3)])
    store.sync()
    store.write([Promised(B1)])
    store.sync()
    store.write([Promised(B2)])
    store.sync()
    assert store.load().promised == B3
    reopened = harness.reopen(store)
    assert reopened.load().promised == B3
    reopened.close()


def test_the_latest_rebuilding_flag_wins_and_survives(harness: Harness, store: Store) -> None:
    """A node that lost its state must stay a non-voter across restarts until its rebuild is
    complete: the flag is durable, survives compaction, and the latest record decides."""
    store.write([Rebuilding(True)])
    store.sync()
    reopened = harness.reopen(store)
    assert reopened.load().rebuilding
    reopened.write([Promised(B2), Accepted(3, B2, (b"x",)), InlineSnapshot(2, b"s")])
    reopened.sync()
    again = harness.reopen(reopened)
    assert again.load().rebuilding
    again.write([Rebuilding(False)])
    again.sync()
    assert not again.load().rebuilding
    last = harness.reopen(again)
    assert not last.load().rebuilding and last.load().promised == B2
    last.close()


def test_the_configuration_of_the_highest_epoch_wins_and_survives(
    harness: Harness, store: Store
) -> None:
    """A store remembers the membership it belongs to across restarts and compaction; a
    configuration of a lower epoch never replaces a later one (membership moves forward only)."""
    three = Configuration.of([1, 2, 3])
    store.write([Configured(three), Promised(B1)])
    store.sync()
    reopened = harness.reopen(store)
    assert reopened.load().configuration == three
    # An epoch a membership change started (at slot 41): its first slot is kept with it.
    five = Configuration((1, 2, 3, 4, 5), (6,), epoch=2, first_slot=41)
    reopened.write([Configured(five), Configured(Configuration((1, 2), epoch=1))])
    reopened.sync()
    assert reopened.load().configuration == five
    again = harness.reopen(reopened)
    recovered = again.load()
    assert recovered.configuration == five
    assert recovered.records()[0] == Configured(five)
    assert state(fold(recovered.records())) == state(recovered)
    same_epoch = Configuration((1, 2, 3, 4, 5), epoch=2)
    again.write([Configured(same_epoch)])  # the latest among equals
    again.sync()
    last = harness.reopen(again)
    assert last.load().configuration == same_epoch
    last.close()


def test_a_new_store_holds_its_initial_records_from_the_start(harness: Harness) -> None:
    """`paxosd init` and `--reinitialize` make a store that holds its membership (and, for a
    rebuilding member, its mark) from the moment it exists: nothing to write afterwards."""
    three = Configuration.of([1, 2, 3])
    created = harness.create([Configured(three), Rebuilding(True)])
    assert created.load().configuration == three and created.load().rebuilding
    reopened = harness.reopen(created)
    recovered = reopened.load()
    assert recovered.configuration == three and recovered.rebuilding
    assert state(recovered) == (None, {}, True, None, three)
    reopened.close()


def test_snapshot_supersedes_entries_and_older_snapshots(harness: Harness, store: Store) -> None:
    store.write([Accepted(slot, B1, (bytes([slot]),)) for slot in range(1, 11)])
    store.write([InlineSnapshot(3, b"three")])
    store.sync()
    store.write(
        [InlineSnapshot(6, b"six"), Accepted(4, B2, (b"late",)), InlineSnapshot(5, b"older")]
    )
    store.sync()
    before = store.load()
    reopened = harness.reopen(store)
    for recovered in (before, reopened.load()):
        assert recovered.snapshot == InlineSnapshot(6, b"six")
        assert sorted(recovered.accepted) == [7, 8, 9, 10]
        assert recovered.records()[0] == InlineSnapshot(6, b"six")
    reopened.close()


def test_a_snapshot_file_record_supersedes_entries_and_inline_snapshots(
    harness: Harness, store: Store
) -> None:
    """A store written before snapshot files holds an inline snapshot; the first `Snapshot`
    record of a higher (or the same) slot takes its place, in every backend, across a reopen,
    and the entries it covers go."""
    checksum = bytes(range(16))
    store.write([Accepted(slot, B1, (bytes([slot]),)) for slot in range(1, 9)])
    store.write([InlineSnapshot(3, b"three")])
    store.sync()
    store.write([Snapshot(3, 5, checksum)])  # the inline one moved to a file, same slot
    store.sync()
    assert store.load().snapshot == Snapshot(3, 5, checksum)
    store.write([Snapshot(6, 1 << 33, checksum), InlineSnapshot(5, b"older")])
    store.sync()
    before = store.load()
    reopened = harness.reopen(store)
    for recovered in (before, reopened.load()):
        assert recovered.snapshot == Snapshot(6, 1 << 33, checksum)
        assert sorted(recovered.accepted) == [7, 8]
        assert Snapshot(6, 1 << 33, checksum) in recovered.records()
        assert fold(recovered.records()).snapshot == recovered.snapshot
    reopened.close()


def test_a_snapshot_record_with_a_bad_checksum_field_is_refused(store: Store) -> None:
    for bad in (b"short", bytes(17), bytearray(16)):
        with pytest.raises(InvalidRecord, match="checksum"):
            store.write([Snapshot(1, 10, bad)])  # type: ignore[arg-type]
    assert store.load().snapshot is None


def test_synced_writes_survive_a_crash(harness: Harness, store: Store) -> None:
    harness.write(store, [Promised(B1), Accepted(1, B1, (b"a",))])
    harness.sync(store)
    harness.write(store, [Promised(B2), Accepted(2, B2, (b"b",))])
    crashed = harness.crash(store)  # no rng: nothing unsynced survives
    recovered = crashed.load()
    assert state(recovered) == (B1, {1: (B1, (b"a",))}, 0, None, None)
    crashed.close()


@pytest.mark.parametrize("seed", range(8))
def test_crash_mid_append_keeps_a_prefix(harness: Harness, store: Store, seed: int) -> None:
    synced: list[Record] = [Promised(B1), Accepted(1, B1, (b"a" * 20,))]
    unsynced: list[Record] = [Accepted(slot, B2, (b"x" * slot,)) for slot in range(2, 9)]
    harness.write(store, synced)
    harness.sync(store)
    harness.write(store, unsynced)
    crashed = harness.crash(store, random.Random(seed))
    recovered = crashed.load()
    prefixes = [state(fold(synced + unsynced[:n])) for n in range(len(unsynced) + 1)]
    assert state(recovered) in prefixes
    # Whatever survived is durable now and stays: a second crash changes nothing.
    again = harness.crash(crashed)
    assert state(again.load()) == state(recovered)
    again.close()


def test_torn_tail_is_repaired_and_reported(harness: Harness, store: Store) -> None:
    if harness.name == "sqlite":
        pytest.skip("SQLite commits are atomic; there is no torn tail to repair")
    harness.write(store, [Accepted(1, B1, (b"kept",))])
    harness.sync(store)
    harness.write(store, [Accepted(2, B1, (b"torn" * 10,))])

    class HalfOfLast(random.Random):
        def randrange(self, *args: int) -> int:  # type: ignore[override]
            stop = args[-1] if len(args) > 1 else args[0]
            return stop // 2

        def choice(self, seq):  # type: ignore[no-untyped-def,override]
            return 0

    crashed = harness.crash(store, HalfOfLast())
    recovered = crashed.load()
    assert recovered.accepted == {1: (B1, (b"kept",))}
    assert recovered.repaired_tail_bytes > 0
    # The repair itself is durable: reopening again finds nothing left to repair.
    again = harness.reopen(crashed)
    assert again.load().repaired_tail_bytes == 0
    assert again.load().accepted == {1: (B1, (b"kept",))}
    again.close()


def test_damage_in_the_middle_is_corrupt_log(harness: Harness, store: Store) -> None:
    store.write([Accepted(slot, B1, (b"payload-%d" % slot,)) for slot in range(1, 6)])
    store.sync()
    damaged = harness.corrupt_middle(store)
    with pytest.raises(CorruptLog) as info:
        restart(harness, damaged)
    assert "offset" in str(info.value)


def test_foreign_identity_is_refused(harness: Harness, store: Store) -> None:
    store.write([Promised(B1)])
    store.sync()
    with pytest.raises(ForeignDataDir) as info:
        harness.reopen(store, OTHER_IDENTITY)
    message = str(info.value)
    assert "node-1" in message and "node-2" in message


def test_invalid_records_are_refused_whole(harness: Harness, store: Store) -> None:
    bad: list[object] = [
        Accepted(1, B1, ("text",)),  # type: ignore[arg-type]
        Accepted(1, B1, [b"list"]),  # type: ignore[arg-type]
        Accepted(-1, B1, ()),
        Accepted(True, B1, ()),
        Promised((1, 1)),  # type: ignore[arg-type]
        Promised(Ballot(2**63, 0)),
        Promised(Ballot(ballot_round_max + 1, 1)),  # the wire could not carry it
        Accepted(1, Ballot(1, node_id_max + 1), ()),
        InlineSnapshot(1, bytearray(b"x")),  # type: ignore[arg-type]
        Configured((1, 2, 3)),  # type: ignore[arg-type]
        Configured(Configuration([1, 2, 3])),  # type: ignore[arg-type]  # a list comes back a tuple
        Configured(Configuration((1,), epoch=2**63)),
        "not a record",
    ]
    for record in bad:
        with pytest.raises(InvalidRecord):
            store.write([Accepted(7, B1, (b"good",)), record])
    store.sync()
    assert store.load().accepted == {}


def test_use_after_close_is_refused(harness: Harness, store: Store) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosed):
        store.write([Promised(B1)])


def test_close_syncs_what_was_written(harness: Harness, store: Store) -> None:
    store.write([Accepted(3, B1, (b"c",))])
    reopened = harness.reopen(store)
    assert reopened.load().accepted == {3: (B1, (b"c",))}
    reopened.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_disk_bytes_bounded_over_10k_slots(tmp_path: Path, backend: str) -> None:
    """10,000 slots of ~4 KiB with a snapshot every 500 slots: 40 MB written, disk stays small."""
    policy = CompactionPolicy(garbage_ratio=2.0, garbage_bytes_min=256 * 1024)
    # fsync=False: this is about space, not durability, and 1,000 real fsyncs cost seconds.
    harness = HARNESSES[backend](tmp_path / "data", fsync=False, policy=policy)
    store = harness.open()
    command = b"c" * 1000
    written = 0
    peak = 0
    for slot in range(1, 10_001):
        batch = (command, command, command, command)
        store.write([Accepted(slot, B1, batch), Promised(B1)])
        written += 4 * len(command)
        if slot % 500 == 0:
            store.write([InlineSnapshot(slot, bytes(20_000))])
        if slot % 10 == 0:  # group commit: 10 slots per fsync
            store.sync()
            peak = max(peak, store.disk_bytes())
    recovered = store.load()
    assert recovered.snapshot is not None and recovered.snapshot.slot == 10_000
    assert recovered.accepted == {}
    store.close()
    assert written >= 40_000_000
    # Live data peaks at ~2 MB (500 slots x 4 KB + a snapshot); compaction keeps the file under
    # (1 + 2) x live + a little, and SQLite reuses freed pages and checkpoints its WAL.
    assert peak < 12 * 1024 * 1024, f"{backend}: peak {peak} bytes"


# -- the reference model: random writes, syncs, crashes and reopens ------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.lists(records, min_size=1, max_size=5)),
        st.tuples(st.just("sync"), st.none()),
        st.tuples(st.just("crash"), st.integers(0, 2**32)),
        st.tuples(st.just("reopen"), st.none()),
    ),
    max_size=25,
)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=ops)
def test_matches_reference_model_across_crashes(backend: str, script: list[tuple]) -> None:
    """load() equals the reference fold of everything synced, plus some prefix of what was
    written after the last sync (a crash may keep some unsynced writes, never a damaged one)."""
    with tempfile.TemporaryDirectory() as root:
        # Tiny compaction threshold so compaction happens inside these short scripts too.
        policy = CompactionPolicy(garbage_ratio=0.5, garbage_bytes_min=64)
        harness = HARNESSES[backend](Path(root) / "data", fsync=False, policy=policy)
        store = harness.open()
        durable: list[Record] = []  # minimal records of the state that must survive
        pending: list[Record] = []
        for op, arg in script:
            if op == "write":
                harness.write(store, arg)
                pending.extend(arg)
            elif op == "sync":
                harness.sync(store)
                durable, pending = fold(durable + pending).records(), []
            elif op == "reopen":
                store = harness.reopen(store)
                durable, pending = fold(durable + pending).records(), []
            else:
                store = harness.crash(store, random.Random(arg))
                got = state(store.load())
                allowed = [state(fold(durable + pending[:n])) for n in range(len(pending) + 1)]
                assert got in allowed
                durable, pending = store.load().records(), []
            assert state(store.load()) in [
                state(fold(durable + pending[:n])) for n in range(len(pending) + 1)
            ]
        final = harness.reopen(store)
        assert state(final.load()) == state(fold(durable + pending))
        final.close()
