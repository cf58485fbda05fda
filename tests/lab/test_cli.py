"""`paxosd lab` as a user meets it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from paxosd.cli.main import main


def run(*args: str) -> object:
    result = CliRunner().invoke(main, list(args))
    return result


def test_check_json_has_the_documented_shape() -> None:
    result = run("lab", "check", "majority", "--explore", "--json")
    assert result.exit_code == 0, result.output
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
    assert result.exit_code == 0
    for word in ("Agreement", "Validity", "Termination", "Fault tolerance", "violated"):
        assert word in result.output
    assert "1. 1 crashes" in result.output


def test_a_swarm_violation_prints_its_seed_and_replay_command() -> None:
    result = run("lab", "check", "failover", "--faults", "partition", "--runs", "30")
    assert result.exit_code == 0
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
