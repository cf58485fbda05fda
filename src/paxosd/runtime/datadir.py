"""A node's data directory: made once for a new cluster, never silently made again.

Theory of operation. A node's store holds its promises and acceptances; a node that starts on
an empty store where it used to have one could contradict what it voted and let an
acknowledged write be lost. So there are three distinct ways to get a store, and only the
first two create one:

- `initialise`: a brand-new cluster (`paxosd init`, and `paxosd up` for a new local cluster):
  an empty store, which may vote at once because it never voted before;
- `reinitialize`: a member lost its store (`paxosd node --reinitialize`): whatever is left is
  moved aside (never deleted), and a new store is marked `Rebuilding` - the node rebuilds its
  state from every other member before it votes again (core/multi/replica.py, "Amnesia");
- `open_existing`: every ordinary start; a missing store is refused with `MissingStore`, and
  the message says which of the two above applies.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from paxosd.core.multi.records import Rebuilding
from paxosd.runtime.config import NodeConfig
from paxosd.storage import LogStore, MissingStore, make_identity, open_store
from paxosd.storage.filelog import TMP_SUFFIX
from paxosd.storage.fsutil import LOG_NAME, SQLITE_NAME, fsync_dir, lock_dir

# Every file a store of either backend may leave in its directory.
STORE_FILES = (
    LOG_NAME,
    LOG_NAME + TMP_SUFFIX,
    SQLITE_NAME,
    f"{SQLITE_NAME}-wal",
    f"{SQLITE_NAME}-shm",
)


def _backend(config: NodeConfig) -> str:
    return "sqlite" if config.storage == "sqlite" else "file"


def has_store(config: NodeConfig) -> bool:
    return any((config.data_dir / name).exists() for name in (LOG_NAME, SQLITE_NAME))


def open_existing(config: NodeConfig, *, create: bool = False) -> LogStore:
    """The node's store; `MissingStore` (with what to do) if there is none. `create=True` is
    only for the planted `amnesia` variant, which shows what this refusal prevents."""
    try:
        return open_store(
            config.data_dir,
            _backend(config),  # type: ignore[arg-type]
            identity=make_identity(config.cluster_id, config.node_id),
            create=create,
            fsync=config.fsync,
        )
    except MissingStore:
        raise MissingStore(missing_store_advice(config)) from None


def missing_store_advice(config: NodeConfig) -> str:
    return (
        f"node {config.node_id} has no store in {config.data_dir}. If this is a new cluster, "
        f"initialise every node first: `paxosd init --config FILE`. If this node was a member "
        f"and lost its disk, it must not vote with an empty store: start it with "
        f"`paxosd node --config FILE --reinitialize`, which rebuilds its state from every "
        f"other member before it votes (docs/operations.md, 'A lost or damaged store')."
    )


def initialise(config: NodeConfig) -> Path:
    """An empty store for a node of a brand-new cluster; `FileExistsError` if it has one."""
    if has_store(config):
        raise FileExistsError(
            f"node {config.node_id} already has a store in {config.data_dir}; `paxosd init` is "
            "only for a brand-new cluster (to rebuild a member, use `paxosd node "
            "--reinitialize`)"
        )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_existing(config, create=True)
    store.close()
    return config.data_dir


def reinitialize(config: NodeConfig) -> Path | None:
    """A new store, marked `Rebuilding`, for a member that lost (or damaged) its own. What is
    left of the old one is moved into a `lost-<time>` folder beside it, never deleted; the
    folder is returned (None if there was nothing to move)."""
    directory = config.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    kept: Path | None = None
    lock = lock_dir(directory)  # DataDirLocked if the node is running: never move its files
    try:
        leftovers = [directory / name for name in STORE_FILES if (directory / name).exists()]
        if leftovers:
            kept = directory / time.strftime("lost-%Y%m%dT%H%M%S", time.gmtime())
            kept.mkdir()
            for path in leftovers:
                path.rename(kept / path.name)
            if config.fsync:
                fsync_dir(directory)
    finally:
        os.close(lock)
    store = open_existing(config, create=True)
    store.write([Rebuilding(True)])
    store.close()  # syncs: the mark is durable before the node can ever vote
    return kept
