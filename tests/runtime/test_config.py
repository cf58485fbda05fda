"""A node's configuration: what an operator writes is validated with errors that say what to
fix, and what `paxosd up` writes reads back as the same configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from paxosd.cli.main import main as cli
from paxosd.runtime.config import ConfigError, from_mapping, load, local_cluster, to_toml


def raw_config(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "cluster_id": "prod",
        "node_id": 1,
        "data_dir": "data/node1",
        "members": [
            {
                "id": i,
                "peer": f"10.0.0.{i}:7100",
                "http": f"10.0.0.{i}:7000",
                "resp": f"10.0.0.{i}:6400",
            }
            for i in (1, 2, 3)
        ],
    }
    raw.update(changes)
    return raw


def test_a_valid_file_is_read_with_defaults_and_relative_paths_resolved(tmp_path: Path) -> None:
    config = from_mapping(raw_config(), tmp_path)
    assert config.data_dir == tmp_path / "data/node1"
    assert config.me.http == ("10.0.0.1", 7000)
    assert config.fsync and config.storage == "file" and config.variant == "correct"


def test_what_local_cluster_writes_reads_back_unchanged(tmp_path: Path) -> None:
    for config in local_cluster(5, tmp_path, 9000):
        path = tmp_path / f"node{config.node_id}.toml"
        path.write_text(to_toml(config))
        assert load(path) == config


def test_limits_are_read_and_written_back(tmp_path: Path) -> None:
    limits = {"http": {"body_bytes_max": 4096, "allowed_hosts": ["paxosd.internal"]}}
    config = from_mapping(raw_config(limits=limits), tmp_path)
    assert config.limits.http.body_bytes_max == 4096
    assert config.limits.http.allowed_hosts == ("paxosd.internal",)
    assert config.limits.resp.connections_max == 4096  # the default
    path = tmp_path / "node1.toml"
    path.write_text(to_toml(config))
    assert load(path) == config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"node_id": 9}, "node_id 9 is not among the members"),
        ({"node_id": "1"}, "node_id must be an integer"),
        ({"surprise": 1}, "unknown keys: surprise"),
        ({"members": []}, "members is empty"),
        ({"members": "all"}, "members must be an array"),
        ({"timeouts": {"election_ms_min": 10}}, "a leader must heartbeat well within"),
        ({"timeouts": {"tick_ms": -5}}, "must be a positive integer"),
        ({"timeouts": {"naps": 5}}, "unknown timeout 'naps'"),
        ({"storage": "floppy"}, "storage must be file or sqlite"),
        ({"variant": "sloppy"}, "variant must be one of"),
        ({"cluster_id": ""}, "cluster_id must be 1 to 64 characters"),
        ({"limits": {"http": {"body_bytes_max": "1MB"}}}, "limits.http.body_bytes_max must be"),
        ({"limits": {"resp": {"speed": 1}}}, "limits.resp.speed is not a known limit"),
        ({"limits": {"grpc": {}}}, "limits: unknown table 'grpc'"),
    ],
)
def test_a_wrong_setting_names_what_to_fix(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(raw_config(**changes))


def test_member_mistakes_are_named_by_position() -> None:
    members = raw_config()["members"]
    members[1] = {"id": 2, "peer": "10.0.0.2", "http": "10.0.0.2:7000", "resp": "10.0.0.2:6400"}
    with pytest.raises(ConfigError, match=r"members\[1\].peer must be HOST:PORT"):
        from_mapping(raw_config(members=members))
    members[1] = dict(raw_config()["members"][0])
    with pytest.raises(ConfigError, match="member ids must be unique"):
        from_mapping(raw_config(members=members))


def test_the_node_command_reports_a_broken_file_and_exits_nonzero(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("cluster_id = \n")
    result = CliRunner().invoke(cli, ["node", "--config", str(path)])
    assert result.exit_code == 2
    assert "is not valid TOML" in result.output
    result = CliRunner().invoke(cli, ["node", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "no config file" in result.output
