"""`paxosd node`: run one node of a cluster until SIGTERM or Ctrl-C.

`paxosd node --join ENDPOINT --id N --data-dir DIR` makes a new node join a running cluster
first (cli/join.py: it is added as a learner with its identity and addresses, through the
log), writes DIR/node.toml, and runs it; it logs `join_progress` until the node votes. Start
it again later with `paxosd node --config DIR/node.toml`.

Exit codes: 0 after a clean shutdown, 1 when the node cannot start (its data directory is
refused, a port is taken; with --join, the cluster does not answer or refuses to add it), 2
for a bad config file or option (with --join: an id that is a member already, a data
directory that holds a store); the node itself uses 70 when
a failed fsync stops it. Logs go to stderr, one line per event (`runtime/logs.py`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

import click

from paxosd.runtime import logs
from paxosd.runtime.config import ConfigError, Member, NodeConfig, load, parse_address

log = logging.getLogger("paxosd.node")

# The collector's default (a young collection every 700 allocations) costs a busy node a few
# percent of its CPU: each request allocates a few dozen short-lived objects, almost none of
# them in reference cycles (bench/engine_core.py --gc measures the share). A young collection
# every 50,000 allocations still reclaims cyclic garbage (exceptions and their tracebacks,
# mostly) within milliseconds under load. What recovery loaded is frozen out of the collector,
# so that a large state machine is not walked again by every full collection.
gc_thresholds = (50_000, 20, 10)

log_level_option = click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="The least severe log lines to write.",
)
log_format_option = click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="kv",
    show_default=True,
    help="kv: `key=value` lines; json: one JSON object per line.",
)


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="The node's TOML file (see docs/operations.md); not with --join.",
)  # fmt: skip
@click.option("--node-id", "--id", "node_id", type=int, help="Override node_id from the file.")
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Override the file's; with --join, the new node's (empty) data directory.",
)  # fmt: skip
@click.option(
    "--join", "join_endpoint", metavar="HOST:PORT",
    help="Join the running cluster of the member whose HTTP is at HOST:PORT as a new node "
    "(with --id and --data-dir; docs/operations.md, 'Grow with a new node').",
)  # fmt: skip
@click.option("--peer", "peer_address", metavar="HOST:PORT", help="With --join: peer address.")
@click.option("--http", "http_address", metavar="HOST:PORT", help="With --join: HTTP address.")
@click.option("--resp", "resp_address", metavar="HOST:PORT", help="With --join: RESP address.")
@log_level_option
@log_format_option
@click.option(
    "--reinitialize", is_flag=True,
    help="This node lost (or damaged) its store: move what is left aside and rebuild from "
    "every other member before voting (docs/operations.md).",
)  # fmt: skip
def command(
    config_path: Path | None,
    node_id: int | None,
    data_dir: Path | None,
    join_endpoint: str | None,
    peer_address: str | None,
    http_address: str | None,
    resp_address: str | None,
    log_level: str,
    log_format: str,
    reinitialize: bool,
) -> None:
    """Run one paxosd node (its store must exist: `paxosd init` makes a new cluster's, and
    --join a new node's)."""
    joining = join_endpoint is not None
    if joining:
        if config_path is not None or reinitialize:
            raise click.UsageError(
                "--join makes its own config file: no --config or --reinitialize"
            )
        if node_id is None or data_dir is None:
            raise click.UsageError("--join needs --id N and --data-dir DIR (a new, empty one)")
        logs.setup(log_level, log_format, node_id=node_id)
        config = _join(join_endpoint or "", node_id, data_dir, peer_address, http_address,
                       resp_address)  # fmt: skip
    else:
        if config_path is None:
            raise click.UsageError("give --config FILE (or --join ENDPOINT for a new node)")
        if any(a is not None for a in (peer_address, http_address, resp_address)):
            raise click.UsageError("--peer, --http and --resp go with --join")
        try:
            config = load(config_path)
            if node_id is not None:
                config = replace(config, node_id=node_id).validate()
            if data_dir is not None:
                config = replace(config, data_dir=data_dir)
        except ConfigError as error:
            raise click.UsageError(f"{config_path}: {error}") from None
        logs.setup(log_level, log_format, node_id=config.node_id)
    if reinitialize:
        _reinitialize(config)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    gc.set_threshold(*gc_thresholds)
    stop = threading.Event()
    if joining:
        from paxosd.cli.join import report_progress

        threading.Thread(
            target=report_progress, args=(config, stop), name="join-progress", daemon=True
        ).start()
    try:
        asyncio.run(_run(config))
    except OSError as error:
        logs.event(log, "start_failed", logging.ERROR, reason=str(error))
        sys.exit(1)
    finally:
        stop.set()


def _join(
    endpoint: str,
    node_id: int,
    data_dir: Path,
    peer: str | None,
    http: str | None,
    resp: str | None,
) -> NodeConfig:
    """Join the cluster at `endpoint` (cli/join.py); the new node's config."""
    from paxosd.cli.join import join

    given = [peer, http, resp]
    me = None
    if any(a is not None for a in given):
        if not all(a is not None for a in given):
            raise click.UsageError("give all of --peer, --http and --resp, or none")
        try:
            me = Member(
                node_id,
                parse_address(peer, "--peer"),
                parse_address(http, "--http"),
                parse_address(resp, "--resp"),
            )
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
    data_dir = data_dir.resolve()
    return join(endpoint, node_id, data_dir, me, data_dir / "node.toml")


def _reinitialize(config: NodeConfig) -> None:
    from paxosd.runtime import datadir
    from paxosd.storage.errors import StorageError

    try:
        kept = datadir.reinitialize(config)
    except (StorageError, OSError) as error:
        logs.event(log, "reinitialize_refused", logging.ERROR, reason=str(error))
        sys.exit(1)
    if kept is None:
        detail = "no old store was left; rebuilding from every other member before voting"
    else:
        detail = (
            f"the old store is kept in {kept}; rebuilding from every other member before "
            f"voting. Once this node logs rebuild_finished, the old store is not needed: "
            f"remove it with: rm -r {kept}"
        )
    logs.event(
        log, "store_reinitialized", logging.WARNING, data_dir=config.data_dir,
        old_store=kept if kept is not None else "none", detail=detail,
    )  # fmt: skip


async def _run(config: NodeConfig) -> None:
    from paxosd.core.multi.configuration import ConfigurationMismatch
    from paxosd.runtime.node import Node
    from paxosd.storage.errors import StorageError

    node = Node(config)
    stop = asyncio.Event()
    cause: list[str] = []
    loop = asyncio.get_running_loop()

    def asked_to_stop(signum: signal.Signals) -> None:
        if not cause:
            logs.event(log, "shutdown_requested", signal=signum.name)
        cause.append(signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, asked_to_stop, signum)
    try:
        await node.start()
        gc.freeze()  # what recovery loaded (most of the heap, often) leaves full collections
    except (StorageError, ConfigurationMismatch) as error:
        logs.event(
            log, "start_refused", logging.ERROR, data_dir=config.data_dir,
            reason=f"node {config.node_id} refuses its data directory: {error}",
        )  # fmt: skip
        sys.exit(1)
    me = config.me
    logs.event(
        log, "node_started", cluster=config.cluster_id, pid=os.getpid(),
        http=_address(me.http), resp=_address(me.resp), peer=_address(me.peer),
        data_dir=config.data_dir,
    )  # fmt: skip
    await stop.wait()
    await node.stop(cause[0] if cause else "unknown")
    logs.event(log, "node_stopped", cause=cause[0] if cause else "unknown")


def _address(pair: tuple[str, int]) -> str:
    return f"{pair[0]}:{pair[1]}"
