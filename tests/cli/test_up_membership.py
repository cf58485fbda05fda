"""`paxosd up` never changes an existing cluster's membership, and never makes a new cluster
over the remains of an old one."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxosd.cli.common import Failure
from paxosd.cli.up import NodeOptions, prepare
from paxosd.runtime.config import local_cluster, to_toml
from paxosd.runtime.datadir import has_store, initialise
from tests.ports import free_layout

# One layout for the module: its tests compare configs made at different times, which must
# agree; the nodes never start, but `init` asks the peers' ports whether a cluster answers.
BASE = free_layout(5)


def _prepare(root: Path, nodes: int) -> None:
    prepare(local_cluster(nodes, root, BASE, "up-test"), root, NodeOptions())


def test_fewer_nodes_on_a_five_node_directory_is_refused(tmp_path: Path) -> None:
    _prepare(tmp_path, 5)
    with pytest.raises(Failure) as refused:
        _prepare(tmp_path, 3)
    assert "holds a 5-node cluster (members 1,2,3,4,5)" in refused.value.message
    assert "--nodes 5" in (refused.value.hint or "")
    assert refused.value.exit_code == 2
    assert "id = 5" in (tmp_path / "node1.toml").read_text(), "config files left as they were"
    _prepare(tmp_path / "other", 3)
    with pytest.raises(Failure, match="3-node cluster"):
        _prepare(tmp_path / "other", 5)
    _prepare(tmp_path, 5)  # the same size: fine


def test_stores_without_config_files_count_as_the_cluster(tmp_path: Path) -> None:
    for config in local_cluster(5, tmp_path, BASE, "paxosd-local"):
        initialise(config)
    with pytest.raises(Failure, match="5-node cluster"):
        _prepare(tmp_path, 3)


def test_config_files_that_disagree_are_refused(tmp_path: Path) -> None:
    _prepare(tmp_path, 3)
    five = local_cluster(5, tmp_path, BASE, "up-test")
    (tmp_path / "node2.toml").write_text(to_toml(five[1]))
    with pytest.raises(Failure, match="disagree about the members"):
        _prepare(tmp_path, 3)


def test_no_store_but_an_old_cluster_s_logs_is_not_a_new_cluster(tmp_path: Path) -> None:
    _prepare(tmp_path, 3)
    for node in (1, 2, 3):
        (tmp_path / f"node{node}" / "node.log").write_text("event=node_started\n")
        (tmp_path / f"node{node}" / "paxos.log").unlink()
    with pytest.raises(Failure, match="shows an earlier cluster") as refused:
        _prepare(tmp_path, 3)
    assert "rm -r" in (refused.value.hint or "")
    assert not any((tmp_path / f"node{n}" / "paxos.log").exists() for n in (1, 2, 3))


def test_a_new_cluster_cut_short_is_finished(tmp_path: Path) -> None:
    """A crash while `up` made a new cluster's stores leaves some made, none used: the next
    `up` makes the rest (a node without a store in a cluster that ran is never given one)."""
    configs = local_cluster(3, tmp_path, BASE, "up-test")
    initialise(configs[0])
    _prepare(tmp_path, 3)
    assert all(has_store(config) for config in configs)
