"""`paxosd lab`: replay the book, check its algorithms, see why consensus is hard."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paxosd.check.consensus import PROPERTIES
from paxosd.lab import algorithms
from paxosd.lab.check import (
    EXPLORE_FAULTS,
    CheckReport,
    CheckRequest,
    run_check,
)
from paxosd.sim.explorer import memory_mb_max_default, states_max_default
from paxosd.sim.swarm import FAULTS
from paxosd.sim.trace import render

console = Console()
STATUS_STYLE = {"holds": "green", "violated": "bold red", "unknown": "yellow"}
TRACE_LINES_MAX = 120
SCENARIO_NAMES = [
    "leader-crash", "split-brain", "split-vote", "tiebreak", "dueling-proposers", "paxos-holds",
    "replication-conflict", "replication-consensus",
]  # fmt: skip


def _fail(message: str) -> None:
    raise click.UsageError(message)


@click.group()
def lab() -> None:
    """The book's algorithms in a deterministic simulator, checked by machine.

    \b
    Play it yourself:          paxosd lab play paxos
    Start with the stories:    paxosd lab tour
    Check an algorithm:        paxosd lab check majority --explore
    Replay a scenario:         paxosd lab scenario split-vote --html split-vote.html
    The FLP chapter:           paxosd lab flp majority
    """


# -- check -----------------------------------------------------------------------------------


@lab.command()
@click.argument("algorithm", type=click.Choice(sorted(algorithms.ALGORITHMS)))
@click.option("--nodes", default=3, show_default=True, help="Cluster size.")
@click.option("--values", default=2, show_default=True, help="Distinct values proposed.")
@click.option("--crashes", default=1, show_default=True, help="Crash budget.")
@click.option(
    "--faults",
    default="crash",
    show_default=True,
    help="Comma-separated: " + ", ".join(sorted(set(FAULTS) | EXPLORE_FAULTS)) + '; "" for none.',
)
@click.option("--variant", default="correct", show_default=True, help="A planted bug to check.")
@click.option("--explore", is_flag=True, help="Exhaustive breadth-first exploration.")
@click.option("--runs", default=200, show_default=True, help="Random runs (swarm mode).")
@click.option("--seed", default=1, show_default=True, help="First seed (swarm mode).")
@click.option(
    "--ballots", default=1, show_default=True, help="Ballots per proposer (explore mode)."
)
@click.option(
    "--timing",
    type=click.Choice(["async", "bounded"]),
    default=None,
    help="Explorer timing model (default: bounded for the lessons, async for paxos).",
)
@click.option(
    "--max-states", default=states_max_default, show_default=True, help="Explorer state limit."
)
@click.option(
    "--max-memory-mb",
    default=memory_mb_max_default,
    show_default=True,
    help="Explorer memory limit: stop (and report) once the process uses this much.",
)
@click.option(
    "--keep-going",
    is_flag=True,
    help="Explore on after the first Agreement or Validity violation, to judge Termination.",
)
@click.option(
    "--change",
    metavar="VOTERS",
    help="multipaxos: an operator asks the leader, node 1, for these voters (e.g. 1,2); "
    "the search starts once node 1 leads, the change and the values just sent to it.",
)
@click.option("--timeouts", type=int, help="Explorer: timer firings per run (default: any).")
@click.option("--max-depth", type=int, help="Explorer: explore runs of up to this many steps.")
@click.option("--trace-out", type=click.Path(dir_okay=False), help="Write counterexamples here.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    help="Draw the first counterexample as a page (.html) or a picture (.svg).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def check(
    algorithm: str,
    nodes: int,
    values: int,
    crashes: int,
    faults: str,
    variant: str,
    explore: bool,
    runs: int,
    seed: int,
    ballots: int,
    timing: str | None,
    max_states: int,
    max_memory_mb: int,
    keep_going: bool,
    change: str | None,
    timeouts: int | None,
    max_depth: int | None,
    trace_out: str | None,
    html_path: str | None,
    as_json: bool,
) -> None:
    """Judge ALGORITHM on Agreement, Validity, Termination and Fault tolerance.

    \b
    Exit status: 0 fault tolerant (as far as checked), 1 a property it needs is violated,
    2 usage error, 3 no violation found but the search stopped early (limit or Ctrl-C), or a
    property it needs was not judged (--change judges Agreement and Validity only).
    Ctrl-C during --explore stops the search and reports what was explored."""
    fault_set = frozenset(f.strip() for f in faults.split(",") if f.strip())
    voters = _voters(change)
    request = CheckRequest(
        algorithms.get(algorithm), nodes=nodes, values=values, crashes=crashes,
        faults=fault_set, variant=variant, explore=explore, runs=runs, seed=seed,
        rounds=ballots, timing=timing, states_max=max_states, memory_mb_max=max_memory_mb,
        keep_going=keep_going, change=voters, timeouts=timeouts, depth_max=max_depth,
    )  # fmt: skip
    try:
        request.validate()
    except ValueError as error:
        _fail(str(error))
    if html_path and Path(html_path).suffix.lower() not in (".html", ".htm", ".svg"):
        _fail(
            f"--html takes a path ending in .html (a page) or .svg (a picture), not {html_path!r}"
        )
    report = _run_with_progress(request, as_json)
    if trace_out:
        document = report.trace_document()
        Path(trace_out).write_text(json.dumps(document, indent=1, default=str))
    if html_path:
        _draw_counterexample(report, html_path)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        _print_report(report)
    sys.exit(report.exit_code)


def _voters(change: str | None) -> tuple[int, ...] | None:
    """The node ids of --change ("1,2")."""
    if change is None:
        return None
    try:
        return tuple(int(v) for v in change.split(","))
    except ValueError:
        raise click.UsageError(
            f"--change takes node ids separated by commas (e.g. 1,2), not {change!r}"
        ) from None


progress_interval_s = 10.0  # without a terminal, a progress line this often (on stderr)


def _run_with_progress(request: CheckRequest, quiet: bool) -> CheckReport:
    if quiet:
        return run_check(request)
    if not console.is_terminal:
        # The first report gets a line at once (a log shows that the search is under way,
        # and from when Ctrl-C reports what it explored), then one every interval.
        last: float | None = None

        def note(count: int) -> None:
            nonlocal last
            if last is None or time.monotonic() - last >= progress_interval_s:
                last = time.monotonic()
                what = "states" if request.explore else "runs"
                click.echo(f"... {count:,} {what} so far", err=True)

        return run_check(request, note)
    if request.explore:
        with Progress(
            TextColumn("exploring"), TextColumn("{task.completed:,} states"),
            TimeElapsedColumn(), console=console, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("explore", total=None)
            return run_check(request, lambda n: bar.update(task, completed=n))
    with Progress(
        TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("runs", total=request.runs)
        return run_check(request, lambda n: bar.update(task, completed=n))


def _print_report(report: CheckReport) -> None:
    config = report.config
    how = (
        f"explored {report.states_explored:,} states"
        if config["mode"] == "explore"
        else f"{report.runs} seeded runs from seed {config['seed']}"
    )
    faults = ", ".join(config["faults"]) or "none"
    console.print(
        f"[bold]{report.algorithm}[/bold]: {config['nodes']} nodes, values "
        f"{', '.join(config['values'])}, faults {faults}, crash budget {config['crashes']}, "
        f"variant {config['variant']} - {how}"
    )
    if config["mode"] == "explore":
        console.print(
            f"timing: {config['timing']}, network: {config['network']}, "
            f"ballots per proposer: {config['ballots_per_proposer']}"
        )
        console.print(report.summary, highlight=False, soft_wrap=True)
    if report.start:
        asked = [line for line in report.start if " proposes " in line]
        console.print(
            f"The search starts after {len(report.start)} steps (--json lists them): node 1's "
            f"election, every message delivered, then:",
            highlight=False,
        )
        for line in asked:
            console.print(f"      {line}", highlight=False, markup=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("Property")
    table.add_column("Verdict")
    table.add_column("Evidence", overflow="fold")
    for prop in PROPERTIES:
        verdict = report.verdicts[prop]
        style = STATUS_STYLE[verdict.status]
        table.add_row(prop.capitalize(), f"[{style}]{verdict.status}[/{style}]", verdict.detail)
    tolerance = report.fault_tolerance
    style = STATUS_STYLE[tolerance.status]
    table.add_row("Fault tolerance", f"[{style}]{tolerance.status}[/{style}]", tolerance.detail)
    console.print(table)
    for prop, example in report.counterexamples.items():
        console.print(f"\n[bold]Counterexample for {prop}[/bold] ({example['steps']} steps)")
        if "seed" in example:
            console.print(f"seed {example['seed']}; replay with:\n  {example['replay']}")
        lines = _trace_lines(example["trace"])
        for number, line in enumerate(lines[:TRACE_LINES_MAX], 1):
            console.print(f"{number:>4}. {line}", highlight=False, markup=False)
        if len(lines) > TRACE_LINES_MAX:
            console.print(f"      ... {len(lines) - TRACE_LINES_MAX} more (use --trace-out)")


def _trace_lines(trace: list[dict[str, Any]]) -> list[str]:
    lines = []
    for event in trace:
        if "text" in event:  # an explored step
            lines.append(event["text"])
        elif event["ev"] != "send":  # a simulated run: receiving says it all
            lines.append(f"t={event['t']:>8.3f}  {render(event)}")
    return lines


# -- scenario --------------------------------------------------------------------------------


@lab.command()
@click.argument("name", type=click.Choice(["list", *SCENARIO_NAMES]))
@click.option("--seed", default=1, show_default=True)
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False), help="Write a diagram.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write a page.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--randomized", is_flag=True, help="dueling-proposers: randomized backoff.")
@click.option("--sweep", type=int, default=0, help="dueling-proposers: N randomized seeds.")
@click.option(
    "--trace-out",
    type=click.Path(dir_okay=False),
    help="Write the run as a lab trace file (lab play --open FILE steps through it).",
)
def scenario(
    name: str,
    seed: int,
    svg_path: str | None,
    html_path: str | None,
    as_json: bool,
    randomized: bool,
    sweep: int,
    trace_out: str | None,
) -> None:
    """Replay one of the book's stories (`list` shows them)."""
    from paxosd.lab import scenarios

    if name == "list":
        for key, (_, summary) in scenarios.SCENARIOS.items():
            click.echo(f"{key:<20} {summary}")
        return
    if sweep:
        if name != "dueling-proposers":
            _fail("--sweep is for dueling-proposers")
        _sweep(sweep, seed, as_json)
        return
    if name == "dueling-proposers":
        result = scenarios.dueling_proposers(seed, randomized=randomized)
    else:
        result = scenarios.SCENARIOS[name][0](seed)
    _write_diagrams(result, svg_path, html_path)
    if trace_out:
        Path(trace_out).write_text(json.dumps(scenario_document(result), indent=1, default=str))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    console.print(f"[bold]{result.title}[/bold]  ({result.algorithm}, {result.nodes} nodes)\n")
    console.print(result.story + "\n")
    _print_run_verdicts(result)
    for key, value in result.facts.items():
        console.print(f"  {key:<12} {_fact(value)}", highlight=False)
    if result.witness is not None:
        w = result.witness
        console.print(
            f"  witness      node {w.witness}: in the quorum {list(w.accepting_quorum)} that "
            f"chose {w.value} and in the quorum {list(w.promising_quorum)} that promised "
            f"ballot {w.later_ballot}"
        )
    if not (svg_path or html_path):
        console.print("\n(see it as a diagram: add --html FILE or --svg FILE)")


