"""`paxosd node`: run one node of a cluster until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path

import click

from paxosd.runtime.config import ConfigError, NodeConfig, load


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="The node's TOML file (see docs/operations.md).",
)  # fmt: skip
@click.option("--node-id", type=int, help="Override node_id from the file.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Override.")
@click.option("--log-level", default="info", show_default=True)
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
    reinitialize: bool,
) -> None:
    """Run one paxosd node (its store must exist: `paxosd init` makes a new cluster's)."""
    logging.basicConfig(
        level=log_level.upper(),
        format=f"%(asctime)s node{node_id or ''} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load(config_path)
        if node_id is not None:
            config = replace(config, node_id=node_id).validate()
        if data_dir is not None:
            config = replace(config, data_dir=data_dir)
    except ConfigError as error:
        raise click.UsageError(f"{config_path}: {error}") from None
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if reinitialize:
        _reinitialize(config)
    try:
        asyncio.run(_run(config))
    except OSError as error:
        raise click.ClickException(f"node {config.node_id} could not start: {error}") from None


def _reinitialize(config: NodeConfig) -> None:
    from paxosd.runtime import datadir
    from paxosd.storage.errors import StorageError

    try:
        kept = datadir.reinitialize(config)
    except (StorageError, OSError) as error:
        raise click.ClickException(f"node {config.node_id} cannot reinitialize: {error}") from None
    where = f"; what was left is in {kept}" if kept is not None else ""
    click.echo(
        f"node {config.node_id}: new store in {config.data_dir}, rebuilding from every other "
        f"member before it votes{where}",
        err=True,
    )


async def _run(config: NodeConfig) -> None:
    from paxosd.runtime.node import Node
    from paxosd.storage.errors import StorageError

    node = Node(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await node.start()
    except StorageError as error:
        raise click.ClickException(
            f"node {config.node_id} refuses its data directory {config.data_dir}: {error}"
        ) from None
    me = config.me
    logging.getLogger("paxosd").info(
        "node %s of %s up: http %s:%s resp %s:%s peers %s:%s data %s",
        config.node_id, config.cluster_id, *me.http, *me.resp, *me.peer, config.data_dir,
    )  # fmt: skip
    await stop.wait()
    await node.stop()
