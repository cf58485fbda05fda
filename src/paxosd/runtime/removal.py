"""What a removed node remembers of its removal, for whoever starts it next.

A node learns it was removed through the log in one of two ways: it applies the change that
leaves it out (its store then records that epoch), or, cut off from the members first (they
stop dialing it and refuse its connections once they adopt the change), it is told so by a
peer's Stale or refusal, and never reaches that epoch (core/multi/epochs.py, `removed_by`).
In the second case nothing in its store says it was removed. So the node writes the
configuration that left it out to the file `removed` in its data directory, once; `paxosd up`
reads it (with the store's own epoch) to leave out a node that joined and was removed, rather
than start it again only to refuse its clients.

The file is a hint for operators' tools, never read by the engine: a lost or stale one costs a
node started in vain, nothing more. The store decides when the two disagree: a store in a later
epoch that has the node as a member wins over the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from paxosd.core.multi.configuration import Configuration
from paxosd.runtime.configuration_json import configuration_from_json

FILE_NAME = "removed"


def remember(directory: Path, configuration: Configuration) -> None:
    """Write the configuration that left this node out (a new file renamed into place; an
    error is left to the caller, which logs it: the node runs on either way)."""
    path = directory / FILE_NAME
    temporary = path.with_name(FILE_NAME + ".tmp")
    text = json.dumps(
        {
            "epoch": configuration.epoch,
            "voters": list(configuration.voters),
            "learners": list(configuration.learners),
        }
    )
    with temporary.open("w") as out:
        out.write(text + "\n")
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)


def recalled(directory: Path) -> Configuration | None:
    """The configuration the file names, if the node wrote one (None if absent or unreadable)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return configuration_from_json(json.loads((directory / FILE_NAME).read_text()))
    return None
