"""`paxosd up` gives each brand-new cluster an id of its own and keeps it across restarts, so
a node of another local cluster is refused at the peer handshake (the transport's check)."""

from __future__ import annotations

from pathlib import Path

from paxosd.cli.up import LEGACY_CLUSTER_ID, NodeOptions, cluster_id_for, prepare
from paxosd.runtime.config import load, local_cluster
from paxosd.runtime.datadir import initialise


def test_a_new_cluster_draws_an_id_and_a_restart_keeps_it(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    drawn = cluster_id_for(first, 3, 7000)
    assert drawn.startswith(LEGACY_CLUSTER_ID + "-") and drawn != LEGACY_CLUSTER_ID
    assert cluster_id_for(second, 3, 7000) != drawn, "two new clusters, two ids"
    prepare(local_cluster(3, first, 7000, drawn), first, NodeOptions())
    assert {load(first / f"node{i}.toml").cluster_id for i in (1, 2, 3)} == {drawn}
    assert cluster_id_for(first, 3, 7000) == drawn, "the config files name the cluster"


def test_stores_without_config_files_are_a_cluster_from_before_ids_were_drawn(
    tmp_path: Path,
) -> None:
    for config in local_cluster(3, tmp_path, 7000):  # the id every such cluster had
        initialise(config)
    assert cluster_id_for(tmp_path, 3, 7000) == LEGACY_CLUSTER_ID


def test_a_damaged_config_file_does_not_decide_the_id(tmp_path: Path) -> None:
    drawn = cluster_id_for(tmp_path, 3, 7000)
    prepare(local_cluster(3, tmp_path, 7000, drawn), tmp_path, NodeOptions())
    (tmp_path / "node1.toml").write_text("not = [valid toml")
    assert cluster_id_for(tmp_path, 3, 7000) == drawn
