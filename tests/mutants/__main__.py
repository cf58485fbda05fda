"""`python -m tests.mutants` (`make mutants`): plant each mutation of tests/mutants/mutants.toml
in a copy of the tree, run the tests and the bounded swarm that must catch it, and fail if any
mutant survives, or if a mutation's text is no longer found in the code.

Each mutant is planted alone in one temporary copy (and removed again); the tests and the
swarm run there, with the copy's `src` first on the path and no bytecode written, so nothing
of the mutant outlives it. Tests are caught when pytest reports failures (exit 1); anything
else (no tests collected, an import error) is a broken entry, not a catch. A swarm is caught
when `paxosd sim --stop` reports a violation (exit 1): its first failing seed is printed.

Takes about half an hour on two cores; `--only M1,N6` runs some, `--no-tests` / `--no-swarm`
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
tests_timeout_s = 1800
swarm_timeout_s = 1800


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
    with tempfile.TemporaryDirectory(prefix="paxosd-mutants-") as folder:
        tree = Path(folder) / "tree"
        shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
        for mutant in mutants:
            if mutant.equivalent:
                print(f"{mutant.id:5} equivalent, not planted: {_one_line(mutant.equivalent)}")
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
    if failures:
        print("\nSURVIVED OR BROKEN:", *failures, sep="\n  ")
        return 1
    print(f"\nall {len([m for m in mutants if not m.equivalent])} mutants caught")
    return 0


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
