"""SQLite's sqllogictest files through a real 3-node cluster's rqlite API, each record on the
next node in turn; Python's sqlite3 runs the same files as the oracle (a runner that disagrees
with it has a bug of its own). Every file runs in CI (all of them take about 15 s: about 3,000
records, each an HTTP request to the next node); a leader killed in the middle of a file
changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import sqllogictest as slt
from .cluster import Cluster

EVIDENCE = sorted((slt.TESTDATA / "evidence").glob("*.test"))
SELECTS = sorted(slt.TESTDATA.glob("select*.test"))


@pytest.fixture(scope="module")
def engine(shared_cluster: Cluster) -> Iterator[slt.Cluster]:
    running = slt.Cluster(shared_cluster.endpoints())
    yield running
    running.close()


def test_the_files_are_there() -> None:
    assert len(EVIDENCE) >= 10 and len(SELECTS) == 2


@pytest.mark.parametrize("path", EVIDENCE + SELECTS, ids=lambda p: p.name)
def test_the_oracle_passes_every_record(path: Path) -> None:
    count, failures = slt.run(path, slt.LocalSqlite())
    assert count > 0 and failures == []


def _through_the_cluster(engine: slt.Cluster, path: Path, limit: int | None = None) -> int:
    engine.reset()
    count, failures = slt.run(path, engine, limit)
    assert failures == [], "\n".join(failures[:10])
    return count


@pytest.mark.parametrize("path", EVIDENCE, ids=lambda p: p.name)
def test_language_files_pass_through_the_cluster(engine: slt.Cluster, path: Path) -> None:
    assert _through_the_cluster(engine, path) > 0


@pytest.mark.parametrize("path", SELECTS, ids=lambda p: p.name)
def test_select_files_pass_through_the_cluster(engine: slt.Cluster, path: Path) -> None:
    assert _through_the_cluster(engine, path) > 1000


def test_a_leader_killed_in_the_middle_of_a_file_changes_nothing(cluster: Cluster) -> None:
    path = slt.TESTDATA / "evidence" / "in1.test"
    records = list(slt.parse(path))
    engine = slt.Cluster(cluster.endpoints())
    try:
        half = len(records) // 2
        failures = [problem for record in records[:half]
                    if (problem := slt.check(record, engine)) is not None]  # fmt: skip
        leader = cluster.wait_for_leader()
        cluster.kill9(leader)
        failures += [problem for record in records[half:]
                     if (problem := slt.check(record, engine)) is not None]  # fmt: skip
        assert failures == []
        assert cluster.wait_for_leader() != leader
    finally:
        engine.close()
