"""`paxosd init`: make the empty stores of a brand-new cluster's nodes."""

from __future__ import annotations

from pathlib import Path

import click

from paxosd.runtime.config import ConfigError, load
from paxosd.runtime.datadir import initialise


@click.command()
@click.option(
    "--config", "config_paths", type=click.Path(dir_okay=False, path_type=Path), required=True,
    multiple=True, help="A node's TOML file; repeat for several nodes.",
)  # fmt: skip
def command(config_paths: tuple[Path, ...]) -> None:
    """Initialise a NEW cluster's nodes: an empty store for each (never for a member that
    lost its store: that one rejoins with `paxosd node --reinitialize`)."""
    for path in config_paths:
        try:
            config = load(path)
        except ConfigError as error:
            raise click.UsageError(f"{path}: {error}") from None
        try:
            where = initialise(config)
        except (FileExistsError, OSError) as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"node {config.node_id}: new empty store in {where}")
