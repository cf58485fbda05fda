"""Operator logs: one line per event, as `key=value` pairs or as JSON.

Every event a node reports (a leader change, a peer lost, a snapshot taken, a shutdown) goes
through `event()`, so all of them read the same way and a log shipper can parse them:

    2026-12-01T20:18:51.123Z INFO node=2 event=leader_changed leader=3 ballot=7.3

`setup()` picks the format (`kv` or `json`) and the level for the whole process.
"""

from __future__ import annotations

import logging
from typing import Any


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event: `name` says what happened, `fields` the facts, in the order given."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join([f"event={name}", *(f"{key}={_show(value)}" for key, value in fields.items())])
    logger.log(level, text, extra={"event": name, "fields": fields})


def _show(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text
