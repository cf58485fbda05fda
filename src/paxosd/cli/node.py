"""`paxosd node`: run one node of a cluster until SIGTERM or Ctrl-C.

Exit codes: 0 after a clean shutdown, 1 when the node cannot start (its data directory is
refused, a port is taken), 2 for a bad config file or option; the node itself uses 70 when
a failed fsync stops it. Logs go to stderr, one line per event (`runtime/logs.py`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import click

from paxosd.runtime import logs
from paxosd.runtime.config import ConfigError, NodeConfig, load

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
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="The node's TOML file (see docs/operations.md).",
)  # fmt: skip
@click.option("--node-id", type=int, help="Override node_id from the file.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Override.")
@log_level_option
@log_format_option
@click.option(
    "--reinitialize", is_flag=True,
    help="This node lost (or damaged) its store: move what is left aside and rebuild from "
    "every other member before voting (docs/operations.md).",
)  # fmt: skip
def command(
    config_path: Path,
    node_id: int | None,
    data_dir: Path | None,
    log_level: str,
    log_format: str,
    reinitialize: bool,
) -> None:
    """Run one paxosd node (its store must exist: `paxosd init` makes a new cluster's)."""
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
    try:
        asyncio.run(_run(config))
    except OSError as error:
        logs.event(log, "start_failed", logging.ERROR, reason=str(error))
        sys.exit(1)


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
