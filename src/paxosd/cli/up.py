"""`paxosd up`: a local cluster of separate node processes, the README's first command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from paxosd.runtime.config import NodeConfig, local_cluster, to_toml
from paxosd.runtime.datadir import has_store, initialise
from paxosd.runtime.ports import port_free

console = Console()


@click.command()
@click.option("--nodes", type=click.Choice(["1", "3", "5", "7"]), default="3", show_default=True)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    default=Path("paxosd-data"), show_default=True, help="Data survives a restart.",
)  # fmt: skip
@click.option("--base-port", default=7000, show_default=True, help="HTTP of node i: base+i.")
@click.option("--wait/--no-wait", default=True, help="Stay in the foreground until Ctrl-C.")
def command(nodes: str, data_dir: Path, base_port: int, wait: bool) -> None:
    """Start a local cluster (separate processes on 127.0.0.1); Ctrl-C stops it cleanly."""
    count = int(nodes)
    data_dir = data_dir.resolve()
    configs = local_cluster(count, data_dir, base_port)
    busy = [
        f"{host}:{port}"
        for config in configs
        for host, port in (config.me.http, config.me.resp, config.me.peer)
        if not port_free(port, host)
    ]
    if busy:
        raise click.ClickException(
            f"ports already in use: {', '.join(busy)}. Is a cluster already running? "
            "Stop it, or pick other ports with --base-port."
        )
    _initialise_if_new(configs)
    processes: list[subprocess.Popen[bytes]] = []
    for config in configs:
        folder = data_dir / f"node{config.node_id}"
        folder.mkdir(parents=True, exist_ok=True)
        path = data_dir / f"node{config.node_id}.toml"
        path.write_text(to_toml(config))
        log = open(folder / "node.log", "ab")  # noqa: SIM115 - owned by the child process
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "paxosd", "node", "--config", str(path)],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        )
    (data_dir / "cluster.pids").write_text("\n".join(str(p.pid) for p in processes) + "\n")
    leader = _wait_for_leader(configs, processes)
    table = Table(title=f"paxosd: {count}-node cluster on 127.0.0.1", show_lines=False)
    for column in ("node", "pid", "HTTP (API, dashboard)", "RESP"):
        table.add_column(column, no_wrap=True)
    for config, process in zip(configs, processes, strict=True):
        me = config.me
        table.add_row(
            str(config.node_id) + (" (leader)" if config.node_id == leader else ""),
            str(process.pid),
            f"{me.http[0]}:{me.http[1]}",
            f"{me.resp[0]}:{me.resp[1]}",
        )
    console.print(table)
    console.print(f"logs: {data_dir}/node<i>/node.log")
    first = configs[0].me.http
    console.print(f"dashboard: [bold]http://{first[0]}:{first[1]}/[/bold]")
    if base_port != 7000:  # the CLI's default endpoints are the default ports
        endpoints = ",".join(f"{c.me.http[0]}:{c.me.http[1]}" for c in configs)
        console.print(f"for the CLI:  export PAXOSD_ENDPOINTS={endpoints}")
    console.print(
        "try:  paxosd put x 1  &&  paxosd get x     |  "
        f"redis-cli -p {configs[0].me.resp[1]} SET y 2"
    )
    if not wait:
        console.print(f"running in the background; stop with: kill $(cat {data_dir}/cluster.pids)")
        return
    console.print("Ctrl-C stops the cluster (data stays in " + str(data_dir) + ")")
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        dead = [c.node_id for c, p in zip(configs, processes, strict=True) if p.poll() is not None]
        console.print(f"[red]node(s) {dead} exited; see their logs. Stopping the others.[/red]")
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        _stop(processes)


def _initialise_if_new(configs: list[NodeConfig]) -> None:
    """A brand-new local cluster (no node has a store yet) is initialised; an existing one
    never is: a node whose store went missing is refused at start, as any member's would be."""
    if any(has_store(config) for config in configs):
        return
    for config in configs:
        initialise(config)


def _wait_for_leader(
    configs: list[NodeConfig], processes: list[subprocess.Popen[bytes]]
) -> int | None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for config, process in zip(configs, processes, strict=True):
            if process.poll() is not None:
                _stop(processes)
                log = config.data_dir / "node.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise click.ClickException(f"node {config.node_id} exited at start:\n{tail}")
            host, port = config.me.http
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/v1/status", timeout=1) as r:
                    status = json.loads(r.read())
                if status.get("role") == "leader":
                    return int(status["node_id"])
            except OSError:
                continue
        time.sleep(0.2)
    return None


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
