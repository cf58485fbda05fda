"""`paxosd logs`: the nodes' logs merged in time order, one node's, and following them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from paxosd.cli.logs import _Followed, command, merged, timestamp_of

A1 = "2026-12-01T20:00:01.000Z INFO node=1 event=node_started"
B1 = "2026-12-01T20:00:02.000Z INFO node=2 event=node_started"
A2 = '{"ts": "2026-12-01T20:00:03.000Z", "level": "INFO", "node": 1, "event": "leader_changed"}'
B2 = "2026-12-01T20:00:04.000Z WARNING node=2 event=node_exited"


def write_logs(root: Path) -> None:
    for number, lines in ((1, [A1, A2, "a stray line"]), (2, [B1, B2])):
        (root / f"node{number}").mkdir(parents=True)
        (root / f"node{number}" / "node.log").write_text("\n".join(lines) + "\n")


def test_timestamps_are_read_from_kv_and_json_lines() -> None:
    assert timestamp_of(A1) == "2026-12-01T20:00:01.000Z"
    assert timestamp_of(A2) == "2026-12-01T20:00:03.000Z"
    assert timestamp_of("Traceback (most recent call last):") is None


def test_lines_merge_in_time_order_and_a_line_without_a_time_stays_after_its_neighbour() -> None:
    order = merged({1: [A1, A2, "a stray line"], 2: [B1, B2]})
    assert [line for _, line in order] == [A1, B1, A2, "a stray line", B2]


def test_the_command_prints_every_node_prefixed_or_one_node_bare(tmp_path: Path) -> None:
    write_logs(tmp_path)
    every = CliRunner().invoke(command, ["--data-dir", str(tmp_path)])
    assert every.exit_code == 0
    assert every.stdout.splitlines() == [
        f"node1 | {A1}", f"node2 | {B1}", f"node1 | {A2}", "node1 | a stray line", f"node2 | {B2}",
    ]  # fmt: skip
    one = CliRunner().invoke(command, ["2", "-n", "1", "--data-dir", str(tmp_path)])
    assert one.exit_code == 0 and one.stdout.splitlines() == [B2]


def test_no_logs_is_an_error_that_says_where_it_looked(tmp_path: Path) -> None:
    result = CliRunner().invoke(command, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no node logs in" in result.stderr
    write_logs(tmp_path)
    result = CliRunner().invoke(command, ["9", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no log of node 9" in result.stderr


def test_following_reads_whole_new_lines_and_starts_over_on_a_truncated_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.log"
    path.write_text(A1 + "\n")
    followed = _Followed(1, path, path.stat().st_size, path.stat().st_ino)
    assert followed.new_lines() == []
    with path.open("a") as log:
        log.write(B1 + "\n" + "half a li")
    assert followed.new_lines() == [B1]
    with path.open("a") as log:
        log.write("ne\n")
    assert followed.new_lines() == ["half a line"]
    path.write_text(B2 + "\n")  # truncated and rewritten (log rotation by copy)
    assert followed.new_lines() == [B2]
