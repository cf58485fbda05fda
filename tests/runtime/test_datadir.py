"""The data directory's rules: a store is made only for a brand-new cluster or a rebuilding
member, holds its membership from the start, and refuses a config file naming others."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import Configured, Promised
from paxosd.core.types import Ballot
from paxosd.runtime import datadir, removal
from paxosd.runtime.config import NodeConfig, local_cluster
from paxosd.storage import StoreExists, make_identity, open_store


def _node(root: Path, nodes: int = 3, node: int = 1) -> NodeConfig:
    # Ports nobody listens on: the peer probe finds no one (connection refused at once).
    return local_cluster(nodes, root, 1000, "dd-test")[node - 1]


def test_init_makes_a_store_that_records_its_members(tmp_path: Path) -> None:
    config = _node(tmp_path, nodes=5)
    datadir.initialise(config)
    store = datadir.open_existing(config)
    recovered = store.load()
    store.close()
    assert recovered.configuration == Configuration.of([1, 2, 3, 4, 5])
    assert not recovered.rebuilding and recovered.promised is None
    with pytest.raises(StoreExists, match="--reinitialize"):
        datadir.initialise(config)


@pytest.mark.parametrize("trace", ["node.log", "lost-20260101T000000"])
def test_init_refuses_a_node_with_traces_of_membership(tmp_path: Path, trace: str) -> None:
    config = _node(tmp_path)
    config.data_dir.mkdir(parents=True)
    if trace.startswith("lost-"):
        (config.data_dir / trace).mkdir()
    else:
        (config.data_dir / trace).write_text("event=node_started\n")
    with pytest.raises(datadir.MembershipTraces) as refused:
        datadir.initialise(config)
    assert trace in str(refused.value) and "--reinitialize" in str(refused.value)
    assert not datadir.has_store(config)
    datadir.initialise(config, despite_traces=True)  # the operator's explicit word
    assert datadir.has_store(config)


def test_a_leftover_temporary_file_is_not_a_trace(tmp_path: Path) -> None:
    """An `init` cut short by a crash leaves `paxos.log.tmp`: running `init` again works."""
    config = _node(tmp_path)
    config.data_dir.mkdir(parents=True)
    (config.data_dir / "paxos.log.tmp").write_bytes(b"PAXOSLOG half")
    datadir.initialise(config)
    assert not (config.data_dir / "paxos.log.tmp").exists()


def test_the_missing_store_advice_puts_reinitialize_first(tmp_path: Path) -> None:
    advice = datadir.missing_store_advice(_node(tmp_path))
    assert advice.index("--reinitialize") < advice.index("paxosd init")
    assert "never for an existing member" in advice


def test_reinitialize_marks_the_new_store_and_keeps_the_old_one(tmp_path: Path) -> None:
    config = _node(tmp_path)
    datadir.initialise(config)
    store = datadir.open_existing(config)
    store.write([Promised(Ballot(7, 2))])
    store.close()
    kept = datadir.reinitialize(config)
    assert kept is not None and (kept / "paxos.log").exists()
    again = datadir.reinitialize(config)  # twice in one second: a folder of its own
    assert again is not None and again != kept
    store = datadir.open_existing(config)
    recovered = store.load()
    store.close()
    assert recovered.rebuilding and recovered.promised is None
    assert recovered.configuration == Configuration.of([1, 2, 3])


def test_a_config_naming_other_members_is_refused_naming_both(tmp_path: Path) -> None:
    five = _node(tmp_path, nodes=5)
    datadir.initialise(five)
    three = replace(_node(tmp_path, nodes=3), data_dir=five.data_dir)
    store = datadir.open_existing(three)
    try:
        with pytest.raises(datadir.MembershipMismatch) as refused:
            datadir.settle_configuration(three, store, store.load())
    finally:
        store.close()
    message = str(refused.value)
    assert "5-node cluster (voters 1,2,3,4,5, epoch 0)" in message
    assert "names members 1,2,3." in message and "--nodes 5" in message


def test_a_store_whose_members_changed_through_the_log_starts_in_its_epoch(
    tmp_path: Path,
) -> None:
    """After a membership change the store holds a later epoch than the config file's
    founding members: the node starts in it (core/multi/epochs.py). At the same epoch, other
    members are still refused."""
    config = _node(tmp_path, nodes=3)
    datadir.initialise(config)
    store = datadir.open_existing(config)
    try:
        changed = Configuration((1, 3), (2,), epoch=2, first_slot=40)
        store.write([Configured(changed)])
        store.sync()
        settled = datadir.settle_configuration(config, store, store.load())
        assert settled.recovered.configuration == changed and not settled.adopted
        store.write([Configured(Configuration((1, 3), epoch=0))])  # an older epoch: ignored
        store.sync()
        again = datadir.settle_configuration(config, store, store.load())
        assert again.recovered.configuration == changed
    finally:
        store.close()


def test_a_store_from_before_configurations_adopts_its_config_once(tmp_path: Path) -> None:
    """Older stores have no Configured record: the first start writes the config file's
    members into the store, durably; from then on another member list is refused."""
    config = _node(tmp_path)
    identity = make_identity(config.cluster_id, config.node_id)
    open_store(config.data_dir, identity=identity).close()  # as older code made stores
    store = datadir.open_existing(config)
    settled = datadir.settle_configuration(config, store, store.load())
    store.close()
    assert settled.adopted and settled.recovered.configuration == Configuration.of([1, 2, 3])
    store = datadir.open_existing(config)
    assert store.load().configuration == Configuration.of([1, 2, 3])
    again = datadir.settle_configuration(config, store, store.load())
    assert not again.adopted
    store.close()
    five = replace(_node(tmp_path, nodes=5), data_dir=config.data_dir)
    store = datadir.open_existing(five)
    with pytest.raises(datadir.MembershipMismatch):
        datadir.settle_configuration(five, store, store.load())
    store.close()


def test_reseed_copies_a_survivor_and_refuses_what_could_not_work(tmp_path: Path) -> None:
    one, two = _node(tmp_path, node=1), _node(tmp_path, node=2)
    for config in (one, two):
        datadir.initialise(config)
    store = datadir.open_existing(one)
    store.write([Promised(Ballot(9, 1))])
    store.close()
    with pytest.raises(datadir.MembershipMismatch, match="itself"):
        datadir.reseed(one, one)
    other = replace(_node(tmp_path / "x", nodes=5, node=1))
    with pytest.raises(datadir.MembershipMismatch, match="same cluster"):
        datadir.reseed(two, other)
    done = datadir.reseed(two, one)
    assert done.kept is not None and done.promised == "9.1"
    store = datadir.open_existing(two)
    recovered = store.load()
    store.close()
    assert recovered.promised == Ballot(9, 1) and not recovered.rebuilding
    assert recovered.configuration == Configuration.of([1, 2, 3])
    datadir.reinitialize(one)  # a survivor that is itself rebuilding holds nothing complete
    with pytest.raises(datadir.MembershipMismatch, match="rebuilding"):
        datadir.reseed(two, one)


def _adopt(config: NodeConfig, configuration: Configuration) -> None:
    store = datadir.open_existing(config)
    try:
        store.write([Configured(configuration)])
        store.sync()
    finally:
        store.close()


def test_a_node_knows_it_was_removed_from_its_store_or_from_what_it_was_told(
    tmp_path: Path,
) -> None:
    """`paxosd up` leaves out a node that joined and was removed (cli/up.py): its store is in
    the epoch that removed it, or, told by a peer (runtime/removal.py), it wrote that epoch
    down. A store in a later epoch that has it as a member again wins over what it wrote."""
    config = _node(tmp_path, nodes=3, node=3)
    datadir.initialise(config)
    assert datadir.removed_from(config) is None
    told = Configuration((1, 2), epoch=3, first_slot=50)
    removal.remember(config.data_dir, told)
    assert removal.recalled(config.data_dir) == Configuration((1, 2), epoch=3)
    assert datadir.removed_from(config) == Configuration((1, 2), epoch=3)
    _adopt(config, Configuration((1, 2, 3), epoch=4, first_slot=60))  # added back
    assert datadir.removed_from(config) is None
    left_out = Configuration((1, 2), epoch=5, first_slot=70)
    _adopt(config, left_out)
    assert datadir.removed_from(config) == left_out
    (config.data_dir / removal.FILE_NAME).write_text("{not json")
    assert removal.recalled(config.data_dir) is None
