"""A data directory's incarnation id: which store this is, among all a node id ever had.

Theory of operation. A node id names a place in the cluster; a store is one life of it. When a
store is made (`paxosd init`, `paxosd up`, `paxosd node --join`, `--reinitialize`, `paxosd
reseed`, `paxosd snapshot restore`) a random 63-bit id, never 0, is written beside it
(`incarnation`, durably: a new file renamed into place, the directory synced). A member that
joins through the log is recorded with it (core/multi/configuration.py, `Joined`), and the
node announces it in every peer handshake (peer protocol 6): a peer refuses a recorded id
that comes with another incarnation, so a node whose store was wiped and that is started
again under its old id can never vote with the state it lost.

The id is written before the store is made: a crash in between leaves an id and no store,
and whatever makes the store next writes a fresh one. A data directory made before ids
existed gets one on its first start. That is safe because only members that joined through
the log carry a record, and no such member predates ids: a founding member has no record, so
its peers accept it whatever its id (a founding member that lost its store is refused at its
own start, and rebuilt from every peer before it votes: runtime/datadir.py). A joined member
whose file is lost gets a new id too, and its peers then refuse it: the safe side.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from paxosd.core.multi.configuration import incarnation_max
from paxosd.storage.errors import StorageError
from paxosd.storage.fsutil import fsync_dir

INCARNATION_FILE: Final = "incarnation"
# A file this long cannot be ours: read no more of it.
_file_chars_max: Final = 64


class BadIncarnation(StorageError):
    """The incarnation file holds something that is not an id: the node refuses to start."""


def fresh() -> int:
    """A new random id in [1, 2**63)."""
    while True:
        value = secrets.randbits(63)
        if 1 <= value <= incarnation_max:
            return value


def show(value: int | None) -> str | None:
    """As status and logs show it: hex, as the core's refusals do."""
    return None if value is None else format(value, "x")


def parse(text: str) -> int:
    """An id from its hex text; ValueError (saying what is wrong) for anything else."""
    text = text.strip()
    if not text or len(text) > 16 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"an incarnation is 1 to 16 hex digits, got {text[:_file_chars_max]!r}")
    value = int(text, 16)
    if not 1 <= value <= incarnation_max:
        raise ValueError(f"an incarnation is in [1, 2**63), got {text!r}")
    return value


def record(directory: Path, value: int | None = None, *, fsync: bool = True) -> int:
    """Write `value` (a fresh id if None) as `directory`'s incarnation, durably; the id."""
    value = fresh() if value is None else value
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / INCARNATION_FILE
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="ascii") as out:
        out.write(format(value, "x") + "\n")
        out.flush()
        if fsync:
            os.fsync(out.fileno())
    os.replace(temporary, path)
    if fsync:
        fsync_dir(directory)
    return value


def read(directory: Path) -> int | None:
    """`directory`'s incarnation, None if it has none; `BadIncarnation` if the file is not
    one (damaged, or written by something else)."""
    path = directory / INCARNATION_FILE
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            text = file.read(_file_chars_max + 1)
    except FileNotFoundError:
        return None
    try:
        return parse(text)
    except ValueError as error:
        raise BadIncarnation(
            f"{path} is damaged ({error}). It names which store this is; a node must not guess "
            f"it. If this node joined through the log, remove it from the members and join it "
            f"again (paxosd member remove N; paxosd node --join); a founding member may delete "
            f"the file, and gets a new id at its next start"
        ) from None


def settle(directory: Path, *, fsync: bool = True) -> tuple[int, bool]:
    """`directory`'s incarnation, and whether it was made now (a data directory from before
    ids: see the module docstring for why that is safe)."""
    value = read(directory)
    if value is not None:
        return value, False
    return record(directory, fsync=fsync), True
