"""``paxosd check``: verdict tables, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from paxosd.check.history import Event, OpType, dump_jsonl
from paxosd.cli.check import command
from paxosd.cli.main import main

from ._support import MISSING_REASON, linearizability_dir


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(command, [str(a) for a in args])


def write_events(path: Path, events: list[Event]) -> Path:
    path.write_text(dump_jsonl(events))
    return path


def kv_history(tmp_path: Path, read_value: int) -> Path:
    return write_events(
        tmp_path / "h.jsonl",
        [
            Event(0, OpType.INVOKE, "put", "x", 1, 0.0),
            Event(0, OpType.OK, "put", "x", 1, 1.0),
            Event(1, OpType.INVOKE, "get", "x", None, 2.0),
            Event(1, OpType.OK, "get", "x", read_value, 3.0),
            Event(1, OpType.INVOKE, "put", "y", 5, 4.0),
            Event(1, OpType.OK, "put", "y", 5, 5.0),
        ],
    )


def test_linearizable_exits_0_with_a_table(tmp_path: Path) -> None:
    result = run(kv_history(tmp_path, read_value=1))
    assert result.exit_code == 0, result.output
    assert "kv model" in result.stdout
    assert "┃ key" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("verdict: linearizable (3 operations")


def test_violation_exits_1_and_explains(tmp_path: Path) -> None:
    result = run(kv_history(tmp_path, read_value=7))
    assert result.exit_code == 1
    assert "key x: not linearizable." in result.stdout
    assert "#1 p1 get -> 7" in result.stdout
    assert "verdict: not linearizable" in result.stdout
    assert "1 not linearizable" in result.stdout


def test_json_output(tmp_path: Path) -> None:
    result = run(kv_history(tmp_path, read_value=7), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "not linearizable"
    assert report["operations"] == 3
    assert set(report["keys"]) == {"x", "y"}
    assert report["keys"]["y"]["verdict"] == "linearizable"
    assert "explanation" in report["keys"]["x"]
    assert isinstance(report["elapsed_s"], float)


def test_time_limit_gives_unknown_and_exit_2(tmp_path: Path) -> None:
    writers = 40  # concurrent unknown writes, then a read nobody could have caused
    events = [Event(i, OpType.INVOKE, "write", None, i, float(i)) for i in range(writers)]
    events += [
        Event("r", OpType.INVOKE, "read", None, None, 100.0),
        Event("r", OpType.OK, "read", None, -1, 101.0),
    ]
    result = run(write_events(tmp_path / "hard.jsonl", events), "--time-limit", "0.05", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["verdict"] == "unknown"


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "cannot read the file: No such file or directory"),
        (
            '{"process": 0, "type": "invoke", "f": "get"}\n\n{"process": 0, "type"\n',
            [],
            "line 3: invalid JSON",
        ),
        ("", [], "the history is empty"),
        (
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n",
            ["--format", "jsonl"],
            "line 1: invalid JSON",
        ),
        (
            '{:process 0, :type :invoke, :f :append, :key "k", :value "a"}\n',
            ["--model", "kv"],
            "no operation 'append'",
        ),
        (
            "INFO  jepsen.util - 0\t:info\t:read\tnil\n",
            [],
            "line 1: info for process 0 with no pending invoke",
        ),
        (
            "INFO  jepsen.core - nothing to see\nhello\n",
            ["--format", "jepsen"],
            "no operations to check",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, args: list[str], message: str
) -> None:
    path = tmp_path / "history.txt"
    if content is not None:
        path.write_text(content)
    result = run(path, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {path}: ")
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_bad_input_with_json_also_reports_on_stdout(tmp_path: Path) -> None:
    result = run(tmp_path / "missing.jsonl", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["verdict"] == "error"


def test_reached_through_the_paxosd_group(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(kv_history(tmp_path, read_value=1))])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("family", "name", "code"), [("jepsen-etcd", "etcd_000.log", 1), ("kv", "c01-ok.txt", 0)]
)
def test_test_vectors_through_the_cli(family: str, name: str, code: int) -> None:
    base = linearizability_dir()
    if base is None:
        pytest.skip(MISSING_REASON)
    result = run(base / family / name)
    assert result.exit_code == code, result.output
    model = "register" if family == "jepsen-etcd" else "append"
    assert f"({model} model)" in result.stdout
