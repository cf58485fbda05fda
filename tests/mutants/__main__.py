"""`python -m tests.mutants` (`make mutants`): plant each mutation of tests/mutants/mutants.toml
in a copy of the tree, run the tests and the bounded swarm that must catch it, and fail if any
mutant survives, or if a mutation's text is no longer found in the code.

Each mutant is planted alone in one temporary copy (and removed again); the tests and the
swarm run there, with the copy's `src` first on the path and no bytecode written, so nothing
of the mutant outlives it. Tests are caught when pytest reports failures (exit 1); anything
else (no tests collected, an import error) is a broken entry, not a catch. A swarm is caught
when `paxosd sim --stop` reports a violation (exit 1): its first failing seed is printed.

The run ends with a table of every mutant (caught by which test, at which swarm seed, or
not caught), in Markdown so docs/architecture.md can take it as it is; `--table FILE` writes
it to a file as well. Time is bounded: each step has a timeout, and the whole run a budget
(`--budget-min`, default 120): mutants left when it is spent are listed as not run, and the
run fails, since an unrun mutant is not a caught one.

Takes about ten minutes on two cores; `--only M1,N6` runs some, `--no-tests` / `--no-swarm`
one side only, `--jobs` sets the swarm's processes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.mutants import ROOT, Mutant, load, problems

IGNORED = (".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")
tests_timeout_s = 900
swarm_timeout_s = 1200
budget_min_default = 120


@dataclass
class Verdict:
    caught: bool | None  # None: not run, or the step itself is broken
    detail: str
    seconds: float


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__)
    parser.add_argument("--only", help="comma-separated mutant ids")
    parser.add_argument("--jobs", type=int, default=2, help="swarm processes (default 2)")
    parser.add_argument("--no-tests", action="store_true", help="run only the swarms")
    parser.add_argument("--no-swarm", action="store_true", help="run only the tests")
    parser.add_argument("--list", action="store_true", help="print the list and stop")
    parser.add_argument("--table", type=Path, help="also write the summary table to this file")
    parser.add_argument(
        "--budget-min", type=float, default=budget_min_default,
        help=f"stop planting new mutants after this many minutes (default {budget_min_default})",
    )  # fmt: skip
    args = parser.parse_args()
    mutants = load()
    wrong = problems(mutants)
    if wrong:
        print("the mutation list does not match the code:", *wrong, sep="\n  ")
        return 2
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.id for m in mutants}
        if unknown:
            print(f"unknown mutant(s): {', '.join(sorted(unknown))}")
            return 2
        mutants = [m for m in mutants if m.id in wanted]
    if args.list:
        for mutant in mutants:
            print(f"{mutant.id:5} {mutant.rule}")
        return 0
    failures = []
    rows: list[Row] = []
    began = time.monotonic()
    deadline = began + args.budget_min * 60
    with tempfile.TemporaryDirectory(prefix="paxosd-mutants-") as folder:
        tree = Path(folder) / "tree"
        shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
        for mutant in mutants:
            if mutant.equivalent:
                print(f"{mutant.id:5} equivalent, not planted: {_one_line(mutant.equivalent)}")
                rows.append(Row(mutant, "equivalent", "equivalent"))
                continue
            if time.monotonic() > deadline:
                spent = f"the {args.budget_min:g} min budget ran out"
                failures.append(f"{mutant.id}: not run ({spent})")
                rows.append(Row(mutant, "NOT RUN (budget)", "NOT RUN (budget)"))
                continue
            print(f"{mutant.id:5} {mutant.rule}", flush=True)
            originals = {e.file: (tree / e.file).read_text() for e in mutant.edits}
            mutant.apply(tree)
            try:
                tests = Verdict(None, "not run", 0.0)
                swarm = Verdict(None, "not run", 0.0)
                if not args.no_tests:
                    tests = _run_tests(tree, mutant)
                    print(f"      tests: {_describe(tests)}", flush=True)
                if not args.no_swarm:
                    swarm = _run_swarm(tree, mutant, args.jobs)
                    print(f"      swarm: {_describe(swarm)}", flush=True)
            finally:
                for file, text in originals.items():
                    (tree / file).write_text(text)
            missed = [
                side
                for side, verdict, skipped in (
                    ("tests", tests, args.no_tests),
                    ("swarm", swarm, args.no_swarm or not mutant.swarm),
                )
                if not skipped and verdict.caught is not True
            ]
            if missed:
                failures.append(f"{mutant.id}: not caught by its {' and '.join(missed)}")
            rows.append(
                Row(
                    mutant,
                    "not run" if args.no_tests else _cell(tests),
                    "not run" if args.no_swarm and mutant.swarm else _cell(swarm, mutant),
                )
            )
    table = _table(rows)
    print("\n" + table, end="")
    if args.table:
        args.table.write_text(table)
    minutes = (time.monotonic() - began) / 60
    if failures:
        print(f"\nSURVIVED OR BROKEN ({minutes:.0f} min):", *failures, sep="\n  ")
        return 1
    planted = len([m for m in mutants if not m.equivalent])
    print(f"\nall {planted} mutants caught ({minutes:.0f} min)")
    return 0


@dataclass
class Row:
    mutant: Mutant
    tests: str
    swarm: str


def _cell(verdict: Verdict, mutant: Mutant | None = None) -> str:
    """One cell of the summary: what caught the mutant, or plainly that nothing did."""
    if mutant is not None and not mutant.swarm:
        return "out of reach (why: its `no_swarm` in mutants.toml)"
    if verdict.caught is True:
        return verdict.detail.partition(": ")[0]  # "caught by <test>" or "caught at seed N"
    if verdict.caught is False:
        return f"**NOT CAUGHT** ({verdict.detail})"
    return f"**BROKEN** ({verdict.detail})"


def _table(rows: list[Row]) -> str:
    """The run as a Markdown table: id, rule, the tests' verdict, the swarm's verdict."""
    lines = ["| id | rule | tests | swarm |", "|---|---|---|---|"]
    for row in rows:
        swarm_args = " ".join(row.mutant.swarm)
        swarm = f"`{swarm_args}`: {row.swarm}" if row.mutant.swarm else row.swarm
        lines.append(f"| {row.mutant.id} | {row.mutant.rule} | {row.tests} | {swarm} |")
    return "\n".join(lines) + "\n"


def _environment(tree: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(tree / "src") + os.pathsep + str(tree),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _run_tests(tree: Path, mutant: Mutant) -> Verdict:
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly", "-n", "0", *mutant.tests]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=tree, env=_environment(tree), capture_output=True, text=True,
            timeout=tests_timeout_s,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Verdict(None, f"timed out after {tests_timeout_s} s", tests_timeout_s)
    took = time.monotonic() - started
    if done.returncode == 1:
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.MULTILINE)
        return Verdict(True, f"caught by {failed[0] if failed else 'a failing test'}", took)
    if done.returncode == 0:
        return Verdict(False, "SURVIVED: every test passed", took)
    tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
    return Verdict(None, f"BROKEN: pytest exited {done.returncode}: {' / '.join(tail)}", took)


def _run_swarm(tree: Path, mutant: Mutant, jobs: int) -> Verdict:
    if not mutant.swarm:
        return Verdict(None, f"none: {_one_line(mutant.no_swarm)}", 0.0)
    started = time.monotonic()
    command = [sys.executable, "-m", "paxosd", "sim", *mutant.swarm, "--stop", "--json",
               "--jobs", str(jobs)]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=tree, env=_environment(tree), capture_output=True, text=True,
            timeout=swarm_timeout_s,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Verdict(None, f"timed out after {swarm_timeout_s} s", swarm_timeout_s)
    took = time.monotonic() - started
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = done.stderr.strip().splitlines()[-3:]
        return Verdict(None, f"BROKEN: paxosd sim exited {done.returncode}: {tail}", took)
    violations = report["violations"]
    if done.returncode == 1 and violations:
        first = violations[0]
        problem = _one_line(first["problems"][0])[:120]
        return Verdict(True, f"caught at seed {first['seed']}: {problem}", took)
    if done.returncode == 0:
        return Verdict(False, f"SURVIVED {report['runs']} runs", took)
    return Verdict(None, f"BROKEN: paxosd sim exited {done.returncode}", took)


def _describe(verdict: Verdict) -> str:
    return f"{verdict.detail} ({verdict.seconds:.0f} s)"


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
