"""The SQL database kept in a file (as a node keeps it): the same answers and the same
snapshot bytes as in memory; a snapshot pinned on the loop and copied after more writes holds
the state of its slot; snapshots stream, in and out, a chunk at a time; older snapshots still
restore; damaged streamed images are refused."""

from __future__ import annotations

import gc
import io
import os
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from paxosd.service import StateMachine
from paxosd.service.errors import CorruptSnapshot
from paxosd.service.namespace import Options
from paxosd.service.snapshot import SnapshotWriter
from paxosd.service.sql import image as image_module
from paxosd.service.sql import machine as machine_module
from paxosd.service.sql.machine import SQLITE_VERSION, STREAMED
from paxosd.storage.sql_files import SqlFiles

from .test_sql_machine import COORDINATION, HEAD, KV, NO_TEMP, SESSIONS, Db, st


def _in_file(directory: Path) -> Db:
    return Db(StateMachine(options=Options(sql_files=SqlFiles(directory))))


def _fill(db: Db, rows: int, width: int = 100) -> None:
    db.write("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
    for start in range(0, rows, 50):
        db.write(
            *(
                st(
                    "INSERT INTO t (v, b) VALUES (?, ?)",
                    f"row {n}" * (width // 8),
                    bytes([n % 7]) * width,
                )
                for n in range(start, min(rows, start + 50))
            )
        )
    db.write("DELETE FROM t WHERE id % 3 = 0")
    db.write("CREATE INDEX t_v ON t (v)")


def test_a_database_in_a_file_answers_and_snapshots_as_one_in_memory(tmp_path: Path) -> None:
    """Replicas may keep their databases differently (a node in a file, the simulator in
    memory): nothing they answer or snapshot may differ."""
    memory, in_file = Db(), _in_file(tmp_path)
    for db in (memory, in_file):
        _fill(db, 500)
    assert memory.machine.sql.path is None
    assert in_file.machine.sql.path is not None and in_file.machine.sql.path.parent == tmp_path
    assert memory.rows("SELECT count(*), sum(length(b)) FROM t") == in_file.rows(
        "SELECT count(*), sum(length(b)) FROM t"
    )
    assert memory.digest() == in_file.digest()
    assert memory.machine.snapshot() == in_file.machine.snapshot()


def test_a_pinned_snapshot_holds_its_slot_while_writes_go_on(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    db = _in_file(tmp_path / "a")
    _fill(db, 300)
    at_view = db.machine.snapshot()  # the state at this slot, whole
    digest = db.digest()
    with db.machine.snapshot_view() as view:
        # The node goes on applying while the snapshot thread writes the view.
        db.write(st("INSERT INTO t (v) VALUES (?)", "after"))
        db.write("DELETE FROM t WHERE id < 100")
        db.write("CREATE TABLE later (x)")
        out = io.BytesIO()
        view.write(out)
    assert out.getvalue() == at_view
    (tmp_path / "b").mkdir()
    restored = StateMachine.restore(
        out.getvalue(), options=Options(sql_files=SqlFiles(tmp_path / "b"))
    )
    assert restored.sql.content_digest() == digest
    assert restored.sql.path is not None and restored.sql.path.parent == tmp_path / "b"
    assert restored.snapshot() == at_view
    # Nothing is left beside the database but its own files (the copy is removed).
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        f"{db.machine.sql.path.name}{suffix}" for suffix in ("", "-wal", "-shm")
    )


def test_a_closed_or_dropped_machine_removes_its_file(tmp_path: Path) -> None:
    db = _in_file(tmp_path)
    _fill(db, 50)
    path = db.machine.sql.path
    assert path is not None and path.exists()
    db.machine.sql.close()
    assert not path.exists()
    other = StateMachine(options=Options(sql_files=SqlFiles(tmp_path)))
    path = other.sql.path
    assert path is not None and path.exists()
    del other
    gc.collect()
    assert not path.exists()


class _Sink:
    """A snapshot writer that keeps only the size of what it is given."""

    def __init__(self) -> None:
        self.bytes = 0
        self.largest = 0

    def write(self, document: Any) -> None:
        size = len(document) if isinstance(document, bytes) else 0
        self.bytes += size
        self.largest = max(self.largest, size)


def test_a_snapshot_streams_in_and_out_a_chunk_at_a_time(tmp_path: Path) -> None:
    """Writing a view and restoring it hold a few chunks, not the database: here a 24 MB
    database (random bytes, which do not compress) in a few MB of Python memory each way."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    db = _in_file(tmp_path / "a")
    db.write("CREATE TABLE t (b BLOB)")
    for _ in range(24):
        db.write(*(st("INSERT INTO t VALUES (?)", os.urandom(64 * 1024)) for _ in range(16)))
    view = db.machine.snapshot_view()
    sink = _Sink()
    tracemalloc.start()
    try:
        view.write(sink)
        _, write_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        view.close()
    # The snapshot file gets frames, the largest one chunk of the image and its framing.
    assert sink.bytes > 24 * 1024 * 1024 and sink.largest <= image_module.chunk_bytes + 1024
    assert write_peak < 12 * 1024 * 1024, write_peak
    data = db.machine.snapshot()
    tracemalloc.start()
    try:
        restored = StateMachine.restore(
            io.BytesIO(data), options=Options(sql_files=SqlFiles(tmp_path / "b"))
        )
        _, restore_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert restored.sql.content_digest() == db.digest()
    assert restore_peak < 12 * 1024 * 1024, restore_peak


def _section(*objects: object) -> bytes:
    out = io.BytesIO()
    writer = SnapshotWriter(out)
    for item in objects:
        writer.write(item)
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("directory", [False, True])
def test_a_snapshot_of_the_earlier_format_still_restores(tmp_path: Path, directory: bool) -> None:
    """Before images were streamed, the head gave the compressed size and the chunks (level 6)
    added up to it."""
    db = Db()
    _fill(db, 100)
    image = db.machine.sql.image()
    packed = zlib.compress(image, 6)
    chunks = [packed[i : i + 1000] for i in range(0, len(packed), 1000)]
    revisions = sorted([t, r] for t, r in db.machine.sql.table_revisions.items())
    head = ["sql", SQLITE_VERSION, db.machine.sql.revision, revisions, len(packed), NO_TEMP]
    options = Options(sql_files=SqlFiles(tmp_path)) if directory else Options()
    restored = StateMachine.restore(
        _section(HEAD, *KV, COORDINATION, head, *chunks, SESSIONS), options=options
    )
    assert restored.sql.content_digest() == db.machine.sql.content_digest()


def _streamed(*chunks: object) -> list[object]:
    return [["sql", SQLITE_VERSION, 1, [["t", 1]], STREAMED, NO_TEMP], *chunks]


_IMAGE = zlib.compress(b"SQLite format 3\x00" + bytes(4080))


@pytest.mark.parametrize(
    "section",
    [
        _streamed(_IMAGE[:10]),  # no end: the sessions follow
        _streamed(b"not zlib at all", b""),
        _streamed(_IMAGE[:-4], b""),  # cut
        _streamed(_IMAGE, _IMAGE, b""),  # followed by more
        _streamed(_IMAGE, b""),  # inflates, but not a database
        _streamed("text", b""),
        [["sql", SQLITE_VERSION, 1, [], -2, NO_TEMP]],
    ],
)
@pytest.mark.parametrize("directory", [False, True])
def test_damaged_streamed_images_are_refused_and_leave_no_file(
    tmp_path: Path, section: list[Any], directory: bool
) -> None:
    options = Options(sql_files=SqlFiles(tmp_path)) if directory else Options()
    with pytest.raises(CorruptSnapshot):
        StateMachine.restore(_section(HEAD, *KV, COORDINATION, *section, SESSIONS), options=options)
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_an_image_over_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Db()
    _fill(db, 100)
    data = db.machine.snapshot()
    monkeypatch.setattr(machine_module, "image_bytes_max", 8192)
    with pytest.raises(CorruptSnapshot, match="image_bytes_max"):
        StateMachine.restore(data, options=Options(sql_files=SqlFiles(tmp_path)))


def test_a_written_view_no_longer_holds_the_database_back(tmp_path: Path) -> None:
    """A pinned snapshot keeps the WAL from starting over; the host does not close views, so
    the view lets go once it has copied the database: a full checkpoint then succeeds."""
    db = _in_file(tmp_path)
    _fill(db, 200)
    machine = db.machine.sql

    def checkpoint_blocked() -> bool:
        with machine._trusted():
            busy, _, _ = machine._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return bool(busy)

    view = db.machine.snapshot_view()
    db.write(st("INSERT INTO t (v) VALUES (?)", "after the view"))
    assert checkpoint_blocked(), "the view's read transaction holds the WAL"
    view.write(io.BytesIO())
    db.write(st("INSERT INTO t (v) VALUES (?)", "after the write"))
    assert not checkpoint_blocked()
    view.close()


def test_replicas_in_files_that_restore_midway_end_with_equal_snapshots(tmp_path: Path) -> None:
    """As on a cluster: a node that installed a peer's snapshot and applies on from there
    snapshots the same bytes as the peer that applied everything (a lagging node may take a
    snapshot's chunks from several peers)."""
    for name in ("whole", "halfway"):
        (tmp_path / name).mkdir()
    whole = _in_file(tmp_path / "whole")
    _fill(whole, 150)
    halfway = Db(
        StateMachine.restore(
            whole.machine.snapshot(),
            options=Options(sql_files=SqlFiles(tmp_path / "halfway")),
        )
    )
    assert halfway.machine.sql.path is not None
    halfway.seq = whole.seq
    halfway.log.slot = whole.log.slot
    for db in (whole, halfway):
        db.write("CREATE TABLE later (x)")
        db.write(*(st("INSERT INTO t (v) VALUES (?)", f"more {n}") for n in range(40)))
        db.write("DELETE FROM t WHERE id % 5 = 1")
        db.write("DROP INDEX t_v")
    assert halfway.digest() == whole.digest()
    assert halfway.machine.snapshot() == whole.machine.snapshot()
