"""The state machines one paxosd log carries: THE registration point for a new one.

Theory of operation: every namespace listed here has its ops decoded by `commands.decode` and
applied by the router (router.py) to its own state machine. The order of the list is part of
the snapshot format (each namespace's state follows the one before it): append, never
reorder. See namespace.py for what a namespace provides.

Tags (the first number of an op's log encoding) are owned by ranges, so namespaces never
collide:

    0          the router: a client Request        13    the router: AdvanceTime
    1-4, 14-40 kv: the key-value store             5-12  coordination: locks, names, decisions
    64-127     free for the SQL database           128-  free
"""

from __future__ import annotations

from typing import Final

from . import coordination
from .kv import codec as kv_codec
from .kv import legacy as kv_legacy
from .kv.machine import KvStore
from .namespace import Namespace

KV: Final = Namespace("kv", (*kv_legacy.CODECS, *kv_codec.CODECS), KvStore)
COORDINATION: Final = Namespace("coordination", coordination.CODECS, coordination.Coordination)

NAMESPACES: Final[tuple[Namespace, ...]] = (KV, COORDINATION)
