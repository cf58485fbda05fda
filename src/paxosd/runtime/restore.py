"""Seeding a NEW cluster from a backup (`paxosd snapshot restore`).

Theory of operation. A backup (storage/backup.py) holds the state machine after some slot S.
Every node of the new cluster gets a store that holds exactly two records, from the moment it
appears: its membership (`Configured`) and a `Snapshot` record naming a snapshot file of slot
S, which is the backup's state byte for byte. To the engine that is a node that took a
snapshot at S and then lost nothing: it starts from the state, and the new cluster's log goes
on at S+1, so revisions, versions and leases go on where the backup left them. No node has
promised or accepted anything yet, so the stores agree with each other trivially.

Why a new cluster id. A restored cluster and the old one (or what is left of it) must never
mix: a restored node that joined the old cluster's quorums would vote with a state that lacks
everything after the backup. The cluster id is in every store's identity and in every peer
handshake, so a new id makes each side refuse the other (a config file naming the old id is
refused, as is a store of the other cluster).

Before any store is made, the backup is checked whole: its checksum, and its state restored
by the same code a node restores a peer's snapshot with, against the figures its header
names (slot, revision, keys). Nothing is written for a damaged or truncated file. A target
that holds anything at all is refused: restoring never replaces or mixes with existing data.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from paxosd.core.multi.records import Configured, Record
from paxosd.runtime import incarnation
from paxosd.runtime.config import NodeConfig, local_cluster, to_toml
from paxosd.runtime.datadir import configuration_of
from paxosd.service import StateMachine
from paxosd.service.errors import CorruptSnapshot
from paxosd.service.namespace import Options
from paxosd.storage import make_identity, open_store
from paxosd.storage.backup import (
    BackupMeta,
    DamagedBackup,
    StateReader,
    engine_slot,
    read_meta,
)
from paxosd.storage.errors import StorageError
from paxosd.storage.snapshots import SNAPSHOTS_DIR, DirSnapshots
from paxosd.storage.sql_files import SqlFiles

RESTORED_PREFIX = "paxosd-restored-"


class RestoreRefused(StorageError):
    """A restore that would replace, or mix with, existing data; or an id reused."""


@dataclass(frozen=True, slots=True)
class Checked:
    """A backup checked whole: its meta, the checksum at its end, its file's size."""

    meta: BackupMeta
    checksum: str
    file_bytes: int


def check(path: Path) -> Checked:
    """Read the whole backup, restore its state (then drop it) and compare it with the
    header: `DamagedBackup` with the reason for anything that is not a whole, true backup."""
    try:
        inp = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise DamagedBackup(f"no backup file at {path}") from None
    except IsADirectoryError:
        raise DamagedBackup(f"{path} is a directory, not a backup file") from None
    # The SQL database is restored into a file, as a node's is, so a large one is checked
    # without holding it in memory.
    with inp, tempfile.TemporaryDirectory(prefix="paxosd-check-") as sql_directory:
        meta, hasher = read_meta(inp)
        state = StateReader(inp, meta, hasher)
        try:
            machine = StateMachine.restore(
                cast(BinaryIO, state), options=Options(sql_files=SqlFiles(sql_directory))
            )
        except CorruptSnapshot as error:
            raise DamagedBackup(f"its state is damaged: {error}") from None
        digest = state.finish()
        machine.sql.close()
    found = (engine_slot(machine.applied_slot), machine.revision, machine.kv.store.live_keys)
    named = (meta.slot, meta.revision, meta.keys)
    if found != named:
        raise DamagedBackup(
            f"its state holds slot, revision, keys {found}, but its header says {named}"
        )
    if meta.slot < 0:
        raise DamagedBackup("it holds no applied slot: there is nothing to restore")
    return Checked(meta, digest.hex(), path.stat().st_size)


def new_cluster_id() -> str:
    return RESTORED_PREFIX + secrets.token_hex(4)


def restore_local(
    path: Path, data_dir: Path, nodes: int, base_port: int, *, fsync: bool = True
) -> tuple[Checked, list[NodeConfig]]:
    """A new local cluster of `nodes` in `data_dir` (as `paxosd up` lays one out: config
    files node<i>.toml and folders node<i>), seeded from the backup at `path`, with a new
    cluster id. `paxosd up --data-dir DIR --nodes N` then starts it."""
    _refuse_non_empty(data_dir)
    checked = check(path)
    configs = local_cluster(nodes, data_dir.resolve(), base_port, new_cluster_id())
    seed(path, checked.meta, configs, fsync=fsync)
    for config in configs:
        (data_dir / f"node{config.node_id}.toml").write_text(to_toml(config))
    return checked, configs


def restore_configs(path: Path, configs: Sequence[NodeConfig], *, fsync: bool = True) -> Checked:
    """Seed the stores of the nodes `configs` name (each its own data directory, empty)
    from the backup at `path`. Their cluster id must not be the backup's: a restored cluster
    is a new one (see the module docstring)."""
    ids = {config.cluster_id for config in configs}
    if len(ids) != 1:
        raise RestoreRefused(f"the config files name several clusters: {sorted(ids)}")
    members = {configuration_of(config) for config in configs}
    if len(members) != 1:
        raise RestoreRefused("the config files name different members")
    for config in configs:
        _refuse_non_empty(config.data_dir)
    checked = check(path)
    if checked.meta.cluster_id in ids:
        raise RestoreRefused(
            f"the config files name cluster {checked.meta.cluster_id!r}, the cluster the "
            "backup was taken from: a restored cluster must have a new cluster_id, so that "
            "its nodes and the old cluster's can never join each other's quorums"
        )
    seed(path, checked.meta, configs, fsync=fsync)
    return checked


def seed(path: Path, meta: BackupMeta, configs: Sequence[NodeConfig], *, fsync: bool) -> None:
    """Each node's store: its members and the backup's state as its snapshot."""
    for config in configs:
        folder = config.data_dir
        folder.mkdir(parents=True, exist_ok=True)
        incarnation.record(folder, fsync=fsync)  # a new store: a new identity
        files = DirSnapshots(folder / SNAPSHOTS_DIR, fsync=fsync)

        def write(out: BinaryIO) -> None:
            with open(path, "rb") as inp:
                again, hasher = read_meta(inp)
                state = StateReader(inp, again, hasher)
                for chunk in state.chunks():
                    out.write(chunk)

        snapshot = files.save(meta.slot, write)
        initial: list[Record] = [Configured(configuration_of(config)), snapshot]
        store = open_store(
            folder,
            "sqlite" if config.storage == "sqlite" else "file",
            identity=make_identity(config.cluster_id, config.node_id),
            create=True,
            fsync=fsync,
            initial=initial,
        )
        store.close()


def _refuse_non_empty(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise RestoreRefused(
            f"{directory} is not empty: a restore makes a new cluster and never writes over "
            "or beside existing data (choose a new directory, or remove this one if its data "
            "does not matter)"
        )
