"""`paxosd snapshot save|status|restore`: backups of a running cluster, and new clusters
made from them (docs/operations.md, "Backup and restore").

`save` asks the first node that answers for `GET /v1/snapshot` (a consistent state at one
revision, taken without stopping writes), streams it to FILE.part, checks its checksum,
syncs it and only then renames it to FILE: FILE is a whole backup or is left as it was.
`status` reads a backup whole (checksum, and its state restored and compared with its
header) and says what it holds. `restore` seeds the stores of a new cluster (a new cluster
id) from one. Exit codes: 0 done, 2 refused or failed (the reason on stderr).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from paxosd.cli.common import (
    NOT_RUNNING_HINT,
    Failure,
    emit,
    endpoints_option,
    json_option,
    timeout_option_for,
)
from paxosd.client import BadRequest
from paxosd.client.core import normalize
from paxosd.runtime.config import ConfigError, load
from paxosd.runtime.restore import (
    Checked,
    RestoreRefused,
    check,
    restore_configs,
    restore_local,
)
from paxosd.storage.backup import DamagedBackup, StateReader, chunk_bytes, read_meta
from paxosd.storage.errors import StorageError
from paxosd.storage.fsutil import fsync_dir

__all__ = ["snapshot"]


@click.group()
def snapshot() -> None:
    """Back up a running cluster, inspect a backup, restore one into a new cluster."""


@snapshot.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@endpoints_option
@timeout_option_for(600.0, "Seconds the whole transfer may take.")
@json_option
def save(file: Path, endpoints: str, timeout: float, as_json: bool) -> None:
    """Save a backup of the running cluster to FILE: every key with its history window,
    leases, locks, names, decisions and client sessions, at one revision, checksummed.
    Writes go on meanwhile. FILE is replaced only by a whole, checked backup."""
    try:
        targets = normalize(endpoints)
    except BadRequest as error:
        raise Failure(f"--endpoints: {error}", code="usage") from None
    started = time.monotonic()
    part = file.with_name(file.name + ".part")
    problems = []
    for endpoint in targets:
        try:
            _download(f"{endpoint}/v1/snapshot", part, timeout)
            checked = _checksum(part)
        except (_Refused, OSError, DamagedBackup) as error:
            part.unlink(missing_ok=True)
            problems.append(f"{endpoint.removeprefix('http://')}: {error}")
            continue
        os.replace(part, file)
        fsync_dir(file.resolve().parent)
        seconds = round(time.monotonic() - started, 3)
        meta = checked.meta
        emit(
            as_json,
            {"file": str(file), "seconds": seconds, **_described(checked)},
            f"saved {file}: revision {meta.revision}, {meta.keys} keys, slot {meta.slot}, "
            f"{checked.file_bytes} bytes, from node {meta.node_id} of cluster "
            f"{meta.cluster_id}, in {seconds} s\nsha256 {checked.checksum}",
        )
        return
    raise Failure(
        "no node gave a backup: " + "; ".join(problems),
        code="unavailable",
        hint=NOT_RUNNING_HINT if all("refused" in p for p in problems) else None,
    )


class _Refused(Exception):
    """The node answered with an error instead of a backup."""


def _download(url: str, part: Path, timeout: float) -> None:
    try:
        answer = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise _Refused(_error_text(error)) from None
    except urllib.error.URLError as error:
        raise _Refused(f"connection {_reason(error)}") from None
    with answer, open(part, "wb") as out:
        expected = int(answer.headers.get("Content-Length", "-1"))
        got = 0
        while data := answer.read(chunk_bytes):
            out.write(data)
            got += len(data)
        if expected >= 0 and got != expected:
            raise _Refused(f"the transfer was cut: {got} of {expected} bytes")
        out.flush()
        os.fsync(out.fileno())  # durable before it takes FILE's name


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        return f"HTTP {error.code}: {body.get('message', body)}"
    except (ValueError, OSError, AttributeError):
        return f"HTTP {error.code}"


def _reason(error: urllib.error.URLError) -> str:
    reason = error.reason
    return "refused" if isinstance(reason, ConnectionRefusedError) else str(reason)


def _checksum(path: Path) -> Checked:
    """The backup's checksum, read whole (the state is checked again at restore)."""
    with open(path, "rb") as inp:
        meta, hasher = read_meta(inp)
        digest = StateReader(inp, meta, hasher).finish()
    return Checked(meta, digest.hex(), path.stat().st_size)


