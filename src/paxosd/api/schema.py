"""The HTTP API's vocabulary: route descriptions, body fields, JSON Schemas and error codes.

Theory of operation: one table of `Route` values (in `routes.py`) is the single source of truth
for the API. `http.py` registers every route from it and parses request bodies with its
`Field`s; `openapi.py` renders the same table as an OpenAPI 3.1 document. Nothing about a
route is written twice, so the document cannot drift from what the server does.

This module holds only data (error codes, body fields, documented replies, JSON Schemas) and
imports nothing, not even the rest of the package: every other module of the API may import
it, and it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

FieldKind: TypeAlias = Literal["string", "integer", "json"]

JSON_TYPE: Final = "application/json"
METRICS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
HTML_TYPE: Final = "text/html"

# Error codes the API itself produces (the state machine's own codes, e.g. "not_holder", are
# passed through unchanged).
BAD_JSON: Final = "bad_json"  # the body is not a JSON document
BAD_REQUEST: Final = "bad_request"  # wrong shape: not an object, missing/unknown/mistyped field
BAD_COMMAND: Final = "bad_command"  # well-typed but refused by commands.validate (sizes, ttl)
BAD_HEADER: Final = "bad_header"  # malformed exactly-once headers
TOO_LARGE: Final = "too_large"  # body over body_bytes_max
NOT_FOUND: Final = "not_found"  # no such key/name, or no such route
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
REQUEST_TIMEOUT: Final = "request_timeout"  # the body did not arrive within body_timeout_ms
FORBIDDEN_HOST: Final = "forbidden_host"  # a Host the cluster does not use (DNS rebinding)
CROSS_ORIGIN: Final = "cross_origin"  # a state change sent by another site's web page
INTERNAL: Final = "internal"
# (too_many_connections, the answer at the connection cap, is written by http_connections.)


@dataclass(frozen=True, slots=True)
class Field:
    """One member of a JSON request body. `json` accepts any JSON value, null included."""

    name: str
    kind: FieldKind
    doc: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class Reply:
    """One documented answer: HTTP status, schema name (a key of SCHEMAS) and when it happens."""

    status: int
    schema: str
    doc: str


# ---------------------------------------------------------------------------------------------
# JSON Schemas of the bodies (OpenAPI 3.1 uses JSON Schema 2020-12: {} is "any JSON value").

_ANY: Final[dict[str, Any]] = {}
_STR: Final[dict[str, Any]] = {"type": "string"}
_INT: Final[dict[str, Any]] = {"type": "integer"}
_BOOL: Final[dict[str, Any]] = {"type": "boolean"}
_NULL_STR: Final[dict[str, Any]] = {"type": ["string", "null"]}
_NULL_INT: Final[dict[str, Any]] = {"type": ["integer", "null"]}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    properties = dict(required)
    properties.update(optional or {})
    return {"type": "object", "required": list(required), "properties": properties}


# A key's fields beside its key (etcd's KeyValue): `value` if the stored bytes are JSON text,
# else `value_base64`; `revision` is the key's mod revision.
_KEY_FIELDS: Final[dict[str, Any]] = {
    "value": _ANY,
    "value_base64": _STR,
    "create_revision": _INT,
    "mod_revision": _INT,
    "version": _INT,
    "lease": _INT,
}

SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "Value": _object({"key": _STR, "revision": _INT}, _KEY_FIELDS),
    "Written": _object(
        {
            "key": _STR,
            "revision": _INT,
            "create_revision": _INT,
            "mod_revision": _INT,
            "version": _INT,
            "lease": _INT,
        }
    ),
    "Deleted": _object({"key": _STR, "existed": _BOOL, "revision": _INT, "deleted": _INT}),
    "CasResult": _object({"succeeded": _BOOL, "key": _STR, "revision": _INT}, _KEY_FIELDS),
    "LockResult": _object(
        {
            "acquired": _BOOL,
            "name": _STR,
            "owner": _NULL_STR,
            "fencing_token": _NULL_INT,
            "expires_in_ms": _NULL_INT,
        }
    ),
    "Released": _object({"released": _BOOL, "name": _STR, "owner": _STR}),
    "NameResult": _object({"registered": _BOOL, "name": _STR, "owner": _NULL_STR}),
    "DecisionResult": _object({"id": _STR, "chosen": _ANY}),
    "Error": _object(
        {
            "error": _STR,
            "message": _STR,
            "outcome": {"type": "string", "enum": ["failed", "unknown"]},
        },
        {
            "field": {"type": "string", "description": "the request part that was refused"},
            "leader": {**_NULL_INT, "description": "not_leader: the leader's id if known"},
            "leader_http": {**_NULL_STR, "description": "not_leader: its HTTP address"},
            "key": _STR,
            "name": _STR,
            "etcd_message": {
                "type": "string",
                "description": "key-value errors: etcd's text for the same error",
            },
        },
    ),
    "NameTaken": _object(
        {
            "error": _STR,
            "message": _STR,
            "outcome": _STR,
            "registered": {"const": False},
            "name": _STR,
            "owner": {**_STR, "description": "the owner that holds the name"},
        }
    ),
    "Health": _object(
        {"ok": _BOOL, "node_id": _INT, "leader": _NULL_INT},
        {"role": _STR, "reason": _STR},
    ),
    "Status": {
        "type": "object",
        "description": "node.status(): see docs/http-api.md for the fields the dashboard uses",
        "additionalProperties": True,
    },
    "OpenApi": {"type": "object", "description": "this document"},
    "Metrics": {"type": "string", "description": "Prometheus text exposition 0.0.4"},
    "Html": {"type": "string", "description": "the live dashboard page"},
}

FIELD_SCHEMAS: Final[dict[FieldKind, dict[str, Any]]] = {
    "string": _STR,
    "integer": _INT,
    "json": _ANY,
}
