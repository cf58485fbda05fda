"""Every port search of this test process, and of the programs it starts, stays in this
pytest-xdist worker's own slice (see tests/ports.py)."""

from __future__ import annotations

import os

from paxosd.runtime.ports import RANGE_VARIABLE
from tests.ports import FIRST, LAST

os.environ[RANGE_VARIABLE] = f"{FIRST}-{LAST}"