def _described(checked: Checked) -> dict[str, Any]:
    return {**checked.meta.to_json(), "file_bytes": checked.file_bytes, "sha256": checked.checksum}


@snapshot.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def status(file: Path, as_json: bool) -> None:
    """Check a backup whole and say what it holds: revision, keys, sizes, checksum, and the
    cluster it came from. A damaged or truncated file is refused with the reason."""
    checked = _checked(file)
    meta = checked.meta
    rows = [
        ("cluster", meta.cluster_id),
        ("taken from", f"node {meta.node_id}, {meta.created_at} (paxosd {meta.paxosd_version})"),
        ("revision", str(meta.revision)),
        # (-1, as etcd's store says it: nothing compacted yet)
        ("compacted below", str(meta.compact_revision) if meta.compact_revision > 0 else "none"),
        ("keys", str(meta.keys)),
        ("slot", str(meta.slot)),
        ("state bytes", str(meta.state_bytes)),
        ("file bytes", str(checked.file_bytes)),
        ("sha256", checked.checksum),
        ("check", "whole: checksum matches, state restores to what its header says"),
    ]
    width = max(len(name) for name, _ in rows)
    emit(as_json, _described(checked), "\n".join(f"{n:<{width}}  {v}" for n, v in rows))


def _checked(file: Path) -> Checked:
    try:
        return check(file)
    except DamagedBackup as error:
        raise Failure(
            f"{file} is not a usable backup: {error}",
            code="damaged",
            hint="nothing was restored from it; use another backup",
        ) from None


@snapshot.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    help="A new, empty directory for a local cluster (`paxosd up`'s layout).",
)  # fmt: skip
@click.option("--nodes", type=click.Choice(["1", "3", "5", "7"]), default="3", show_default=True)
@click.option(
    "--base-port", default=7000, show_default=True, type=click.IntRange(700, 65000),
    help="With --data-dir: the ports its config files name (HTTP of node i: base+i).",
)  # fmt: skip
@click.option(
    "--config", "configs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Instead of --data-dir: each node's config file (repeat); their cluster_id must be new.",
)  # fmt: skip
@json_option
def restore(
    file: Path, data_dir: Path | None, nodes: str, base_port: int, configs: tuple[Path, ...],
    as_json: bool,
) -> None:  # fmt: skip
    """Seed a NEW cluster from the backup FILE: every node starts from its state, with a
    new cluster id, so restored and old nodes can never mix. The target must be empty."""
    if (data_dir is None) == (not configs):
        raise Failure("give either --data-dir or --config (not both)", code="usage")
    started = time.monotonic()
    try:
        if data_dir is not None:
            checked, made = restore_local(file, data_dir, int(nodes), base_port)
            cluster_id, dirs = made[0].cluster_id, [str(c.data_dir) for c in made]
            then = f"start it: paxosd up --data-dir {data_dir} --nodes {nodes}" + (
                f" --base-port {base_port}" if base_port != 7000 else ""
            )
        else:
            loaded = [_load(path) for path in configs]
            checked = restore_configs(file, loaded)
            cluster_id, dirs = loaded[0].cluster_id, [str(c.data_dir) for c in loaded]
            then = "start each node: paxosd node --config FILE"
    except DamagedBackup as error:
        raise Failure(
            f"{file} is not a usable backup: {error}",
            code="damaged",
            hint="nothing was written; use another backup",
        ) from None
    except RestoreRefused as error:
        raise Failure(str(error), code="refused") from None
    except StorageError as error:
        raise Failure(f"restore failed: {error}", code="failed") from None
    seconds = round(time.monotonic() - started, 3)
    meta = checked.meta
    emit(
        as_json,
        {"cluster_id": cluster_id, "data_dirs": dirs, "seconds": seconds, **_described(checked)},
        f"restored revision {meta.revision} ({meta.keys} keys, from cluster {meta.cluster_id}) "
        f"into a new cluster {cluster_id} of {len(dirs)} nodes in {seconds} s\n{then}",
    )


def _load(path: Path) -> Any:
    try:
        return load(path)
    except ConfigError as error:
        raise Failure(str(error), code="usage") from None
