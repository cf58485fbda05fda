"""``paxosd check HISTORY``: is a recorded history linearizable?

Theory of operation: load the history (format given or detected from the first line), pick
how to judge it, run the checks within the time and memory budgets, and report.

- A history of paxosd's own workloads (what ``paxosd sim --history-out`` and ``paxosd
  chaos`` write: kv, locks, names and decisions mixed) is judged per workload, each with its
  own checker, exactly as the simulator and the chaos harness judge it
  (`paxosd.check.workloads`): linearizability for the kv keys, fencing and mutual
  exclusion for locks, one owner per name, one value per decision.
- Any other history is checked for linearizability against one model: given with
  ``--model`` (a built-in name, or ``FILE.py:CLASS`` for a model of your own), or guessed
  from the operations.

The exit code is the verdict, so scripts and CI can use it: 0 linearizable (every workload
ok), 1 a violation, 2 bad input or usage, 3 unknown (a budget ran out before the check could
decide). Bad input is one line on stderr naming the file and line, never a traceback: the
people running this are debugging a database, not this tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from paxosd.check.budget import default_memory_limit_bytes, parse_size
from paxosd.check.history import Format, History, HistoryError, load_history
from paxosd.check.html import render
from paxosd.check.linearizability import CheckResult, KeyResult, Verdict, check, key_label
from paxosd.check.locks import SafetyResult
from paxosd.check.models import MODELS, Model, get_model, guess_model, load_model
from paxosd.check.workloads import (
    is_workload_history,
    judge_workloads,
    kv_operations,
    kv_result,
    workload_of,
)

DEFAULT_TIME_LIMIT_S = 60.0
"""Default search budget for the whole history."""

TABLE_ROWS_SHOWN = 40
"""Keys listed in the table; failing and unknown keys come first."""

EXPLANATIONS_SHOWN = 3
"""Violations explained in full; the rest are only counted (``--json`` has them all)."""

PROBLEMS_SHOWN = 5
"""Problems listed per workload (lock, name, decision checks)."""

WORKLOADS_MODEL = "paxosd"
"""``--model paxosd``: judge the history as paxosd's four workloads."""

EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3
EXIT_CODES = {
    Verdict.LINEARIZABLE: EXIT_OK,
    Verdict.NOT_LINEARIZABLE: EXIT_VIOLATION,
    Verdict.UNKNOWN: EXIT_UNKNOWN,
}

_WORKLOAD_VERDICT = {
    Verdict.LINEARIZABLE: "ok",
    Verdict.NOT_LINEARIZABLE: "violated",
    Verdict.UNKNOWN: "unknown",
}

_STYLE = {
    Verdict.LINEARIZABLE: "green",
    Verdict.NOT_LINEARIZABLE: "bold red",
    Verdict.UNKNOWN: "yellow",
}


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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
    default=None,
    metavar="NAME",
    help=(
        f"Sequential model: {', '.join(MODELS)}; {WORKLOADS_MODEL} for paxosd's four "
        "workloads; or FILE.py:CLASS for your own. Default: guessed from the operations."
    ),
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
@click.option(
    "--memory-limit",
    "memory_limit",
    callback=_size,
    default=None,
    metavar="SIZE",
    help="Memory budget of the search, e.g. 500M or 2G (default: a quarter of the RAM); "
    "when it runs out the verdict is 'unknown'.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; keys are searched in parallel.",
)
@click.option(
    "--all-keys",
    is_flag=True,
    help="Check every key even after one is found not linearizable (slower; lists every "
    "violation).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Also write a page that draws the history and, per failing key, where it fails.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(
    history: Path,
    fmt: str | None,
    model_name: str | None,
    time_limit_s: float,
    memory_limit: int | None,
    jobs: int,
    all_keys: bool,
    html_path: Path | None,
    as_json: bool,
) -> None:
    """Check a recorded HISTORY for linearizability (and paxosd's workload histories for
    every safety property).

    \b
    Formats: jsonl (paxosd), edn and jepsen (Jepsen), porcupine (its operation JSON).
    Exit code: 0 linearizable, 1 a violation, 2 bad input, 3 unknown (a budget ran out).
    """
    budgets: dict[str, Any] = {
        "time_limit_s": time_limit_s,
        "memory_limit_bytes": memory_limit or default_memory_limit_bytes(),
        "jobs": jobs,
        "stop_at_violation": not all_keys,
    }
    try:
        hist = load_history(history, fmt)
        if not hist.operations:
            raise HistoryError("no operations to check")
        workloads = model_name == WORKLOADS_MODEL or (
            model_name is None and is_workload_history(hist.operations)
        )
        if workloads:
            code = _workloads(history, hist, budgets, html_path, as_json)
        else:
            model = _model(model_name, hist)
            result = check(hist, model, **budgets)
            if html_path is not None:
                _write_html(html_path, result, hist.operations, model, str(history), [])
            if as_json:
                click.echo(json.dumps(result.to_json(), indent=2))
            else:
                _report(result, hist.unknown, hist.failed)
            code = EXIT_CODES[result.verdict]
    except HistoryError as exc:
        _fail(f"{history}: {exc}", as_json)
    raise click.exceptions.Exit(code)


