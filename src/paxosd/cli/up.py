"""`paxosd up`: a local cluster of separate node processes, the README's first command.

In the foreground it supervises the nodes (`cli/supervisor.py`): a node that dies is
reported and restarted after a pause while the others keep serving.

`paxosd up --add` (in another terminal, while `paxosd up` runs) grows the cluster by one
node: the next id joins through the log as `paxosd node --join` does (cli/join.py), at the
next place of the layout, with its files beside the others (`node<N>.toml`, marked `joined =
true`, and `node<N>/`); the supervisor starts it, and every later `paxosd up` on that data
directory starts it with the founding nodes. Exit codes: 130 after
Ctrl-C, 143 after SIGTERM (asked to stop), 1 when it cannot go on (a node fails at start, or
no node is left running and none will be restarted), 2 for bad options or taken ports.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
from rich.console import Console
from rich.table import Table

from paxosd.cli.common import NOT_RUNNING_HINT, Failure, Seconds
from paxosd.cli.node import log_format_option, log_level_option
from paxosd.cli.supervisor import Backoff, NodeProcess, Supervisor
from paxosd.core.multi.configuration import Configuration
from paxosd.runtime import logs
from paxosd.runtime.config import ConfigError, Member, NodeConfig, load, local_cluster, to_toml
from paxosd.runtime.datadir import (
    has_store,
    has_store_in,
    initialise,
    membership_traces,
    never_voted,
    removed_from,
)
from paxosd.runtime.ports import port_free
from paxosd.storage.errors import StorageError

__all__ = ["NodeOptions", "cluster_id_for", "command", "node_command", "prepare"]

console = Console()
log = logging.getLogger("paxosd.up")
DEFAULT_DATA_DIR = Path("paxosd-data")
DEFAULT_BASE_PORT = 7000  # the CLI's and the client's default endpoints are its ports
leader_wait_s = 15.0
# The id every `paxosd up` cluster had before each new one drew its own: a data directory
# with stores but no config files is taken to be such a cluster (its stores are stamped so).
LEGACY_CLUSTER_ID = "paxosd-local"


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """What `paxosd up` passes on to every `paxosd node` it starts."""

    log_level: str = "info"
    log_format: str = "kv"


def node_command(config_path: Path, options: NodeOptions) -> list[str]:
    """The command line that starts (and restarts) one node."""
    return [
        sys.executable, "-m", "paxosd", "node", "--config", str(config_path),
        "--log-level", options.log_level, "--log-format", options.log_format,
    ]  # fmt: skip


def cluster_id_for(data_dir: Path, count: int, base_port: int) -> str:
    """The id of the cluster in `data_dir`: the one its config files name. A brand-new cluster
    draws one of its own, so that a node of another local cluster (a stale process, an old
    data directory started on the same ports) is refused at the peer handshake instead of
    joining this one's quorums."""
    for path in sorted(data_dir.glob("node*.toml")):
        try:
            return load(path).cluster_id
        except ConfigError:
            continue  # a damaged file: the others still say; the node itself will refuse it
    if any(has_store(config) for config in local_cluster(count, data_dir, base_port)):
        return LEGACY_CLUSTER_ID
    return f"{LEGACY_CLUSTER_ID}-{secrets.token_hex(4)}"


