"""Named points on the paths that make a store, where a test can make the process die.

Theory of operation. Creating a store takes several steps (write a temporary file, sync it,
rename it into place, sync the directory; for `--reinitialize`, first move the old store
aside). A crash may strike between any two, and the claim that matters - the store appears
complete, or not at all, and a node never votes with an empty store it should not have - must
hold at every one of them. Luck and timing cannot show that; these points can. With
`PAXOSD_CRASH_AT=N` in the environment, the N-th point the process reaches writes its name to
stderr and ends the process at once with `os._exit(137)`, as `kill -9` would: no cleanup, no
buffered writes flushed, nothing after it runs. A test raises N from 1 until the command
finishes without reaching it, so it covers every step there is, including steps added later.

Without the variable (always, outside such tests) a point costs one environment lookup, on
paths that run once per store.
"""

from __future__ import annotations

import os
import sys
from typing import Final

ENV: Final = "PAXOSD_CRASH_AT"
exit_code: Final = 137  # what a shell reports for a process killed by SIGKILL

_reached = 0


def crash_point(name: str) -> None:
    """One step of a store's creation is done; die here if the test asked for this step."""
    global _reached
    target = os.environ.get(ENV)
    if not target:
        return
    _reached += 1
    if _reached == int(target):
        sys.stderr.write(f"crash point {_reached}: {name}\n")
        sys.stderr.flush()
        os._exit(exit_code)
