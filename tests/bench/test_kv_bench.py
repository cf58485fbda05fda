"""The data model's benchmark (benchmark/kv.py) runs end to end at a tiny size, paxosd beside
a real etcd, and reports every measure; speed itself is never asserted here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from paxosd.cli.main import main
from tests.mvcc_store import needs_store


@needs_store
@pytest.mark.skipif(shutil.which("etcd") is None, reason="no etcd (bench/setup.sh installs it)")
def test_kv_only_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["bench", "--kv-only", "--systems", "paxosd,etcd", "--kv-txn-seconds", "1",
         "--kv-txn-clients", "2", "--kv-range-keys", "150", "--kv-memory-keys", "150",
         "--kv-versions", "1", "--quiet-wait", "0", "--data-root", str(tmp_path),
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (out / "results.md").read_text()
    assert "range of 150 keys, p50" in text and "memory per historic version" in text
    import json

    records = json.loads((out / "results.json").read_text())["records"]
    measured = {(r["system"], r["op"]) for r in records if "error" not in r}
    assert measured == {(s, op) for s in ("paxosd", "etcd") for op in ("txn", "range", "memory")}
    ranges = [r for r in records if r["op"] == "range"]
    assert all(r["keys"] == 150 and r["p50_ms"] > 0 for r in ranges)
