"""The state machines one paxosd log carries: THE registration point for a new one.

Theory of operation: every namespace listed here has its ops decoded by `commands.decode` and
applied by the router (router.py) to its own state machine. The order of the list is part of
the snapshot format (each namespace's section follows the one before it): append, never
reorder. See namespace.py for what a namespace provides.

Tags (the first number of an op's log encoding) are owned by ranges, so namespaces never
collide:

    0          the router: a client Request        13    the router: AdvanceTime
    1-4, 14-40 kv: the key-value store             5-12  coordination: locks, names, decisions
    64-127     sql: the SQL database               128-  free

Answers cached by the exactly-once table have tags of their own (results.py): 1-10 are
results.py's, 11-21 the key-value store's; 64-127 the SQL database's (sql/codec.py).
"""

from __future__ import annotations

from typing import Any, Final

from . import coordination
from .kv import codec as kv_codec
from .kv import legacy as kv_legacy
from .kv import machine as kv_machine
from .namespace import Namespace, Options
from .snapshot import SnapshotReader
from .sql import codec as sql_codec
from .sql import machine as sql_machine


def _kv_variant(options: Options) -> str:
    return options.variant if options.variant in kv_machine.KV_VARIANTS else "correct"


def _new_kv(options: Options) -> kv_machine.KvMachine:
    return kv_machine.KvMachine(options.kv_limits, _kv_variant(options))


def _restore_kv(
    objects: Any, reader: SnapshotReader, options: Options, now_ms: int
) -> kv_machine.KvMachine:
    return kv_machine.restore(objects, reader, options.kv_limits, _kv_variant(options), now_ms)


def _new_coordination(options: Options) -> coordination.Coordination:
    return coordination.Coordination()


def _restore_coordination(
    objects: Any, reader: SnapshotReader, options: Options, now_ms: int
) -> coordination.Coordination:
    return coordination.restore(objects, reader, now_ms)


KV: Final = Namespace("kv", (*kv_legacy.CODECS, *kv_codec.CODECS), _new_kv, _restore_kv)
COORDINATION: Final = Namespace(
    "coordination", coordination.CODECS, _new_coordination, _restore_coordination
)


def _new_sql(options: Options) -> sql_machine.SqlMachine:
    return sql_machine.SqlMachine(options.variant, options.sql_files)


def _restore_sql(
    objects: Any, reader: SnapshotReader, options: Options, now_ms: int
) -> sql_machine.SqlMachine:
    return sql_machine.restore(objects, reader, options.variant, options.sql_files)


SQL: Final = Namespace("sql", sql_codec.CODECS, _new_sql, _restore_sql)

NAMESPACES: Final[tuple[Namespace, ...]] = (KV, COORDINATION, SQL)
