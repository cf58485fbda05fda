"""`paxosd node --join` refuses what cannot join, before it changes anything, and says what
to do (cli/join.py): an id that is a member already, a data directory with a store, no
addresses to give the node, a member that does not answer, options that do not go together."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from paxosd.cli.common import Failure
from paxosd.cli.join import Cluster, local_layout, plan
from paxosd.cli.node import command
from paxosd.core.multi.configuration import Configuration
from paxosd.runtime import incarnation
from paxosd.runtime.config import Member, load, local_cluster
from paxosd.runtime.datadir import initialise


def _cluster(tmp_path: Path) -> Cluster:
    configs = local_cluster(3, tmp_path / "c", 7000, "joinable")
    return Cluster("joinable", {m.id: m for m in configs[0].members}, Configuration((1, 2, 3)), 1)


def test_a_member_is_refused_and_told_to_remove_it_first(tmp_path: Path) -> None:
    with pytest.raises(Failure) as refused:
        plan(_cluster(tmp_path), 2, tmp_path / "new", None, tmp_path / "new" / "node.toml")
    assert "node 2 is a member already" in refused.value.message
    assert "paxosd member remove 2" in str(refused.value.hint)


def test_a_directory_with_a_store_is_refused(tmp_path: Path) -> None:
    config = local_cluster(1, tmp_path / "old", 7300, "other")[0]
    initialise(config, despite_traces=True)
    with pytest.raises(Failure, match="holds a store already"):
        plan(_cluster(tmp_path), 4, config.data_dir, None, config.data_dir / "node.toml")


def test_a_new_id_takes_the_next_place_of_the_local_layout_and_is_marked_joined(
    tmp_path: Path,
) -> None:
    cluster = _cluster(tmp_path)
    config, resumed = plan(cluster, 4, tmp_path / "n4", None, tmp_path / "n4" / "node.toml")
    assert not resumed and config.joined
    assert config.me == Member(4, ("127.0.0.1", 7104), ("127.0.0.1", 7004), ("127.0.0.1", 6404))
    assert [m.id for m in config.members] == [1, 2, 3, 4]
    moved = Member(3, ("127.0.0.1", 9999), ("127.0.0.1", 9998), ("127.0.0.1", 9997))
    odd = Cluster("joinable", {**cluster.members, 3: moved}, cluster.configuration, 1)
    assert local_layout(odd, 4) is None
    with pytest.raises(Failure, match="do not follow one local layout"):
        plan(odd, 4, tmp_path / "n5", None, tmp_path / "n5" / "node.toml")
    clash = Member(4, ("127.0.0.1", 7101), ("127.0.0.1", 9998), ("127.0.0.1", 9997))
    with pytest.raises(Failure, match="share an address"):
        plan(cluster, 4, tmp_path / "n6", clash, tmp_path / "n6" / "node.toml")


def test_a_join_cut_short_after_the_change_is_taken_up_by_its_directory_only(
    tmp_path: Path,
) -> None:
    """Added with this directory's incarnation, but no store yet: only the store is left to
    make. Another directory (another incarnation) is refused: that id is a member."""
    directory = tmp_path / "n4"
    value = incarnation.record(directory)
    from paxosd.core.multi.configuration import Joined

    added = Configuration((1, 2, 3)).after((1, 2, 3), (4,), Joined(4, value, ""))
    cluster = Cluster("joinable", _cluster(tmp_path).members, added, 1)
    _, resumed = plan(cluster, 4, directory, None, directory / "node.toml")
    assert resumed
    incarnation.record(directory)
    with pytest.raises(Failure, match="member already"):
        plan(cluster, 4, directory, None, directory / "node.toml")


def test_the_config_file_it_writes_is_a_joined_one_and_refuses_founding_operations(
    tmp_path: Path,
) -> None:
    from paxosd.cli.join import prepare
    from paxosd.runtime import datadir

    path = tmp_path / "n4" / "node.toml"
    config, _ = plan(_cluster(tmp_path), 4, tmp_path / "n4", None, path)
    prepare(config, path, resumed=False)
    again = load(path)
    assert again.joined and again == config
    for operation in (datadir.initialise, datadir.reinitialize):
        with pytest.raises(datadir.JoinedNode, match="joined a running cluster"):
            operation(again)  # type: ignore[operator]
    assert "join it again" in datadir.missing_store_advice(again)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--join", "127.0.0.1:1", "--data-dir", "d"], "needs --id N and --data-dir"),
        (["--join", "127.0.0.1:1", "--id", "4"], "needs --id N and --data-dir"),
        (["--join", "h:1", "--id", "4", "--data-dir", "d", "--config", "x.toml"], "no --config"),
        (["--join", "h:1", "--id", "4", "--data-dir", "d", "--peer", "h:2"], "all of --peer"),
        (["--join", "h:1", "--id", "4", "--data-dir", "d", "--peer", "h", "--http", "h:3",
          "--resp", "h:4"], "HOST:PORT"),
        (["--id", "4"], "give --config FILE"),
        (["--config", "x.toml", "--peer", "h:2"], "go with --join"),
    ],
)  # fmt: skip
def test_options_that_do_not_go_together_are_refused(args: list[str], says: str) -> None:
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_a_member_that_does_not_answer_is_a_clear_error(tmp_path: Path) -> None:
    from tests.ports import free_block

    port = free_block(1, offset=2900)
    result = CliRunner().invoke(
        command, ["--join", f"127.0.0.1:{port}", "--id", "4", "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 1, result.output
    assert "did not say what its cluster is" in result.output
    assert not (tmp_path / "d").exists(), "nothing is written before the cluster answers"


def test_the_new_node_takes_the_cluster_s_addresses_configuration_and_timeouts(
    tmp_path: Path,
) -> None:
    from paxosd.cli.join import cluster_of

    status = {
        "cluster_id": "joinable",
        "leader": 2,
        "members": [
            {"id": n, "peer": f"127.0.0.1:{7100 + n}", "http": f"127.0.0.1:{7000 + n}",
             "resp": f"127.0.0.1:{6400 + n}"}
            for n in (1, 2, 3)
        ],
        "configuration": {
            "epoch": 2, "voters": [1, 2], "learners": [3], "first_slot": 40,
            "joined": [{"id": 3, "incarnation": "b0b", "contact": "peer=h:1 http=h:2 resp=h:3"}],
        },
        "timeouts": {"tick_ms": 20, "heartbeat_ms": 100, "election_ms_min": 500,
                     "election_ms_max": 900, "request_timeout_ms": 7000, "unknown": 1},
    }  # fmt: skip
    cluster = cluster_of(status)
    assert cluster.configuration.first_slot == 40
    assert cluster.configuration.joined_entry(3).incarnation == 0xB0B  # type: ignore[union-attr]
    config, _ = plan(cluster, 4, tmp_path / "n4", None, tmp_path / "n4" / "node.toml")
    assert (config.timeouts.heartbeat_ms, config.timeouts.election_ms_max) == (100, 900)
    assert [m.id for m in config.members] == [1, 2, 3, 4]
    status["configuration"]["joined"][0]["incarnation"] = "not hex"  # type: ignore[index]
    with pytest.raises(ValueError, match="hex"):
        cluster_of(status)
