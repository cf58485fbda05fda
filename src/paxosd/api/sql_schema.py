"""JSON Schemas of the SQL database's bodies and answers (rqlite's and /v1/sql's), added to the
API's one table of schemas (schema.py) for the OpenAPI document."""

from __future__ import annotations

from typing import Any, Final

from .schema import SCHEMAS

_STR: Final[dict[str, Any]] = {"type": "string"}
_INT: Final[dict[str, Any]] = {"type": "integer"}
_STRINGS: Final[dict[str, Any]] = {"type": "array", "items": _STR}
_STATEMENT: Final[dict[str, Any]] = {
    "description": 'a statement: "SQL text", or [sql, parameters...] (rqlite) / '
    "[sql, [parameters]] (/v1), or [sql, {name: value}] for named parameters",
    "oneOf": [_STR, {"type": "array", "prefixItems": [_STR]}],
}

SCHEMAS.update(
    {
        "RqliteStatements": {
            "type": "array",
            "items": _STATEMENT,
            "description": "rqlite's body: a JSON array of statements",
        },
        "RqliteResults": {
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "columns": _STRINGS,
                            "types": {"description": "a list, or {column: type} if associative"},
                            "values": {"type": "array", "items": {"type": "array"}},
                            "rows": {"type": "array", "items": {"type": "object"}},
                            "rows_affected": _INT,
                            "last_insert_id": _INT,
                            "error": {**_STR, "description": "this statement failed: SQLite's "
                                      "message (or paxosd's refusal)"},
                        },
                    },
                },
                "time": {"type": "number", "description": "with ?timings: seconds, at the node"},
            },
        },
        "SqlRequest": {
            "type": "object",
            "required": ["statements"],
            "properties": {
                "statements": {"type": "array", "items": _STATEMENT},
                "level": {"enum": ["none", "weak", "linearizable", "strong"]},
                "txn": {**_STR, "description": "run inside this interactive transaction"},
            },
            "additionalProperties": False,
        },
        "SqlResults": {
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["rows_affected", "last_insert_id"],
                        "properties": {
                            "rows_affected": _INT,
                            "last_insert_id": _INT,
                            "columns": _STRINGS,
                            "types": _STRINGS,
                            "rows": {"type": "array", "items": {"type": "array"}},
                        },
                    },
                },
                "revision": {**_INT, "description": "the SQL database's revision"},
                "level": _STR,
                "txn": _STR,
                "pending": {"type": "boolean", "description": "writes held until the commit"},
                "committed": {"type": "boolean"},
            },
        },
        "SqlTxn": {
            "type": "object",
            "properties": {"txn": _STR},
            "additionalProperties": False,
        },
        "SqlBegun": {
            "type": "object",
            "required": ["txn", "revision", "idle_timeout_ms"],
            "properties": {"txn": _STR, "revision": _INT, "idle_timeout_ms": _INT},
        },
        "SqlRolledBack": {"type": "object", "properties": {"rolled_back": {"const": True}}},
    }
)  # fmt: skip
