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


def exponential_history(tmp_path: Path, adders: int = 40) -> Path:
    """Concurrent adds to a set and a read of the empty set: refuting it visits every
    subset of the adds, more than any budget here allows."""
    events = [Event(i, OpType.INVOKE, "add", "s", i, 0.0) for i in range(adders)]
    events += [Event(i, OpType.OK, "add", "s", i, 1.0) for i in range(adders)]
    events += [
        Event("r", OpType.INVOKE, "read", "s", None, 2.0),
        Event("r", OpType.OK, "read", "s", [], 3.0),
    ]
    return write_events(tmp_path / "hard.jsonl", events)


def test_time_limit_gives_unknown_and_exit_3(tmp_path: Path) -> None:
    result = run(exponential_history(tmp_path), "--time-limit", "0.05", "--json")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["verdict"] == "unknown"
    assert report["keys"]["s"]["reason"] == "time budget spent"


def test_memory_limit_gives_unknown_and_exit_3(tmp_path: Path) -> None:
    result = run(exponential_history(tmp_path), "--memory-limit", "2M")
    assert result.exit_code == 3, result.output
    assert "unknown (memory budget spent)" in result.stdout
    assert "verdict: unknown" in result.stdout


@pytest.mark.parametrize("size", ["lots", "-5M", "0"])
def test_a_bad_memory_limit_is_a_usage_error(tmp_path: Path, size: str) -> None:
    result = run(kv_history(tmp_path, read_value=1), "--memory-limit", size)
    assert result.exit_code == 2
    assert "not a size" in result.output


def test_jobs_give_the_same_verdicts(tmp_path: Path) -> None:
    one = json.loads(run(kv_history(tmp_path, read_value=7), "--json").stdout)
    two = json.loads(run(kv_history(tmp_path, read_value=7), "--json", "--jobs", "2").stdout)
    assert {k: v["verdict"] for k, v in one["keys"].items()} == {
        k: v["verdict"] for k, v in two["keys"].items()
    }


def test_a_model_of_your_own(tmp_path: Path) -> None:
    model = tmp_path / "counter.py"
    model.write_text(COUNTER_MODEL)
    events = [
        Event(0, OpType.INVOKE, "add", None, 2, 0.0),
        Event(0, OpType.OK, "add", None, 2, 1.0),
        Event(1, OpType.INVOKE, "read", None, None, 2.0),
        Event(1, OpType.OK, "read", None, 2, 3.0),
    ]
    good = write_events(tmp_path / "good.jsonl", events)
    result = run(good, "--model", f"{model}:Counter")
    assert result.exit_code == 0, result.output
    assert "(counter model)" in result.stdout
    bad = write_events(
        tmp_path / "bad.jsonl", [*events[:3], Event(1, OpType.OK, "read", None, 5, 3.0)]
    )
    assert run(bad, "--model", f"{model}:Counter").exit_code == 1


COUNTER_MODEL = """
class Counter:
    name = "counter"

    def init(self):
        return 0

    def step(self, state, op):
        if op.f == "add":
            return True, state + op.input
        if op.f == "read":
            return (not op.known or op.output == state), state
        raise ValueError(op.f)
"""


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("stack", "unknown model 'stack'"),
        ("nowhere.py:Model", "no such model file"),
        ("paxosd.check.models:Nope", "has no Nope"),
    ],
)
def test_bad_model_is_one_line_and_exit_2(tmp_path: Path, model: str, message: str) -> None:
    result = run(kv_history(tmp_path, read_value=1), "--model", model)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


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
    model = "cas-register" if family == "jepsen-etcd" else "append"
    assert f"({model} model)" in result.stdout


# ---------------------------------------------------------------------------- paxosd's own

HISTORIES = Path(__file__).resolve().parents[1] / "data" / "histories"


def test_a_sim_history_is_judged_per_workload() -> None:
    result = run(HISTORIES / "sim-c10-correct-s1.jsonl.gz")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "paxosd workloads: kv, locks, names, decisions" in out
    assert "kv: linearizability (kv model)" in out
    for line in ("locks: ok", "names: ok", "decisions: ok", "verdict: ok (every workload)"):
        assert line in out


def test_a_sim_history_with_a_planted_bug_fails_where_it_breaks() -> None:
    result = run(HISTORIES / "sim-c10-reply-before-fsync-s2.jsonl.gz", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "violated"
    assert {w: v["ok"] for w, v in report["workloads"].items()} == {
        "kv": True,
        "locks": False,
        "names": True,
        "decisions": True,
    }
    assert report["workloads"]["locks"]["problems"]
    assert report["kv"]["verdict"] == "linearizable"


def test_a_chaos_history_leaves_its_probes_unjudged() -> None:
    result = run(HISTORIES / "chaos-correct-s3.jsonl.gz", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unjudged_operations"] == 225


def test_the_kv_model_on_a_workload_history_names_the_way_out() -> None:
    result = run(HISTORIES / "sim-c10-correct-s1.jsonl.gz", "--model", "kv")
    assert result.exit_code == 2
    assert "the kv model has no operation" in result.stderr


def test_html_page(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    result = run(kv_history(tmp_path, read_value=7), "--html", page)
    assert result.exit_code == 1
    text = page.read_text()
    assert text.startswith("<!doctype html>")
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # no CDN
    assert '"verdict":"not linearizable"' in text
    assert "cannot be placed" in text


def test_html_for_a_workload_history(tmp_path: Path) -> None:
    page = tmp_path / "sim.html"
    result = run(HISTORIES / "sim-c10-reply-before-fsync-s2.jsonl.gz", "--html", page)
    assert result.exit_code == 1
    assert "locks: " in page.read_text()  # the other workloads' verdicts are on the page


def test_html_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    result = run(kv_history(tmp_path, read_value=1), "--html", tmp_path / "no" / "page.html")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "cannot write" in result.stderr


def test_porcupine_json_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "ops.json"
    path.write_text(
        json.dumps(
            [
                {"ClientId": 0, "Input": {"Op": 1, "Key": "x", "Value": "a"}, "Call": 0,
                 "Output": {"Value": ""}, "Return": 10},
                {"ClientId": 1, "Input": {"Op": 0, "Key": "x"}, "Call": 20,
                 "Output": {"Value": "b"}, "Return": 30},
            ]
        )
    )  # fmt: skip
    result = run(path)
    assert result.exit_code == 1, result.output
    assert "(kv model)" in result.stdout and "key x: not linearizable" in result.stdout
