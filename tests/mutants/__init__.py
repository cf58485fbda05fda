"""The mutation suite: every rule the engine rests on, broken on purpose, must be caught.

`mutants.toml` lists the mutations (what to find, what to put instead, the rule it breaks,
the tests and the `paxosd sim` swarm that must catch it). `python -m tests.mutants` (`make
mutants`) plants each one in a temporary copy of the tree and runs its tests and swarm there;
`test_list.py` checks, in every CI run, that each mutation's text is still found in the code
exactly once, so the list cannot rot silently as the code moves.
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIST = Path(__file__).with_name("mutants.toml")


@dataclass(frozen=True)
class Edit:
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class Mutant:
    id: str
    rule: str
    tests: tuple[str, ...]
    swarm: tuple[str, ...]  # arguments of `paxosd sim`; empty if out of the swarm's reach
    edits: tuple[Edit, ...]
    no_swarm: str = ""  # why the simulator cannot catch it
    equivalent: str = ""  # why no test can: listed for completeness, never planted

    def apply(self, root: Path) -> None:
        """Plant the mutation in the tree at `root` (each edit's text must be found once)."""
        for edit in self.edits:
            path = root / edit.file
            text = path.read_text()
            found = text.count(edit.find)
            if found != 1:
                raise LookupError(f"{self.id}: {edit.file}: the text to mutate is found {found}x")
            path.write_text(text.replace(edit.find, edit.replace))


def load(path: Path = LIST) -> list[Mutant]:
    with path.open("rb") as file:
        data = tomllib.load(file)
    mutants = []
    for entry in data["mutant"]:
        edits = tuple(Edit(e["file"], e["find"], e["replace"]) for e in entry["edit"])
        mutants.append(
            Mutant(
                id=entry["id"],
                rule=entry["rule"],
                tests=tuple(entry["tests"]),
                swarm=tuple(shlex.split(entry["swarm"])),
                edits=edits,
                no_swarm=entry.get("no_swarm", ""),
                equivalent=entry.get("equivalent", ""),
            )
        )
    return mutants


def problems(mutants: list[Mutant], root: Path = ROOT) -> list[str]:
    """What is wrong with the list against the code at `root`: texts not found exactly once,
    duplicate ids, tests that do not exist, mutants caught by nothing."""
    found: list[str] = []
    ids = [m.id for m in mutants]
    found += [f"{i}: listed twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for mutant in mutants:
        for edit in mutant.edits:
            path = root / edit.file
            if not path.exists():
                found.append(f"{mutant.id}: {edit.file} does not exist")
                continue
            count = path.read_text().count(edit.find)
            if count != 1:
                found.append(
                    f"{mutant.id}: the text to mutate is found {count} times in {edit.file} "
                    "(the code moved: update tests/mutants/mutants.toml)"
                )
            if edit.find == edit.replace:
                found.append(f"{mutant.id}: an edit that changes nothing")
        if mutant.equivalent:
            continue
        for test in mutant.tests:
            file, _, name = test.partition("::")
            if not (root / file).exists():
                found.append(f"{mutant.id}: no test file {file}")
            elif name and f"def {name}(" not in (root / file).read_text():
                found.append(f"{mutant.id}: no test {name} in {file}")
        if not mutant.tests:
            found.append(f"{mutant.id}: no test named to catch it")
        if not mutant.swarm and not mutant.no_swarm:
            found.append(f"{mutant.id}: no swarm named, and no reason why not")
    return found