def _model(name: str | None, hist: History) -> Model:
    if name is None:
        return guess_model(hist.operations)
    if name in MODELS:
        return get_model(name)
    if ":" in name:
        try:
            return load_model(name)
        except ValueError as exc:
            raise HistoryError(f"--model: {exc}") from None
    choices = ", ".join([*MODELS, WORKLOADS_MODEL])
    raise HistoryError(f"unknown model {name!r} (choose from {choices}, or FILE.py:CLASS)")


def _workloads(
    path: Path, hist: History, budgets: dict[str, Any], html_path: Path | None, as_json: bool
) -> int:
    """Judge a history of paxosd's workloads, each with its own checker."""
    kv = kv_result(hist, **budgets)
    verdicts = judge_workloads(hist, kv=kv)
    unjudged = sum(1 for op in hist.operations if workload_of(op) is None)
    overall = Verdict.LINEARIZABLE if kv is None else kv.verdict
    if any(not r.ok for name, r in verdicts.items() if name != "kv"):
        overall = Verdict.NOT_LINEARIZABLE
    if html_path is not None and kv is not None:
        notes = [_workload_line(name, r) for name, r in verdicts.items() if name != "kv"]
        _write_html(html_path, kv, kv_operations(hist), _kv_model(), str(path), notes)
    if as_json:
        out: dict[str, Any] = {
            "verdict": _WORKLOAD_VERDICT[overall],
            "operations": len(hist.operations),
            "unjudged_operations": unjudged,
            "workloads": {
                name: {"ok": r.ok, "checked": r.checked, "problems": r.problems}
                for name, r in verdicts.items()
            },
        }
        if kv is not None:
            out["kv"] = kv.to_json()
        click.echo(json.dumps(out, indent=2))
    else:
        console = Console(highlight=False)
        console.print(
            f"paxosd workloads: {', '.join(verdicts)} ({len(hist.operations)} operations"
            + (f"; {unjudged} outside them, such as chaos probes, not judged" if unjudged else "")
            + ")",
            markup=False,
        )
        if kv is not None:
            unknown = sum(1 for op in kv_operations(hist) if not op.known)
            _report(kv, unknown, None, console=console, title="kv: linearizability (kv model)")
        for name, result in verdicts.items():
            if name == "kv":
                continue
            style = "green" if result.ok else "bold red"
            console.print(Text(_workload_line(name, result), style=style))
            for problem in result.problems[:PROBLEMS_SHOWN]:
                console.print(f"  {problem}", markup=False, soft_wrap=True)
            if len(result.problems) > PROBLEMS_SHOWN:
                console.print(f"  ... and {len(result.problems) - PROBLEMS_SHOWN} more")
        failed = [name for name, r in verdicts.items() if not r.ok]
        if overall is Verdict.LINEARIZABLE:
            console.print(Text("verdict: ok (every workload)", style="green"))
        elif overall is Verdict.UNKNOWN:
            console.print(Text("verdict: unknown (the kv check could not finish)", style="yellow"))
        else:
            console.print(Text(f"verdict: violated ({', '.join(failed)})", style="bold red"))
    return EXIT_CODES[overall]


def _kv_model() -> Model:
    return get_model("kv")


def _workload_line(name: str, result: SafetyResult) -> str:
    if result.ok:
        return f"{name}: ok ({result.checked} operations)"
    count = len(result.problems)
    return f"{name}: {count} problem{'s' * (count != 1)} ({result.checked} operations)"


def _write_html(
    path: Path, result: CheckResult, ops: Any, model: Model, title: str, notes: list[str]
) -> None:
    try:
        path.write_text(render(result, ops, model, title=title, notes=notes), encoding="utf-8")
    except OSError as exc:
        raise HistoryError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fail(message: str, as_json: bool) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"verdict": "error", "error": message}))
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_BAD_INPUT)


def _report(
    result: CheckResult,
    unknown: int,
    failed: int | None,
    *,
    console: Console | None = None,
    title: str = "",
) -> None:
    console = console or Console(highlight=False)
    rank = {Verdict.NOT_LINEARIZABLE: 0, Verdict.UNKNOWN: 1, Verdict.LINEARIZABLE: 2}
    rows = sorted(result.keys, key=lambda k: rank[k.verdict])[:TABLE_ROWS_SHOWN]
    table = Table(title=title or f"linearizability ({result.model} model)")
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
    for note in result.notes:
        hint = " (--all-keys checks every key)" if "not finished" in note else ""
        console.print(note + hint, markup=False)
    counts = {v: sum(1 for k in result.keys if k.verdict is v) for v in Verdict}
    parts = [f"{result.operations} operations"]
    if failed is None:
        parts.append(f"{unknown} with unknown outcome")
    elif unknown or failed:
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
    verdict = str(k.verdict) + (f" ({k.reason})" if k.reason else "")
    return (
        Text(key_label(k.key)),
        str(k.operations),
        Text(verdict, style=_STYLE[k.verdict]),
        f"{k.elapsed_s:.3f} s",
        str(k.states_explored),
    )
