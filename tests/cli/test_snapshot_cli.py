"""`paxosd snapshot` and `paxosd member` refuse what they cannot do with a reason and exit 2,
without a cluster: nothing answering, a damaged backup, a restore asked two ways at once."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from paxosd.cli.main import main
from tests.ports import free_block


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_save_with_no_node_answering_says_so(tmp_path: Path) -> None:
    port = free_block(1, offset=2500)
    code, output = _run("snapshot", "save", str(tmp_path / "b.pxbk"),
                        "--endpoints", f"127.0.0.1:{port}", "--timeout", "2")  # fmt: skip
    assert code == 2 and "no node gave a backup" in output and "refused" in output
    assert not (tmp_path / "b.pxbk").exists() and not (tmp_path / "b.pxbk.part").exists()


def test_status_and_restore_refuse_a_file_that_is_not_a_backup(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pxbk"
    junk.write_bytes(b"PXBK\x00\x01" + b"\x00" * 10)
    code, output = _run("snapshot", "status", str(junk))
    assert code == 2 and "is not a usable backup" in output and "damaged" in output
    code, output = _run("snapshot", "restore", str(junk), "--data-dir", str(tmp_path / "new"))
    assert code == 2 and "nothing was written" in output
    assert not (tmp_path / "new").exists()


def test_restore_needs_one_target(tmp_path: Path) -> None:
    code, output = _run("snapshot", "restore", str(tmp_path / "b.pxbk"))
    assert code == 2 and "either --data-dir or --config" in output


def test_member_list_with_no_node_answering_exits_2() -> None:
    port = free_block(1, offset=2501)
    code, output = _run("member", "list", "--endpoints", f"127.0.0.1:{port}", "--timeout", "1")
    assert code == 2 and "no node answered" in output


def test_member_list_reports_every_refusal_any_member_saw() -> None:
    """A member that refuses a peer's connection (a protocol too old or too new) is named by
    the peer it refuses, with the reason it gave: the list gathers them from every member."""
    from paxosd.api.member_handlers import members_view
    from paxosd.cli.member import _refusals

    reason = "node 2 speaks peer protocol 5, newer than this node's (3 to 4): upgrade this node"
    status = {
        "node_id": 2,
        "cluster_id": "c",
        "leader": 1,
        "configuration": {"epoch": 0, "voters": [1, 2, 3], "learners": []},
        "members": [{"id": 1}, {"id": 2}, {"id": 3, "refused": reason}],
    }
    view = members_view(status)
    assert [m["voting"] for m in view["members"]] == ["voter", "voter", "voter"]
    assert view["members"][2]["refused"] == reason
    assert _refusals({2: status, 3: "unreachable"}) == [f"node 3 refuses node 2: {reason}"]
