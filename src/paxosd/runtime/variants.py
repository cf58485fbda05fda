"""Planted bugs: deliberately broken versions of paxosd, to show that the tests catch them.

Each lives where the bug would live: in the engine core (`EngineConfig.variant`), in the one
driver (`DriverOptions.variant`), in the state machine (`service.namespace.Options.variant`),
in the watch hub (`WatchOptions.variant`), or in how a node opens its data directory at
start. The
simulator and the node process take the same names; a node running one logs loudly that it
is not safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxosd.core.multi.config import CORE_VARIANTS
from paxosd.runtime.driver import DRIVER_VARIANTS
from paxosd.service.kv.machine import KV_VARIANTS
from paxosd.service.sql.machine import SQL_VARIANTS
from paxosd.watch.hub import WATCH_VARIANTS

STARTUP_VARIANTS = {
    "amnesia": "a node whose store is lost starts again as an empty voter",
    "reinit-unmarked": "--reinitialize makes the new store durable before its rebuilding "
    "mark: a crash between leaves an empty voter",
}
VARIANTS: dict[str, str] = {
    **CORE_VARIANTS,
    **DRIVER_VARIANTS,
    **STARTUP_VARIANTS,
    **KV_VARIANTS,
    **SQL_VARIANTS,
    **WATCH_VARIANTS,
}


@dataclass(frozen=True, slots=True)
class Variant:
    """One variant name, split by the layer that plants it."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in VARIANTS:
            raise ValueError(
                f"unknown variant {self.name!r}; choose one of: {', '.join(sorted(VARIANTS))}"
            )

    @property
    def core(self) -> str:
        return self.name if self.name in CORE_VARIANTS else "correct"

    @property
    def driver(self) -> str:
        return self.name if self.name in DRIVER_VARIANTS else "correct"

    @property
    def watch(self) -> str:
        return self.name if self.name in WATCH_VARIANTS else "correct"

    @property
    def service(self) -> str:
        """A planted bug of the state machines (service/kv, service/sql)."""
        return self.name if self.name in KV_VARIANTS or self.name in SQL_VARIANTS else "correct"

    @property
    def amnesia(self) -> bool:
        return self.name == "amnesia"

    @property
    def reinit_unmarked(self) -> bool:
        return self.name == "reinit-unmarked"
