"""`paxosd logs [NODE] [-f]`: the logs of the nodes `paxosd up` runs, merged in time order.

Each node logs to DATA_DIR/node<i>/node.log (the supervisor adds its own lines about that
node: exits, restarts, catching up). With several nodes, each line is prefixed with its node
and the lines of all of them are merged by their timestamps; `-f` then follows the files as
they grow (and starts over on a file that was truncated or replaced).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import click

from paxosd.cli.common import Failure

__all__ = ["command", "merged", "timestamp_of"]

follow_poll_s = 0.2
_KV_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s")


def timestamp_of(line: str) -> str | None:
    """The ISO timestamp a log line starts with (kv) or carries as "ts" (JSON)."""
    match = _KV_TIME.match(line)
    if match:
        return match.group(1)
    if line.startswith("{"):
        try:
            value = json.loads(line).get("ts")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None
    return None


def merged(tails: dict[int, list[str]]) -> list[tuple[int, str]]:
    """The lines of several nodes as one list in time order. A line without a timestamp (a
    stray print, an old format) keeps its place after the line before it in its own file."""
    keyed = []
    for node, lines in tails.items():
        last = ""
        for index, line in enumerate(lines):
            last = timestamp_of(line) or last
            keyed.append(((last, node, index), node, line))
    keyed.sort(key=lambda item: item[0])
    return [(node, line) for _, node, line in keyed]


@dataclass
class _Followed:
    node: int
    path: Path
    offset: int = 0
    inode: int | None = None
    partial: str = ""

    def new_lines(self) -> list[str]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if stat.st_ino != self.inode or stat.st_size < self.offset:
            self.inode, self.offset, self.partial = stat.st_ino, 0, ""  # replaced or truncated
        if stat.st_size == self.offset:
            return []
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        self.offset += len(data)
        text = self.partial + data.decode("utf-8", errors="replace")
        *lines, self.partial = text.split("\n")
        return lines


def _tail(path: Path, count: int) -> tuple[list[str], int]:
    """The last `count` lines of a file, and the size read (where following starts)."""
    data = path.read_bytes()
    lines = data.decode("utf-8", errors="replace").splitlines()
    return (lines[-count:] if count > 0 else []), len(data)


def _node_logs(data_dir: Path) -> dict[int, Path]:
    found = {}
    for path in data_dir.glob("node*/node.log"):
        suffix = path.parent.name.removeprefix("node")
        if suffix.isdigit():
            found[int(suffix)] = path
    return dict(sorted(found.items()))


@click.command()
@click.argument("node", type=int, required=False)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    default=Path("paxosd-data"), show_default=True, help="The --data-dir of `paxosd up`.",
)  # fmt: skip
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines as they are written.")
@click.option(
    "-n", "--lines", "count", default=20, show_default=True, type=click.IntRange(0),
    help="How many of the last lines of each log to print first.",
)  # fmt: skip
def command(node: int | None, data_dir: Path, follow: bool, count: int) -> None:
    """Print the last lines of every node's log (or NODE's), merged in time order; with -f,
    follow them. Ctrl-C stops following."""
    found = _node_logs(data_dir)
    if not found:
        raise Failure(
            f"no node logs in {data_dir}/node<i>/node.log",
            hint="`paxosd up` writes them there; pass its --data-dir if it had one",
        )
    if node is not None:
        if node not in found:
            raise Failure(f"no log of node {node} in {data_dir} (nodes: {sorted(found)})")
        found = {node: found[node]}
    prefix = len(found) > 1
    followed = []
    tails = {}
    for number, path in found.items():
        tails[number], size = _tail(path, count)
        followed.append(_Followed(number, path, size, path.stat().st_ino))
    for number, line in merged(tails):
        _print(number, line, prefix)
    if not follow:
        return
    while True:  # until Ctrl-C (exit 130, see cli/main.py)
        fresh = {f.node: f.new_lines() for f in followed}
        for number, line in merged({n: lines for n, lines in fresh.items() if lines}):
            _print(number, line, prefix)
        time.sleep(follow_poll_s)


def _print(node: int, line: str, prefix: bool) -> None:
    click.echo(f"node{node} | {line}" if prefix else line)