def _print_run_verdicts(result: Any) -> None:
    """One run's verdicts ("in this run"), and fault tolerance by the rule for one run."""
    for prop, verdict in result.verdicts.items():
        style = STATUS_STYLE[verdict.status]
        console.print(
            f"  {prop:<12} [{style}]{verdict.status}[/{style}] in this run  {verdict.detail}"
        )
    tolerance = result.fault_tolerance
    style = STATUS_STYLE[tolerance.status]
    console.print(f"  {'fault tol.':<12} [{style}]{tolerance.status}[/{style}]  {tolerance.detail}")


def _fact(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def scenario_document(result: Any) -> dict[str, Any]:
    """A scenario run as the lab's one trace file."""
    from paxosd.lab import tracefile

    config = {"algorithm": result.algorithm, "nodes": result.nodes, "seed": result.seed,
              "scenario": result.name}  # fmt: skip
    return tracefile.document(
        "simulated", config, result.trace, title=result.title, story=result.story
    )


def _draw_counterexample(report: CheckReport, path: str) -> None:
    """The first counterexample as a space-time diagram (the whole run: with --change, the
    story's start too), or a note that there is none."""
    from paxosd.lab import diagram

    if not report.event_traces:
        console.print(f"(no counterexample to draw: {path} not written)")
        return
    prop, trace = next(iter(report.event_traces.items()))
    verdict = report.verdicts[prop]
    config = report.config
    title = (
        f"{report.algorithm} ({config['variant']}): {verdict.property} {verdict.status} in "
        f"{report.counterexamples[prop]['steps']} steps"
    )
    nodes = list(range(1, config["nodes"] + 1))
    extra = {"description": verdict.detail} if Path(path).suffix.lower() != ".svg" else {}
    diagram.write(path, trace, nodes=nodes, title=title, **extra)
    console.print(f"diagram: {path}")


def _write_diagrams(result: Any, svg_path: str | None, html_path: str | None) -> None:
    from paxosd.lab import diagram

    highlight = None
    if result.witness is not None:
        w = result.witness
        highlight = diagram.Highlight(
            chosen_at=w.chosen_at,
            witness=w.witness,
            accepting_quorum=w.accepting_quorum,
            promising_quorum=w.promising_quorum,
            caption=f"node {w.witness} accepted {w.value} and later promised ballot "
            f"{w.later_ballot}, reporting {w.value}: the new proposer must keep it",
        )
    nodes = list(range(1, result.nodes + 1))
    if svg_path:
        diagram.write(svg_path, result.trace, nodes=nodes, title=result.title, highlight=highlight)
    if html_path:
        diagram.write(
            html_path, result.trace, nodes=nodes, title=result.title, highlight=highlight,
            description=result.story,
        )  # fmt: skip


def _sweep(runs: int, seed: int, as_json: bool) -> None:
    from paxosd.lab.scenarios import dueling_sweep

    if as_json or not console.is_terminal:
        result = dueling_sweep(runs, seed)
    else:
        with Progress(
            TextColumn("sweeping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("sweep", total=runs)
            result = dueling_sweep(runs, seed, lambda n: bar.update(task, completed=n))
    data = result.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console.print(
        f"Randomized backoff, {runs} seeds from {seed}: {result.decided} of {runs} decided "
        "once faults stopped."
    )
    console.print(f"Rounds to decide: median {data['rounds_median']}, maximum {data['rounds_max']}")
    table = Table("rounds", "runs", "")
    most = max(data["rounds_histogram"].values())
    for rounds, count in data["rounds_histogram"].items():
        table.add_row(rounds, str(count), "█" * max(1, round(40 * count / most)))
    console.print(table)


# -- flp ---------------------------------------------------------------------------------------


@lab.command()
@click.argument(
    "algorithm", type=click.Choice(sorted(a for a in algorithms.ALGORITHMS if a != "multipaxos"))
)
@click.option("--nodes", default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def flp(algorithm: str, nodes: int, as_json: bool) -> None:
    """Valence, a critical configuration, and what one crash does there (the FLP chapter)."""
    from paxosd.lab.flp import analyse

    if nodes > 4:
        _fail("the FLP analysis explores every state: use --nodes 4 or fewer")
    if as_json or not console.is_terminal:
        report = analyse(algorithms.get(algorithm), nodes)
    else:
        with Progress(
            TextColumn("exploring"), TextColumn("{task.completed:,} states"),
            TimeElapsedColumn(), console=console, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("explore", total=None)
            report = analyse(
                algorithms.get(algorithm), nodes, lambda n: bar.update(task, completed=n)
            )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
        return
    for line in report.explanation:
        console.print(line + "\n")
    example = report.fatal or report.example
    if example is not None:
        console.print("[bold]The run to the critical configuration[/bold]")
        for number, step in enumerate(example.path, 1):
            last = "  <- the deciding message" if number == len(example.path) else ""
            console.print(f"{number:>4}. {step.render()}{last}", markup=False, highlight=False)
    if report.livelock is not None:
        console.print("[bold]A run that never decides[/bold]")
        for number, step in enumerate(report.livelock, 1):
            console.print(f"{number:>4}. {step.render()}", markup=False, highlight=False)


# -- tour ------------------------------------------------------------------------------------


@lab.command()
@click.option("--out", type=click.Path(file_okay=False), default="lab-tour", show_default=True)
def tour(out: str) -> None:
    """Walk through the book: each scenario in order, with a diagram page for each."""
    from paxosd.lab import scenarios

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for number, (key, (run, _)) in enumerate(scenarios.SCENARIOS.items(), 1):
        result = run(1)
        page = folder / f"{number}-{key}.html"
        _write_diagrams(result, None, str(page))
        console.rule(f"[bold]{number}. {result.title}")
        console.print(result.story)
        _print_run_verdicts(result)
        console.print(f"  diagram: {page}\n")
    console.print(
        "Next: [bold]paxosd lab check paxos --explore[/bold] proves what the stories show, "
        "and [bold]paxosd lab flp majority[/bold] explains why."
    )


# -- play --------------------------------------------------------------------------------------

play_port_default = 8470


@lab.command()
@click.argument("algorithm", type=click.Choice(sorted(algorithms.ALGORITHMS)), default="paxos")
@click.option("--nodes", default=3, show_default=True, help="Cluster size (at most 7).")
@click.option("--values", default=2, show_default=True, help="Distinct values proposed.")
@click.option("--variant", default="correct", show_default=True, help="A planted bug to play.")
@click.option("--crashes", default=1, show_default=True, help="The coach's crash budget.")
@click.option("--faults", default="crash", show_default=True, help="The coach's faults.")
@click.option("--ballots", default=2, show_default=True, help="Ballots per proposer.")
@click.option(
    "--timing", type=click.Choice(["async", "bounded"]), default=None,
    help="The coach's timing model (as lab check).",
)  # fmt: skip
@click.option(
    "--change",
    metavar="VOTERS",
    help="multipaxos: node 1 may also be asked for these voters (e.g. 1,2), as lab check.",
)
@click.option("--tour", "tour_name", help="Open a guided tour instead (see the page's list).")
@click.option("--scenario", "scenario_name", type=click.Choice(SCENARIO_NAMES),
              help="Open a recorded scenario run at step 0.")  # fmt: skip
@click.option("--open", "open_path", type=click.Path(exists=True, dir_okay=False),
              help="Open a lab trace file (lab check/scenario --trace-out).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=play_port_default, show_default=True, help="0: any free port.")
@click.option(
    "--coach-seconds",
    type=click.FloatRange(0.1, 60.0),
    default=3.0,
    show_default=True,
    help="How long the coach searches before it answers (the page can ask it to think longer).",
)
def play(
    algorithm: str,
    nodes: int,
    values: int,
    variant: str,
    crashes: int,
    faults: str,
    ballots: int,
    timing: str | None,
    change: str | None,
    tour_name: str | None,
    scenario_name: str | None,
    open_path: str | None,
    host: str,
    port: int,
    coach_seconds: float,
) -> None:
    """You are the network: drive ALGORITHM's real cores from a web page.

    Deliver, drop or duplicate any message, crash and restart nodes, partition, fire timers,
    step back and fork, and ask the coach (the explorer) what can still happen. The coach
    judges the configuration `paxosd lab check ALGORITHM --explore` would, with the same
    options, and answers within --coach-seconds (saying how deep it checked if the whole
    future did not fit). Serves until Ctrl-C; every asset comes from paxosd itself.
    """
    import asyncio

    from paxosd.lab.play.server import Lab, new_session, open_trace, serve
    from paxosd.lab.play.session import PlayConfig

    lab = Lab(coach_seconds=coach_seconds)
    try:
        if open_path:
            try:
                data = json.loads(Path(open_path).read_text())
            except (OSError, json.JSONDecodeError) as error:
                _fail(f"cannot read {open_path}: {error}")
            run: Any = open_trace(data)
        elif scenario_name:
            from paxosd.lab import scenarios

            result = scenarios.SCENARIOS[scenario_name][0](1)
            run = open_trace(scenario_document(result))
        else:
            fault_set = frozenset(f.strip() for f in faults.split(",") if f.strip())
            config = PlayConfig(algorithm, nodes=nodes, values=values, variant=variant,
                                crashes=crashes, faults=fault_set, ballots=ballots,
                                timing=timing, change=_voters(change))  # fmt: skip
            run = new_session(config, tour_name)
    except ValueError as error:
        _fail(str(error))
    ident = lab.add(run)

    async def main() -> None:
        try:
            runner = await serve(lab, host, port)
        except OSError as error:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({error.strerror}); try --port 0"
            ) from None
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"paxosd lab play: http://{shown}:{bound}/?session={ident}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo("  listening beyond this machine: anyone who can reach it can use the lab")
        click.echo("  Ctrl-C stops it")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        click.echo("stopped")