def check_membership(configs: list[NodeConfig], data_dir: Path) -> None:
    """Refuse to change an existing cluster's membership: `--nodes` must name the members the
    data directory already has. Membership changes only through the log; rewriting the config
    files to fewer nodes once made two of five a "majority" that knew nothing of a write three
    others had acknowledged. (Each node checks its store's recorded members too, at start.)"""
    asked = sorted(config.node_id for config in configs)
    found: dict[str, set[int]] = {}
    for path in sorted(data_dir.glob("node*.toml")):
        try:
            config = load(path)
        except ConfigError:
            continue  # a damaged file: the others still say; the node itself will refuse it
        if config.joined:
            continue  # a node that joined later (--add): its file names no founding members
        members = {member.id for member in config.members}
        found.setdefault(",".join(map(str, sorted(members))), set()).add(_node_of(path))
    joined = {config.node_id for config in joined_configs(data_dir)}
    stores = sorted(
        int(folder.name[4:])
        for folder in data_dir.glob("node*")
        if folder.is_dir() and folder.name[4:].isdigit() and has_store_in(folder)
        and int(folder.name[4:]) not in joined
    )  # fmt: skip
    if found:
        if len(found) > 1:
            listing = "; ".join(f"members {m} in node{sorted(n)}.toml" for m, n in found.items())
            raise Failure(
                f"the config files in {_shown(data_dir)} disagree about the members: {listing}",
                hint="membership changes only through the log; restore the files the cluster "
                "was made with",
                exit_code=2,
            )
        existing = [int(n) for n in next(iter(found)).split(",")]
    elif set(stores) - set(asked):
        # A cluster from before config files: its stores say at least how many nodes it had.
        existing = list(range(1, max(stores) + 1))
    else:
        return  # a brand-new cluster, or one whose stores all belong to the nodes asked for
    # A founding node replaced by one that joined under its id (`--add --id N`) has a joined
    # file now: it is one of the founding places all the same.
    asked = sorted(set(asked) | (joined & set(existing)))
    if existing != asked:
        raise Failure(
            f"{_shown(data_dir)} holds a {len(existing)}-node cluster (members "
            f"{','.join(map(str, existing))}), but --nodes {len(asked)} asks for members "
            f"{','.join(map(str, asked))}. Membership changes only through the log: starting "
            f"it with other members could make two majorities that share no node and lose "
            f"acknowledged writes",
            hint=f"start it as it is: paxosd up --nodes {len(existing)} --data-dir "
            f"{_shown(data_dir)}; or use another --data-dir for a new cluster",
            exit_code=2,
        )


def joined_configs(data_dir: Path) -> list[NodeConfig]:
    """The config files of the nodes that joined the cluster later (`paxosd up --add`)."""
    found = []
    for path in sorted(data_dir.glob("node*.toml")):
        try:
            config = load(path)
        except ConfigError:
            continue
        if config.joined and _node_of(path) == config.node_id:
            found.append(config)
    return sorted(found, key=lambda config: config.node_id)


def joined_process(config: NodeConfig, data_dir: Path, options: NodeOptions) -> NodeProcess:
    path = data_dir / f"node{config.node_id}.toml"
    return NodeProcess(
        config.node_id,
        node_command(path, options),
        data_dir / f"node{config.node_id}" / "node.log",
        config.me.http,
        data_dir=config.data_dir,
        joined=True,
    )


def _never_ran(configs: list[NodeConfig]) -> bool:
    """Every existing store is as `initialise` made it (none ever voted)."""
    try:
        return all(never_voted(config) for config in configs if has_store(config))
    except StorageError:
        return False  # locked, damaged, ...: not a cluster that was never started


def _node_of(path: Path) -> int:
    digits = path.stem[4:]
    return int(digits) if digits.isdigit() else 0


def prepare(configs: list[NodeConfig], data_dir: Path, options: NodeOptions) -> list[NodeProcess]:
    """Write each node's config file and make its folder: everything to do before the first
    start. A brand-new cluster (no node has a store yet) is initialised; an existing one never
    is: a node whose store went missing is refused at start, as any member's would be.
    Returns the nodes, not yet started."""
    check_membership(configs, data_dir)
    missing = [config for config in configs if not has_store(config)]
    traces = {c.node_id: membership_traces(c, ask_peers=False) for c in missing}
    # New: no node has a store, or the making of a new cluster was cut short (the stores
    # there are as `initialise` left them, and the others show no sign of ever running).
    new_cluster = bool(missing) and (
        len(missing) == len(configs) or (not any(traces.values()) and _never_ran(configs))
    )
    if len(missing) == len(configs) and any(traces.values()):
        listing = "; ".join(f"node {n}: {', '.join(t)}" for n, t in traces.items() if t)
        raise Failure(
            f"no node in {_shown(data_dir)} has a store, but the directory shows an "
            f"earlier cluster ({listing}). A new cluster would give its members empty "
            f"stores that vote at once, and forget what the old one acknowledged",
            hint="if the old cluster's data does not matter, remove the directory (rm -r "
            f"{_shown(data_dir)}) or use another --data-dir; if it does, restore its stores",
            exit_code=1,
        )
    nodes = []
    for config in configs:
        folder = data_dir / f"node{config.node_id}"
        folder.mkdir(parents=True, exist_ok=True)
        path = data_dir / f"node{config.node_id}.toml"
        path.write_text(to_toml(config))
        if new_cluster and config in missing:
            initialise(config, despite_traces=True)  # traces were looked for above
        nodes.append(
            NodeProcess(
                config.node_id,
                node_command(path, options),
                folder / "node.log",
                config.me.http,
                data_dir=config.data_dir,
            )
        )
    return nodes


