"""`paxosd sim`: the Multi-Paxos engine in the deterministic simulator, under faults."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paxosd.runtime.variants import VARIANTS
from paxosd.sim.cluster import FAULTS, WORKLOADS, SimResult
from paxosd.sim.engine_swarm import spec_for, swarm
from paxosd.sim.nemesis import NEEDS_PEERS
from paxosd.sim.reach import MECHANISMS

ALL_WORKLOADS = (*WORKLOADS, "sql", "sql-append")

console = Console()


@click.command()
@click.option("--seeds", default=100, show_default=True, help="How many seeded runs.")
@click.option("--seed", default=1, show_default=True, help="The first seed.")
@click.option("--nodes", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option("--clients", default=6, show_default=True, help="Concurrent clients per run.")
@click.option(
    "--watchers",
    type=click.IntRange(0, 64),
    default=4,
    show_default=True,
    help="Clients that watch keys on the nodes (sim/watchers.py), per run.",
)
@click.option(
    "--faults",
    default="all",
    show_default=True,
    help="Comma-separated, or all: " + ", ".join(FAULTS) + '; "" for none.',
)
@click.option(
    "--variant",
    type=click.Choice(list(VARIANTS)),
    default="correct",
    show_default=True,
    help="A planted bug the checkers must catch.",
)
@click.option(
    "--workloads",
    default="",
    help="Comma-separated workloads of the clients (kv, locks, names, decisions, mvcc, sql, "
    "sql-append); "
    "default: all but sql (which a planted bug of the SQL database adds).",
)
@click.option(
    "--fixed",
    is_flag=True,
    help="Every fault in every run, and the engine's own limits. By default each run draws "
    "which faults strike and snapshot, catch-up and compaction limits small enough that it "
    "snapshots (swarm testing).",
)
@click.option("--jobs", default=os.cpu_count() or 1, show_default=True, help="Processes.")
@click.option("--history-out", type=click.Path(file_okay=False), help="Save failing histories.")
@click.option("--stop", is_flag=True, help="Stop at the first violation.")
@click.option("--json", "as_json", is_flag=True)
def command(
    seeds: int,
    seed: int,
    nodes: int,
    clients: int,
    watchers: int,
    faults: str,
    variant: str,
    workloads: str,
    fixed: bool,
    jobs: int,
    history_out: str | None,
    stop: bool,
    as_json: bool,
) -> None:
    """Run a swarm of seeded simulations; check every history."""
    fault_set = (
        frozenset(FAULTS)
        if faults == "all"
        else frozenset(f.strip() for f in faults.split(",") if f.strip())
    )
    unknown = sorted(fault_set - set(FAULTS))
    if unknown:
        raise click.UsageError(
            f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}"
        )
    chosen = tuple(w.strip() for w in workloads.split(",") if w.strip()) or None
    unknown_workloads = sorted(set(chosen or ()) - set(ALL_WORKLOADS))
    if unknown_workloads:
        raise click.UsageError(
            f"unknown workload(s) {', '.join(unknown_workloads)}; choose from "
            + ", ".join(ALL_WORKLOADS)
        )
    spec = spec_for(
        nodes, fault_set, variant, clients, draws=not fixed, watchers=watchers, workloads=chosen
    )
    seed_range = range(seed, seed + seeds)
    if as_json or not console.is_terminal:
        report, failing = swarm(spec, seed_range, jobs, stop_at_violation=stop)
    else:
        with Progress(
            TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[bad]} violating"), TimeElapsedColumn(),
            console=console, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("runs", total=seeds, bad=0)
            bad = 0

            def advance(result: SimResult) -> None:
                nonlocal bad
                bad += bool(result.violations)
                bar.update(task, advance=1, bad=bad)

            report, failing = swarm(spec, seed_range, jobs, advance, stop_at_violation=stop)
    if history_out:
        folder = Path(history_out)
        folder.mkdir(parents=True, exist_ok=True)
        for result in failing:
            lines = "".join(event.to_json() + "\n" for event in result.history)
            (folder / f"seed-{result.seed}.jsonl").write_text(lines)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print(report.to_json(), spec.nodes, variant)
        if nodes == 1 and fault_set & NEEDS_PEERS:
            skipped = ", ".join(sorted(fault_set & NEEDS_PEERS))
            console.print(f"(not applicable to one node, so not injected: {skipped})")
    sys.exit(1 if report.violations else 0)


def _print(data: dict, nodes: int, variant: str) -> None:
    console.print(f"[bold]{data['runs']} runs[/bold], {nodes} nodes, variant {variant}")
    table = Table("operations", "count")
    for key, count in data["operations"].items():
        table.add_row(key, f"{count:,}")
    console.print(table)
    faults = Table("faults injected", "count")
    for key, count in data["faults"].items():
        faults.add_row(key, f"{count:,}")
    console.print(faults)
    reached = Table("mechanisms exercised", "count", "runs", "what")
    for key, counts in data["mechanisms"].items():
        what = MECHANISMS.get(key, "")
        reached.add_row(key, f"{counts['total']:,}", f"{counts['runs']:,}", what, style=None)
    console.print(reached)
    if not data["violations"]:
        console.print("[green]no violations[/green]")
        return
    console.print(f"[bold red]{len(data['violations'])} run(s) violated a property[/bold red]")
    for violation in data["violations"][:10]:
        console.print(f"seed {violation['seed']}:", highlight=False)
        for problem in violation["problems"][:3]:
            console.print("  " + problem, markup=False, highlight=False)
        console.print(f"  replay: {violation['replay']}", markup=False, highlight=False)
