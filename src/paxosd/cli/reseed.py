"""`paxosd reseed`: the way out when too many stores are lost for a rebuild to finish.

A member that lost its store rebuilds from EVERY other member before it votes (`paxosd node
--reinitialize`), so in a 3-node cluster that lost two disks, neither lost node can ever
finish: each waits for the other. `paxosd reseed` gives a lost node a copy of a surviving
member's state instead, after which the two form a majority and the last lost node rebuilds
as usual. It is the operator's explicit choice to accept a loss: a write acknowledged by a
majority that did not include the survivor (say, nodes 2 and 3 while node 1 lagged) is gone.
Hence the flag's name. docs/operations.md, "Two lost stores", gives the whole procedure.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from paxosd.runtime import logs
from paxosd.runtime.config import ConfigError, load
from paxosd.runtime.datadir import reseed
from paxosd.storage.errors import StorageError

log = logging.getLogger("paxosd.reseed")


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="The config file of the node to re-seed (its store is lost).",
)  # fmt: skip
@click.option(
    "--from", "survivor_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="The config file of the surviving member to copy (stopped; choose the one with the "
    "highest commit).",
)  # fmt: skip
@click.option(
    "--i-accept-data-loss", "accepted", is_flag=True,
    help="Required: writes acknowledged by a majority without the survivor may be lost.",
)  # fmt: skip
def command(config_path: Path, survivor_path: Path, accepted: bool) -> None:
    """Give a node that lost its store a copy of a surviving member's state (two lost stores
    in a 3-node cluster; see docs/operations.md). Both nodes must be stopped."""
    try:
        config, survivor = load(config_path), load(survivor_path)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    if not accepted:
        raise click.UsageError(
            f"re-seeding node {config.node_id} from node {survivor.node_id} loses every write "
            f"that a majority without node {survivor.node_id} acknowledged. If every other way "
            "is gone (rebuild: paxosd node --reinitialize needs all other members; a backup), "
            "say so with --i-accept-data-loss"
        )
    logs.setup("info", "kv")
    try:
        done = reseed(config, survivor)
    except (StorageError, OSError) as error:
        raise click.ClickException(str(error)) from None
    logs.event(
        log, "store_reseeded", logging.WARNING, node=config.node_id, survivor=survivor.node_id,
        promised=done.promised, snapshot_slot=done.snapshot_slot, top_slot=done.top_slot,
        old_store=done.kept if done.kept is not None else "none",
        detail=f"node {config.node_id} now holds node {survivor.node_id}'s state; writes "
        f"acknowledged by a majority without node {survivor.node_id} may be lost. Start both; "
        "rebuild any other lost node with `paxosd node --reinitialize` (or `paxosd rebuild N`)",
    )  # fmt: skip
