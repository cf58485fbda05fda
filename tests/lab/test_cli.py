"""`paxosd lab` as a user meets it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from paxosd.check.consensus import Verdict
from paxosd.cli.main import main
from paxosd.lab.check import fault_tolerance


def run(*args: str, env: dict[str, str] | None = None) -> object:
    result = CliRunner().invoke(main, list(args), env=env)
    return result


def test_check_json_has_the_documented_shape() -> None:
    result = run("lab", "check", "majority", "--explore", "--json")
    assert result.exit_code == 1, result.output  # stuck: not fault tolerant
    report = json.loads(result.output)
    assert set(report) >= {
        "algorithm", "config", "properties", "counterexamples", "states_explored", "runs",
    }  # fmt: skip
    assert report["properties"] == {
        "agreement": "holds", "validity": "holds", "termination": "violated",
    }  # fmt: skip
    example = report["counterexamples"]["termination"]
    assert example["steps"] == len(example["trace"]) == 3


def test_check_prints_the_verdict_table_and_a_numbered_trace() -> None:
    result = run("lab", "check", "leader", "--explore")
    assert result.exit_code == 1
    for word in ("Agreement", "Validity", "Termination", "Fault tolerance", "violated"):
        assert word in result.output
    assert "1. 1 crashes" in result.output


def test_a_swarm_violation_prints_its_seed_and_replay_command() -> None:
    result = run("lab", "check", "failover", "--faults", "partition", "--runs", "30")
    assert result.exit_code == 1
    assert "replay with:" in result.output and "--runs 1 --seed" in result.output
    seed = result.output.split("--runs 1 --seed ")[1].split()[0]
    replay = run(
        "lab", "check", "failover", "--faults", "partition", "--runs", "1", "--seed", seed,
        "--json",
    )  # fmt: skip
    assert json.loads(replay.output)["properties"]["agreement"] == "violated"


def test_unknown_variant_is_a_clear_usage_error() -> None:
    result = run("lab", "check", "paxos", "--variant", "nonsense")
    assert result.exit_code == 2
    assert "choose one of" in result.output and "forget-promise" in result.output


def test_scenario_writes_a_diagram(tmp_path: Path) -> None:
    svg, html = tmp_path / "vote.svg", tmp_path / "vote.html"
    result = run("lab", "scenario", "split-vote", "--svg", str(svg), "--html", str(html))
    assert result.exit_code == 0, result.output
    assert svg.read_text().startswith("<svg") or "<svg" in svg.read_text()[:200]
    assert "<html" in html.read_text()[:200].lower()
    assert "stuck" in result.output


def test_sweep_reports_median_and_maximum_rounds() -> None:
    result = run("lab", "scenario", "dueling-proposers", "--sweep", "50", "--json")
    data = json.loads(result.output)
    assert data["runs"] == data["decided"] == 50
    assert data["rounds_median"] >= 2 and data["rounds_max"] >= data["rounds_median"]


def test_flp_majority_names_the_critical_configuration() -> None:
    result = run("lab", "flp", "majority")
    assert result.exit_code == 0
    assert "Critical configuration" in result.output
    assert "stuck forever" in result.output


def test_exit_status_says_whether_the_algorithm_is_fault_tolerant() -> None:
    """0 fault tolerant, 1 a needed property violated, 3 stopped before an answer."""
    split_brain = run("lab", "check", "failover", "--explore", "--faults", "partition",
                      "--crashes", "0")  # fmt: skip
    assert split_brain.exit_code == 1, split_brain.output
    assert "stopped at the first violation" in split_brain.output
    calm = run("lab", "check", "failover", "--explore", "--faults", "", "--crashes", "0")
    assert calm.exit_code == 0, calm.output
    cut_short = run("lab", "check", "majority", "--explore", "--max-states", "50")
    assert cut_short.exit_code == 3, cut_short.output
    assert "stopped at the state limit (--max-states): 5" in cut_short.output
    assert "no violation so far" in cut_short.output


def test_the_memory_limit_stops_the_search_and_says_so() -> None:
    result = run("lab", "check", "paxos", "--explore", "--max-memory-mb", "1", "--json")
    assert result.exit_code == 3, result.output
    report = json.loads(result.output)
    assert report["stopped"] == "memory limit"
    assert report["properties"]["agreement"] == "unknown"
    assert report["states_explored"] >= 1 and report["depth"] >= 1
    assert_no_violation_unfound(report)


def assert_no_violation_unfound(report: dict[str, object]) -> None:
    """Every "violated" in a report comes with the run that shows it, and fault tolerance is
    "violated" only if a settled verdict breaks it."""
    properties = report["properties"]
    examples = report["counterexamples"]
    assert isinstance(properties, dict) and isinstance(examples, dict)
    for prop, status in properties.items():
        if status == "violated":
            assert prop in examples and examples[prop]["steps"] >= 1, (prop, report)
    details = report["details"]
    assert isinstance(details, dict)
    stuck_or_unsafe = any(
        status == "violated" and (prop != "termination" or "livelock" not in details[prop])
        for prop, status in properties.items()
    )
    expected = "violated" if stuck_or_unsafe else "unknown"
    assert report["fault_tolerance"] == expected, report


def table_rows(output: str) -> dict[str, str]:
    """The verdict table of `lab check` as {property: verdict} (rich draws it with │)."""
    rows: dict[str, str] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) >= 4 and cells[1] and cells[2] in ("holds", "violated", "unknown"):
            rows[cells[1]] = cells[2]
    return rows


@pytest.mark.parametrize(
    ("limit", "stopped"),
    [(("--max-states", "2000"), "state limit"), (("--max-memory-mb", "1"), "memory limit")],
)
def test_a_search_stopped_by_a_limit_claims_no_violation_it_did_not_find(
    limit: tuple[str, str], stopped: str
) -> None:
    """Correct Paxos cut short: Agreement and Validity are unknown, and so is fault tolerance
    (never "violated" for want of an answer). Termination may be violated only by the livelock
    the livelock search actually found, with its run printed."""
    args = ("lab", "check", "paxos", "--explore", "--faults", "crash", *limit)
    report = json.loads(run(*args, "--json").output)
    assert report["stopped"] == stopped
    assert report["properties"]["agreement"] == report["properties"]["validity"] == "unknown"
    assert "checked" in report["details"]["agreement"] or stopped == "memory limit"
    assert_no_violation_unfound(report)
    text = run(*args, env={"COLUMNS": "200"})
    assert text.exit_code == 3, text.output
    rows = table_rows(text.output)
    assert rows["Agreement"] == rows["Validity"] == rows["Fault tolerance"] == "unknown", rows
    if rows["Termination"] == "violated":
        assert "Counterexample for termination" in text.output and "livelock" in text.output


@pytest.mark.parametrize(
    ("statuses", "kind", "expected"),
    [
        (("holds", "holds", "holds"), "", "holds"),
        (("holds", "holds", "violated"), "livelock", "holds"),
        (("holds", "holds", "violated"), "stuck", "violated"),
        (("violated", "unknown", "unknown"), "", "violated"),
        (("unknown", "unknown", "violated"), "stuck", "violated"),
        (("unknown", "unknown", "violated"), "livelock", "unknown"),
        (("unknown", "unknown", "unknown"), "", "unknown"),
        (("holds", "holds", "unknown"), "", "unknown"),
        (("holds", "unknown", "holds"), "", "unknown"),
    ],
)
def test_fault_tolerance_is_derived_from_the_three_verdicts(
    statuses: tuple[str, str, str], kind: str, expected: str
) -> None:
    """Unknown stays unknown: only a settled verdict can make fault tolerance hold or fail."""
    agreement, validity, termination = statuses
    verdicts = {
        "agreement": Verdict("agreement", agreement),  # type: ignore[arg-type]
        "validity": Verdict("validity", validity),  # type: ignore[arg-type]
        "termination": Verdict("termination", termination, kind=kind),  # type: ignore[arg-type]
    }
    assert fault_tolerance(verdicts).status == expected


def test_ctrl_c_reports_what_was_explored(tmp_path: Path) -> None:
    """A long exploration interrupted with SIGINT prints its states, depth and verdict."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.pace import Deadline

    command = [sys.executable, "-m", "paxosd", "lab", "check", "paxos", "--explore",
               "--faults", "restart,loss,duplicate,reorder"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as a terminal delivers it, even if this test runs where SIGINT is ignored
        # (a background job): an ignored SIGINT would be inherited, and never interrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        # Interrupt once the search is running (it takes minutes), however long starting
        # took on this machine: its first progress line says so.
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "states so far" in first, first
        process.send_signal(signal.SIGINT)
        stopping = Deadline(30)
        while process.poll() is None and not stopping.passed():
            time.sleep(0.1)
        out, _ = process.communicate(timeout=5)
        out = first + out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, out
    assert "interrupted (Ctrl-C):" in out and "depth" in out, out
    assert "no violation so far" in out
    assert "Traceback" not in out and "Aborted" not in out
    rows = table_rows(out)
    assert set(rows.values()) == {"unknown"}, rows  # fault tolerance too: nothing was settled
    assert "violated" not in out
