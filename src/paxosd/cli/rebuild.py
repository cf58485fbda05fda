"""`paxosd rebuild NODE`: ask the running `paxosd up` to rebuild a node whose store is lost or
damaged (it starts it with `--reinitialize`, or stops a damaged one first), so that the
supervisor, not a second process started by hand, runs the rebuilt node.

Exit codes: 0 the supervisor took it, 1 it refused (and says why), 2 no supervisor runs for
that data directory (the message gives the command that rebuilds the node by hand).
"""

from __future__ import annotations

from pathlib import Path

import click

from paxosd.cli.common import DONE, ERROR, NO, Failure
from paxosd.cli.control import ask_rebuild, supervisor_pid
from paxosd.cli.up import DEFAULT_DATA_DIR

answer_timeout_s = 10.0


@click.command()
@click.argument("node", type=click.IntRange(1, 255))
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR, show_default=True, help="The data directory of `paxosd up`.",
)  # fmt: skip
def command(node: int, data_dir: Path) -> None:
    """Rebuild NODE from the other members, through the running `paxosd up`."""
    pid = supervisor_pid(data_dir)
    config = data_dir / f"node{node}.toml"
    if pid is None:
        raise Failure(
            f"no `paxosd up` supervises {data_dir} (no live {data_dir}/supervisor.pid)",
            hint=f"rebuild it by hand: paxosd node --config {config} --reinitialize "
            f">> {data_dir}/node{node}/node.log 2>&1 &",
            exit_code=ERROR,
        )
    answer = ask_rebuild(data_dir, node, answer_timeout_s)
    if answer is None:
        raise Failure(
            f"the supervisor (pid {pid}) did not answer within {answer_timeout_s:g} s",
            hint="is it stopped (Ctrl-Z)? see its terminal",
            exit_code=ERROR,
        )
    if not answer.accepted:
        raise Failure(answer.detail, code="refused", exit_code=NO)
    click.echo(answer.detail)
    logs = "paxosd logs -f" + ("" if data_dir == DEFAULT_DATA_DIR else f" --data-dir {data_dir}")
    click.echo(f"follow it: {logs}")
    raise click.exceptions.Exit(DONE)
