"""`paxosd chaos`: fault testing of a real local cluster (see docs/chaos.md)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from paxosd.chaos.nemesis import KINDS
from paxosd.chaos.workloads import OPTIONAL_WORKLOADS, WORKLOADS
from paxosd.cli.common import Failure
from paxosd.runtime.ports import NoFreePorts
from paxosd.runtime.variants import VARIANTS

console = Console(stderr=True)
# The highest --first-port: the cluster's ports and its proxies' are looked for above it, and
# below the kernel's ephemeral range (32768 on), where outgoing connections take theirs.
first_port_max = 32000


def _choices(
    text: str, known: tuple[str, ...], what: str, by_name: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The names chosen: `known` for "all" (also beside names: "all,bank"); `by_name` ones
    only when named."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    expanded = [y for x in names for y in (known if x == "all" else (x,))]
    chosen = tuple(dict.fromkeys(expanded))
    unknown = [x for x in chosen if x not in known + by_name]
    if unknown or not chosen:
        choices = ", ".join(known + by_name)
        raise click.BadParameter(f"unknown {what} {unknown}; choose from all, {choices}")
    return chosen


@click.command()
@click.option("--nodes", type=click.Choice(["3", "5"]), default="3", show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(5, 7200),
    default=60,
    show_default=True,
    help="Seconds of faults and clients (recovery and checks come on top).",
)
@click.option(
    "--nemesis",
    default="all",
    show_default=True,
    help="Comma-separated fault kinds, or all: " + ", ".join(KINDS) + ".",
)
@click.option(
    "--workload",
    default="all",
    show_default=True,
    help="Comma-separated, or all: "
    + ", ".join(WORKLOADS)
    + "; or by name: "
    + ", ".join(OPTIONAL_WORKLOADS)
    + " (transactions and ranges over many keys).",
)
@click.option("--seed", default=1, show_default=True, help="Names the fault schedule.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the history, results and timeline go [chaos-out/seed-N].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON on stdout.")
@click.option(
    "--variant",
    type=click.Choice(list(VARIANTS)),
    default="correct",
    show_default=True,
    help="Plant a bug in every node, to prove the harness finds it.",
)
@click.option(
    "--first-port",
    default=21000,
    show_default=True,
    type=click.IntRange(1024, first_port_max),
    help=f"Look for free ports from here (1024 to {first_port_max}: the search stops below "
    "the kernel's ephemeral ports, 32768).",
)
@click.option("--epoch", type=click.FloatRange(2, 600), default=15.0, show_default=True,
              help="Clients move to fresh keys every so many seconds.")  # fmt: skip
def command(
    nodes: str,
    duration: float,
    nemesis: str,
    workload: str,
    seed: int,
    out: Path | None,
    as_json: bool,
    variant: str,
    first_port: int,
    epoch: float,
) -> None:
    """Run a real cluster under clients and seeded faults; check what the clients saw.

    Exit status 0: no anomaly; 1: an anomaly (or the cluster did not recover); 2: usage.
    """
    from paxosd.chaos.runner import ChaosSpec, ClusterDidNotStart

    spec = ChaosSpec(
        nodes=int(nodes),
        duration_s=duration,
        nemesis=_choices(nemesis, KINDS, "nemesis kinds"),
        workloads=_choices(workload, WORKLOADS, "workloads", OPTIONAL_WORKLOADS),
        seed=seed,
        variant=variant,
        first_port=first_port,
        epoch_s=epoch,
    )
    asked = (out or Path("chaos-out") / f"seed-{seed}").resolve()
    out = unused_out(asked)
    if out != asked:
        console.print(f"{asked} holds a previous run: this one goes to {out}", highlight=False)
    # SIGTERM (`timeout`, a CI runner) unwinds like Ctrl-C, so every node is stopped by PID.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        results = execute(spec, out, live=not as_json and console.is_terminal)
    except NoFreePorts as error:
        raise Failure(
            str(error),
            hint="pick a lower --first-port (the default leaves room), or stop what holds "
            "those ports",
            exit_code=2,
        ) from None
    except ClusterDidNotStart as error:
        raise Failure(
            f"the cluster did not start: {error}; every node was stopped",
            hint=f"see the nodes' logs in {out / 'logs'}",
            exit_code=1,
        ) from None
    except KeyboardInterrupt:
        console.print("[red]interrupted; every node was stopped[/red]")
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        _print(results, out)
    sys.exit(0 if results["valid"] else 1)


def unused_out(asked: Path) -> Path:
    """`asked` if it is missing or empty, else the first of `NAME.2`, `NAME.3`, ... beside
    it that is. A run never starts on another run's stores (its nodes would come back with
    that run's data and members), and never overwrites what that run left to look at: the
    replay command a run prints names its own directory, so replaying gets the next one."""
    if _unused(asked):
        return asked
    base = re.sub(r"\.\d+$", "", asked.name)
    number = 2
    while not _unused(asked.with_name(f"{base}.{number}")):
        number += 1
    return asked.with_name(f"{base}.{number}")


def _unused(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def execute(spec: Any, out: Path, *, live: bool = False) -> dict[str, Any]:
    """Run, write history.jsonl, results.json and timeline.html into `out`; return results."""
    from paxosd.chaos import report, timeline
    from paxosd.chaos.runner import Progress, run_chaos, write_history
    from paxosd.check.workloads import is_kv

    display = Live(console=console, refresh_per_second=4, transient=True) if live else None

    def show(state: Progress) -> None:
        if display is not None:
            display.update(_progress_view(state))
        elif state.phase != getattr(show, "last", None):
            console.print(f"chaos: {state.phase}", highlight=False)
            show.last = state.phase  # type: ignore[attr-defined]

    if display is not None:
        display.start()
    try:
        data = asyncio.run(run_chaos(spec, out, show))
    finally:
        if display is not None:
            display.stop()
    history_path = out / "history.jsonl"
    write_history(data.events, history_path)
    # The kv part alone, in the form `paxosd check` reads (one model per file).
    write_history([e for e in data.events if is_kv(e.f, e.key)], out / "kv-history.jsonl")
    (out / "status.jsonl").write_text("".join(json.dumps(s) + "\n" for s in data.samples))
    if data.stuck:
        (out / "stuck.jsonl").write_text("".join(json.dumps(s) + "\n" for s in data.stuck))
    console.print("chaos: checking the history", highlight=False)
    results = report.build_results(data, history_path, out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "timeline.html").write_text(timeline.render(data, results))
    return results


def _progress_view(state: Any) -> Table:
    table = Table.grid(padding=(0, 2))
    done = min(1.0, state.elapsed_s / state.duration_s) if state.duration_s else 0.0
    bar = "█" * int(done * 30) + "░" * (30 - int(done * 30))
    counts = state.counts
    table.add_row(Text(f"paxosd chaos: {state.phase}", style="bold"))
    table.add_row(f"{bar} {state.elapsed_s:6.1f} / {state.duration_s:g} s")
    table.add_row(
        f"operations: {counts.get('ok', 0)} ok, {counts.get('fail', 0)} fail, "
        f"{counts.get('info', 0)} info   faults: {state.faults}"
        + (f"   now: [bold red]{state.current_fault}[/bold red]" if state.current_fault else "")
    )
    return table


def _print(results: dict[str, Any], out: Path) -> None:
    ops = results["operations"]
    faults = results["faults"]
    console.print(
        f"[bold]{results['nodes']} nodes, {results['duration_s']:g} s, seed {results['seed']}, "
        f"variant {results['variant']}[/bold]"
    )
    console.print(
        f"operations: {ops['total']} ({ops['ok']} ok, {ops['fail']} fail, {ops['info']} info); "
        f"faults: {faults['total']} {faults['by_kind']}",
        highlight=False,
    )
    console.print(
        f"availability (writes): {results['availability']}; recovered after the last heal in "
        f"{results['recovered_after_heal_s']} s; full restart: leader after "
        f"{results['full_restart']['recovery_s']} s",
        highlight=False,
    )
    table = Table("fault", "count", "recovery s (median / max)", "failover s (median / max)")
    for kind, row in results["recovery"]["by_kind"].items():
        rec, fail = row["recovery_s"], row["failover_s"]
        table.add_row(
            kind,
            str(results["faults"]["by_kind"].get(kind, 0)),
            f"{rec['median']} / {rec['max']}" if rec else "-",
            f"{fail['median']} / {fail['max']}" if fail else "-",
        )
    console.print(table)
    members = results.get("membership") or {}
    if members.get("made") or members.get("refused"):
        console.print(
            f"membership changes: {len(members['made'])} made, {len(members['refused'])} "
            "refused by the cluster",
            highlight=False,
        )
        for line in members["made"]:
            console.print("  " + line, markup=False, highlight=False)
    for name, verdict in results["verdicts"].items():
        mark = "[green]ok[/green]" if verdict["ok"] else "[bold red]VIOLATED[/bold red]"
        console.print(f"{name}: {mark} ({verdict['checked']} checked)")
        for problem in verdict["problems"][:3]:
            console.print("  " + problem, markup=False, highlight=False)
    console.print(f"history, results.json, timeline.html: {out}", highlight=False)
    if not results["valid"]:
        console.print(f"replay: {results['command']}", markup=False, highlight=False)
