"""The node config's `[watch]` table: read, written back, and refused with what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paxosd.runtime.config import ConfigError, from_mapping, load, to_toml

from .test_config import raw_config


def test_watch_settings_are_read_and_written_back(tmp_path: Path) -> None:
    config = from_mapping(
        raw_config(watch={"progress_interval_ms": 5000, "queue_bytes_max": 65536}), tmp_path
    )
    assert config.watch.progress_interval_ms == 5000
    assert config.watch.queue_bytes_max == 65536
    assert config.watch.stall_ms == 30_000  # the default
    path = tmp_path / "node1.toml"
    path.write_text(to_toml(config))
    assert "[watch]" in path.read_text()
    assert load(path) == config


@pytest.mark.parametrize(
    ("watch", "message"),
    [
        ({"progress_interval": 5}, "unknown watch setting 'progress_interval'"),
        ({"stall_ms": 0}, "stall_ms must be a positive integer"),
        ({"queue_bytes_max": "big"}, "queue_bytes_max must be a positive integer"),
        ({"queue_bytes_max": 10, "queued_bytes_max": 5}, "queued_bytes_max"),
        ({"variant": "watch-skip-revision"}, "unknown watch setting 'variant'"),
        ("yes", "watch must be a table"),
    ],
)
def test_a_wrong_watch_setting_names_what_to_fix(watch: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(raw_config(watch=watch))
