"""``paxosd check HISTORY``: is a recorded history linearizable?

Theory of operation: load the history (format given or detected from the first line),
pick the model (given, or guessed from the operations: ``append`` if anything appends,
``kv`` if there are keys, else ``register``), run the checker key by key within the time
budget, and report. The exit code is the verdict, so scripts and CI can use it:
0 linearizable, 1 not linearizable, 2 unknown (time budget spent) or bad input. Bad input
is one line on stderr naming the file and line, never a traceback: the people running
this are debugging a database, not this tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from paxosd.check.history import Format, HistoryError, load_history
from paxosd.check.linearizability import CheckResult, KeyResult, Verdict, check, key_label
from paxosd.check.models import MODELS, get_model, guess_model

DEFAULT_TIME_LIMIT_S = 60.0
"""Default search budget for the whole history."""

TABLE_ROWS_SHOWN = 40
"""Keys listed in the table; failing and unknown keys come first."""

EXPLANATIONS_SHOWN = 3
"""Violations explained in full; the rest are only counted (``--json`` has them all)."""

EXIT_CODES = {Verdict.LINEARIZABLE: 0, Verdict.NOT_LINEARIZABLE: 1, Verdict.UNKNOWN: 2}
EXIT_BAD_INPUT = 2

_STYLE = {
    Verdict.LINEARIZABLE: "green",
    Verdict.NOT_LINEARIZABLE: "bold red",
    Verdict.UNKNOWN: "yellow",
}


@click.command(name="check")
@click.argument("history", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in Format]),
    default=None,
    help="History format (default: detected from the first line).",
)
@click.option(
    "--model",
    "model_name",
    type=click.Choice(list(MODELS)),
    default=None,
    help="Sequential model (default: guessed from the operations).",
)
@click.option(
    "--time-limit",
    "time_limit_s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIME_LIMIT_S,
    show_default=True,
    metavar="S",
    help="Search budget in seconds; when it runs out the verdict is 'unknown'.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(
    history: Path, fmt: str | None, model_name: str | None, time_limit_s: float, as_json: bool
) -> None:
    """Check a recorded HISTORY for linearizability.

    Exit code: 0 linearizable, 1 not linearizable, 2 unknown or bad input.
    """
    try:
        hist = load_history(history, fmt)
        if not hist.operations:
            raise HistoryError("no operations to check")
        model = get_model(model_name) if model_name else guess_model(hist.operations)
        result = check(hist, model, time_limit_s=time_limit_s)
    except HistoryError as exc:
        _fail(f"{history}: {exc}", as_json)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        _report(result, hist.unknown, hist.failed)
    raise click.exceptions.Exit(EXIT_CODES[result.verdict])


def _fail(message: str, as_json: bool) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"verdict": "error", "error": message}))
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_BAD_INPUT)


def _report(result: CheckResult, unknown: int, failed: int) -> None:
    console = Console(highlight=False)
    rank = {Verdict.NOT_LINEARIZABLE: 0, Verdict.UNKNOWN: 1, Verdict.LINEARIZABLE: 2}
    rows = sorted(result.keys, key=lambda k: rank[k.verdict])[:TABLE_ROWS_SHOWN]
    table = Table(title=f"linearizability ({result.model} model)")
    table.add_column("key")
    table.add_column("ops", justify="right")
    table.add_column("verdict")
    table.add_column("time", justify="right")
    table.add_column("states", justify="right")
    for k in rows:
        table.add_row(*_row(k))
    hidden = len(result.keys) - len(rows)
    if hidden:
        table.caption = f"{hidden} more keys, all linearizable"
    console.print(table)
    for violation in result.violations[:EXPLANATIONS_SHOWN]:
        console.print(violation.explain(), markup=False, soft_wrap=True)
    extra = len(result.violations) - EXPLANATIONS_SHOWN
    if extra > 0:
        console.print(f"({extra} more violating keys; --json lists them all)", markup=False)
    counts = {v: sum(1 for k in result.keys if k.verdict is v) for v in Verdict}
    parts = [f"{result.operations} operations"]
    if unknown or failed:
        parts.append(f"{unknown} with unknown outcome, {failed} failed (dropped)")
    keys = f"{len(result.keys)} key{'s' * (len(result.keys) != 1)}"
    if counts[Verdict.NOT_LINEARIZABLE]:
        keys += f", {counts[Verdict.NOT_LINEARIZABLE]} not linearizable"
    if counts[Verdict.UNKNOWN]:
        keys += f", {counts[Verdict.UNKNOWN]} unknown"
    parts += [keys, f"{result.elapsed_s:.2f} s"]
    summary = Text(f"verdict: {result.verdict}", style=_STYLE[result.verdict])
    summary.append(f" ({'; '.join(parts)})", style="default")
    console.print(summary, soft_wrap=True)


def _row(k: KeyResult) -> tuple[Text, str, Text, str, str]:
    return (
        Text(key_label(k.key)),
        str(k.operations),
        Text(str(k.verdict), style=_STYLE[k.verdict]),
        f"{k.elapsed_s:.3f} s",
        str(k.states_explored),
    )
