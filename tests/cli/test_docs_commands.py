"""Every `paxosd ...` command in the docs' shell examples names a real verb and real options,
and the docs run the CLI one way (`paxosd` on PATH after `. .venv/bin/activate`), so the
examples cannot drift from the command they document."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from paxosd.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(sh|bash|shell|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`((?:\.venv/bin/)?paxosd [^`]+)`")  # `paxosd status` in a sentence
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", "$(", "`", ";;", "|&"}


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    argv: tuple[str, ...]
    complete: bool = True  # a command to run, not a mention of a verb in a sentence

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {shlex.join(self.argv)}"


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command line) of each fenced shell block, continuations joined. In a
    `console` block only the `$ ` lines are commands; the rest is what they print."""
    found = []
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start(2)) + 1
        console = block.group(1) == "console"
        pending, start = "", first
        for offset, raw in enumerate(block.group(2).splitlines()):
            if console and not pending:
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
            if not pending:
                start = first + offset
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            found.append((start, pending + raw))
            pending = ""
    return found


def paxosd_commands(line: str) -> list[list[str]]:
    """The argument lists of the `paxosd` commands on one shell line (after `;`, `&&`, `|`,
    inside `$(...)`, behind VAR=value assignments), comments and redirections dropped. A
    synopsis (`paxosd lab check ALGORITHM [--nodes N]`) is not an example and is skipped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not a command line we can read
        return []
    commands: list[list[str]] = []
    current: list[str] = []
    skip = False
    for token in [*tokens, ";"]:
        for inner in re.findall(r"\$\(([^()]*)\)", token):  # "$(paxosd query d)" in quotes
            commands += paxosd_commands(inner)
        if skip:
            skip = False
        elif token in SEPARATORS or token.startswith(("$(", "`")):
            while current and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", current[0]):
                current.pop(0)
            synopsis = any(t.startswith("[") for t in current)
            if current and Path(current[0]).name == "paxosd" and not synopsis:
                commands.append(current)
            current = []
        elif set(token) <= set("<>&") and token not in ("&", "&&"):  # > file, 2>&1, < file
            if current and current[-1].isdigit():
                current.pop()
            skip = True
        else:
            current.append(token)
    return commands


def examples() -> list[Example]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        name = doc.relative_to(ROOT).as_posix()
        for number, line in shell_lines(text):
            for argv in paxosd_commands(line):
                found.append(Example(name, number, tuple(argv)))
        for match in INLINE.finditer(re.sub(FENCE, "", text)):
            number = text.count("\n", 0, text.find(match.group(0))) + 1
            for argv in paxosd_commands(match.group(1)):
                found.append(Example(name, number, tuple(argv), complete=False))
    return found


def check(argv: list[str], complete: bool = True) -> None:
    """Parse `argv` (after `paxosd`) as the CLI would, without running anything; raises
    click.UsageError for an unknown verb, option or a bad value (and, if `complete`, for a
    missing argument)."""
    command: click.Command = main
    name, parent = "paxosd", None
    args = list(argv)
    while True:
        try:
            ctx = command.make_context(name, args, parent=parent)
        except click.exceptions.Exit:  # --help, --version
            return
        except click.MissingParameter:
            if complete:
                raise
            return
        except click.BadOptionUsage as error:
            # Prose names an option without its value ("`paxosd node --join` asks ..."):
            # only in a mention, and only for the value it leaves out.
            if complete or "requires an argument" not in error.format_message():
                raise
            return
        except click.BadParameter as error:
            if isinstance(error.param and error.param.type, click.Path | click.File):
                return  # a file the example makes first, or the reader's own
            raise
        if not isinstance(command, click.Group):
            return
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            return
        name, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        command, parent = sub, ctx


ALL = examples()


def test_the_docs_have_shell_examples_of_the_cli() -> None:
    """The parser finds the examples (a test of this test: it must not pass on nothing)."""
    verbs = {example.argv[1] for example in ALL if len(example.argv) > 1}
    assert {"up", "get", "put", "lock", "status", "lab", "sim", "chaos", "bench"} <= verbs


@pytest.mark.parametrize("example", ALL, ids=str)
def test_a_documented_command_is_a_real_command(example: Example) -> None:
    try:
        check(list(example.argv[1:]), example.complete)
    except click.UsageError as error:
        pytest.fail(f"{example}\n  {error.format_message()}")


def test_an_example_with_a_wrong_verb_or_option_is_caught() -> None:
    for argv in (["gte", "x"], ["get", "x", "--tiemout", "1"], ["lab", "check", "nope-algo"]):
        with pytest.raises(click.UsageError):
            check(argv)
    # A mention may leave an option's value out; a complete example may not.
    check(["node", "--join"], complete=False)
    with pytest.raises(click.UsageError):
        check(["node", "--join"])


def test_the_parser_finds_commands_wherever_a_shell_line_puts_them() -> None:
    line = 'X=1 paxosd put a 1 && .venv/bin/paxosd get a | jq . ; echo "$(paxosd query d)"  # c'
    assert paxosd_commands(line) == [
        ["paxosd", "put", "a", "1"], [".venv/bin/paxosd", "get", "a"], ["paxosd", "query", "d"]
    ]  # fmt: skip


def test_the_docs_run_the_cli_one_way() -> None:
    """`paxosd` after `. .venv/bin/activate`, never `.venv/bin/paxosd` in one doc and bare
    `paxosd` in another."""
    stray = [str(e) for e in ALL if e.argv[0] != "paxosd"]
    assert not stray, "use `paxosd` (the README says to activate the venv):\n" + "\n".join(stray)
    assert ". .venv/bin/activate" in (ROOT / "README.md").read_text()