@click.command()
@click.option("--nodes", type=click.Choice(["1", "3", "5", "7"]), default="3", show_default=True)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR, show_default=True, help="Data survives a restart.",
)  # fmt: skip
@click.option(
    "--base-port", default=DEFAULT_BASE_PORT, show_default=True,
    type=click.IntRange(700, 65000), help="HTTP of node i: base+i.",
)  # fmt: skip
@click.option("--wait/--no-wait", default=True, help="Stay in the foreground, supervising.")
@click.option(
    "--add", is_flag=True,
    help="Add a node to the cluster that `paxosd up` runs for --data-dir (from another "
    "terminal): the next id (or --id) joins through the log and the supervisor starts it.",
)  # fmt: skip
@click.option(
    "--id", "add_id", type=click.IntRange(1, 255),
    help="With --add: the id to join, e.g. a removed node whose store was lost (replace).",
)  # fmt: skip
@click.option(
    "--restart/--no-restart", default=True, show_default=True,
    help="Restart a node that dies (after --restart-delay, doubling while it keeps failing).",
)  # fmt: skip
@click.option(
    "--restart-delay", default=5.0, show_default=True, type=Seconds(0, 3600),
    help="Seconds before the first restart of a node that died.",
)  # fmt: skip
@log_level_option
@log_format_option
def command(
    nodes: str, data_dir: Path, base_port: int, wait: bool, add: bool, add_id: int | None,
    restart: bool, restart_delay: float, log_level: str, log_format: str,
) -> None:  # fmt: skip
    """Start a local cluster (separate processes on 127.0.0.1). In the foreground a node
    that dies is restarted while the others serve; Ctrl-C stops the cluster cleanly. With
    --add, grow the running one by a node."""
    logs.setup(log_level, log_format)
    data_dir = data_dir.resolve()
    if add_id is not None and not add:
        raise Failure("--id goes with --add", exit_code=2)
    if add:
        sys.exit(_add(data_dir, add_id))
    count = int(nodes)
    founding = local_cluster(count, data_dir, base_port, cluster_id_for(data_dir, count, base_port))
    joined = joined_configs(data_dir)
    replaced = {config.node_id for config in joined}
    founding = [config for config in founding if config.node_id not in replaced]
    configs = sorted(founding + joined, key=lambda config: config.node_id)
    busy = [
        f"{host}:{port}"
        for config in configs
        for host, port in (config.me.http, config.me.resp, config.me.peer)
        if not port_free(port, host)
    ]
    if busy:
        raise Failure(
            f"ports already in use: {', '.join(busy)}",
            hint="is a cluster already running? Stop it, or pick other ports with --base-port",
        )
    # A node that joined and was removed comes back only by joining again, with a new store
    # (a founding node can be added back as it is, `paxosd member add`, so it is started).
    removed = {c.node_id: r for c in joined if (r := removed_from(c)) is not None}
    options = NodeOptions(log_level, log_format)
    processes = prepare(founding, data_dir, options)
    processes += [joined_process(config, data_dir, options) for config in joined]
    processes.sort(key=lambda process: process.node_id)
    if removed:
        _left_out(removed, data_dir)
        configs = [config for config in configs if config.node_id not in removed]
        processes = [process for process in processes if process.node_id not in removed]

    def add_node(node: int) -> NodeProcess | str:
        try:
            config = load(data_dir / f"node{node}.toml")
        except ConfigError as error:
            return str(error)
        if not config.joined or config.node_id != node:
            return f"node{node}.toml is not the file of a node that joined"
        return joined_process(config, data_dir, options)

    supervisor = Supervisor(
        processes,
        restart=restart,
        backoff=Backoff(delay_s=restart_delay),
        log_format=log_format,
        pids_path=data_dir / "cluster.pids",
        # Only a supervisor that stays takes `paxosd rebuild` requests.
        control_dir=data_dir if wait else None,
        add_node=add_node,
    )
    supervisor.start_all()
    try:
        leader = _wait_for_leader(configs, processes)
    except Failure:
        supervisor.stop_all()
        supervisor.close()
        raise
    _banner(configs, processes, leader, data_dir, base_port, wait)
    logs.event(log, "cluster_up", nodes=len(configs), leader=leader, data_dir=data_dir)
    if not wait:
        supervisor.close()
        return
    sys.exit(_supervise(supervisor))


