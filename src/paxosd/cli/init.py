"""`paxosd init`: make the empty stores of a brand-new cluster's nodes.

Never for a member of an existing cluster: an empty store votes at once, and a member that
voted before and lost its disk would then contradict its own votes. So `init` refuses a node
that shows any trace of having been a member (runtime/datadir.py, `membership_traces`)
unless the operator says, with a flag whose name says what it claims, that it never voted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from paxosd.runtime import logs
from paxosd.runtime.config import ConfigError, load
from paxosd.runtime.datadir import initialise
from paxosd.storage.errors import StorageError

log = logging.getLogger("paxosd.init")


@click.command()
@click.option(
    "--config", "config_paths", type=click.Path(dir_okay=False, path_type=Path), required=True,
    multiple=True, help="A node's TOML file; repeat for several nodes.",
)  # fmt: skip
@click.option(
    "--new-cluster-i-am-sure", "despite_traces", is_flag=True,
    help="Make the store even where the node shows traces of an earlier cluster (its log, "
    "old stores, a peer that answers). Only for a node that NEVER voted: a member that lost "
    "its disk must rejoin with `paxosd node --reinitialize` instead, or acknowledged writes "
    "can be lost.",
)  # fmt: skip
def command(config_paths: tuple[Path, ...], despite_traces: bool) -> None:
    """Initialise a NEW cluster's nodes: an empty store for each (never for a member that
    lost its store: that one rejoins with `paxosd node --reinitialize`)."""
    configs = []
    for path in config_paths:
        try:
            configs.append(load(path))
        except ConfigError as error:
            raise click.UsageError(f"{path}: {error}") from None
    for config in configs:
        if despite_traces:
            logs.setup("warning", "kv")
            logs.event(
                log, "init_despite_traces", logging.WARNING, node=config.node_id,
                data_dir=config.data_dir,
                detail="--new-cluster-i-am-sure: no check that this node never voted",
            )  # fmt: skip
        try:
            where = initialise(config, despite_traces=despite_traces)
        except (StorageError, OSError) as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"node {config.node_id}: new empty store in {where}")