add_wait_s = 120.0  # for the new node to vote (or catch up, without auto_promote)


def _add(data_dir: Path, add_id: int | None) -> int:
    """`paxosd up --add`: the next node (or node `add_id`) joins the cluster `paxosd up` runs
    for `data_dir`, and its supervisor starts it. The exit code."""
    from paxosd.cli.control import ask, supervisor_pid
    from paxosd.cli.join import join, report_progress

    if supervisor_pid(data_dir) is None:
        raise Failure(
            f"no `paxosd up` runs for {_shown(data_dir)}: the new node is started by its "
            "supervisor",
            hint=f"start the cluster first (paxosd up --data-dir {_shown(data_dir)}), then run "
            "paxosd up --add in another terminal",
        )
    configs = []
    for path in sorted(data_dir.glob("node*.toml")):
        try:
            configs.append(load(path))
        except ConfigError as error:
            raise Failure(f"{_shown(path)}: {error}") from None
    if not configs:
        raise Failure(f"{_shown(data_dir)} holds no node*.toml: is it a `paxosd up` directory?")
    taken = {c.node_id for c in configs} | {
        int(folder.name[4:])
        for folder in data_dir.glob("node*")
        if folder.is_dir() and folder.name[4:].isdigit()
    }
    node = max(taken) + 1 if add_id is None else add_id
    if node > 255:
        raise Failure("no node id is left (ids go up to 255)")
    founding = next((c for c in configs if not c.joined), configs[0])
    first = founding.members[0]
    base = first.http[1] - first.id
    host = first.http[0]
    me = Member(node, (host, base + 100 + node), (host, base + node), (host, base - 600 + node))
    previous = next((c for c in configs if c.node_id == node), None)
    if previous is not None:
        me = previous.me  # a replaced node keeps its place in the layout
    busy = [f"{h}:{p}" for h, p in (me.peer, me.http, me.resp) if not port_free(p, h)]
    if busy:
        raise Failure(f"node {node}'s ports are in use: {', '.join(busy)}")
    endpoint = _answering(configs)
    config = join(endpoint, node, data_dir / f"node{node}", me, data_dir / f"node{node}.toml")
    answer = ask(data_dir, "add", node)
    if answer is None or not answer.accepted:
        detail = "no answer" if answer is None else answer.detail
        raise Failure(
            f"node {node} joined, but the supervisor did not start it: {detail}",
            hint=f"start it by hand: paxosd node --config {_shown(data_dir)}/node{node}.toml",
        )
    console.print(f"node {node}: {answer.detail}; it catches up now", highlight=False)
    if not report_progress(config, threading.Event(), timeout_s=add_wait_s):
        console.print(f"node {node} did not vote within {add_wait_s:g} s: see paxosd member list")
        return 1
    console.print(
        f"node {node} is a member; every `paxosd up` on {_shown(data_dir)} starts it with the "
        "others from now on",
        highlight=False,
    )
    return 0


def _left_out(removed: dict[int, Configuration], data_dir: Path) -> None:
    """Say which nodes that joined are not started, having been removed through the log, and
    how to bring each back or forget it."""
    for node, configuration in sorted(removed.items()):
        logs.event(log, "node_not_started", node=node, reason="removed",
                   epoch=configuration.epoch, members=configuration.describe())  # fmt: skip
        folder = _shown(data_dir / f"node{node}")
        console.print(
            f"node {node} is not started: it was removed from the cluster (epoch "
            f"{configuration.epoch}: {configuration.describe()}). To bring it back, while the "
            f"cluster runs: move {folder} aside, then paxosd up --add --id {node}; or forget "
            f"it: rm -r {folder} {folder}.toml",
            soft_wrap=True,
            highlight=False,
        )


def _answering(configs: list[NodeConfig]) -> str:
    """The HTTP address of a node that answers."""
    for config in configs:
        host, port = config.me.http
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/v1/status", timeout=1):
                return f"{host}:{port}"
        except OSError:
            continue
    raise Failure("no node of the cluster answers", hint=NOT_RUNNING_HINT)


def _supervise(supervisor: Supervisor) -> int:
    """Run the supervisor until asked to stop; the exit code."""
    stop = threading.Event()
    asked: list[int] = []

    def asked_to_stop(signum: int, frame: FrameType | None) -> None:
        asked.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, asked_to_stop)
    try:
        outcome = supervisor.run(stop)
    finally:
        cause = signal.Signals(asked[0]).name if asked else "no node left"
        logs.event(log, "cluster_stopping", cause=cause)
        supervisor.stop_all()
        logs.event(log, "cluster_stopped")
        supervisor.close()
        # Their processes are gone; a pid left in the file could be reused by another one.
        if supervisor.pids_path is not None:
            supervisor.pids_path.unlink(missing_ok=True)
    if outcome == "no node":
        return 1
    return 128 + asked[0]


def _banner(
    configs: list[NodeConfig], processes: list[NodeProcess], leader: int | None,
    data_dir: Path, base_port: int, wait: bool,
) -> None:  # fmt: skip
    table = Table(title=f"paxosd: {len(configs)}-node cluster on 127.0.0.1", show_lines=False)
    for column in ("node", "pid", "HTTP (API, dashboard)", "RESP"):
        table.add_column(column, no_wrap=True)
    for config, node in zip(configs, processes, strict=True):
        me = config.me
        table.add_row(
            str(config.node_id) + (" (leader)" if config.node_id == leader else ""),
            str(node.pid or ("- (store lost)" if node.held else "-")),
            f"{me.http[0]}:{me.http[1]}",
            f"{me.resp[0]}:{me.resp[1]}",
        )
    console.print(table)
    first = configs[0].me.http
    console.print(f"dashboard: [bold]http://{first[0]}:{first[1]}/[/bold]")
    logs_command = "paxosd logs -f"
    if data_dir != DEFAULT_DATA_DIR.resolve():
        logs_command += f" --data-dir {_shown(data_dir)}"
    console.print(
        f"logs: {_shown(data_dir)}/node<i>/node.log; follow them all: {logs_command}",
        soft_wrap=True,
        highlight=False,
    )
    console.print("in another terminal:")
    activate = _activate_line()
    if activate:
        console.print(f"  {activate}", soft_wrap=True, highlight=False)
    if base_port != DEFAULT_BASE_PORT:
        endpoints = ",".join(f"{c.me.http[0]}:{c.me.http[1]}" for c in configs)
        console.print(f"  export PAXOSD_ENDPOINTS={endpoints}", soft_wrap=True)
    console.print(
        "  paxosd put x 1  &&  paxosd get x  &&  paxosd status", soft_wrap=True, highlight=False
    )
    console.print(f"  redis-cli -p {configs[0].me.resp[1]} SET y 2", highlight=False)
    if not wait:
        console.print(
            f"running in the background; stop with: kill $(cat {_shown(data_dir)}/cluster.pids)",
            soft_wrap=True,
        )
        return
    console.print(
        "a node that dies is restarted; Ctrl-C stops the cluster "
        f"(data stays in {_shown(data_dir)})",
        soft_wrap=True,
    )


def _activate_line() -> str | None:
    """How to put this `paxosd` on PATH, if it is not there: activate its virtualenv."""
    here = Path(sys.executable).parent
    found = shutil.which("paxosd")
    if found is not None and Path(found).parent.resolve() == here.resolve():
        return None
    if (here / "activate").exists():
        return f". {_shown(here / 'activate')}          # once per terminal: paxosd on PATH"
    return None


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _wait_for_leader(configs: list[NodeConfig], processes: list[NodeProcess]) -> int | None:
    """The leader's id once one is elected (None after `leader_wait_s`). A node that exits
    before it ever answered failed at start: a Failure, with the end of its log. One that
    exits after answering is an ordinary death, left to the supervisor."""
    answered: set[int] = set()
    deadline = time.monotonic() + leader_wait_s
    while time.monotonic() < deadline:
        for config, node in zip(configs, processes, strict=True):
            if node.held is not None or node.elsewhere_since is not None:
                continue  # not started by this supervisor (it said why)
            if not node.running:
                if config.node_id in answered:
                    continue
                tail = node.log_path.read_text()[-2000:] if node.log_path.exists() else ""
                raise Failure(
                    f"node {config.node_id} exited at start; the end of its log "
                    f"({_shown(node.log_path)}):\n{tail}",
                    code="start_failed",
                    exit_code=1,
                )
            host, port = config.me.http
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/v1/status", timeout=1) as r:
                    status = json.loads(r.read())
            except (OSError, ValueError):
                continue
            answered.add(config.node_id)
            if status.get("role") == "leader":
                return int(status["node_id"])
        time.sleep(0.2)
    return None
