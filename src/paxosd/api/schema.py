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
EVENT_STREAM_TYPE: Final = "text/event-stream"

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
    "Members": {
        "type": "object",
        "description": "cluster_id, answered_by, leader, epoch, protocol, and members: each "
        "with id, peer, http, resp, voting (voter or learner), connected, and refused (why it "
        "refuses this node) when it does",
        "additionalProperties": True,
    },
    "Transfer": _object({"from": _INT, "to": _INT, "state": _STR}),
    "MembersChange": {
        "type": "object",
        "description": "epoch: the epoch the change starts; voters, learners; state",
        "additionalProperties": True,
    },
    "Backup": {"type": "string", "description": "a backup file (docs/operations.md, 'Backup')"},
}

# ---------------------------------------------------------------------------------------------
# The key-value store over many keys (/v1/kv ranges, /v1/txn, /v1/compact)

_KV_REF: Final = "#/components/schemas/"
SCHEMAS.update(
    {
        "KvKeyValue": _object(
            {"create_revision": _INT, "mod_revision": _INT, "version": _INT, "lease": _INT},
            {
                "key": {**_STR, "description": "the key, if it is UTF-8"},
                "key_base64": {**_STR, "description": "the key's bytes, if it is not UTF-8"},
                "value": {**_ANY, "description": "the value, if it is JSON text"},
                "value_base64": {**_STR, "description": "the value's bytes, if not JSON"},
            },
        ),
        "KvRange": _object(
            {
                "revision": _INT,
                "count": _INT,
                "more": _BOOL,
                "kvs": {"type": "array", "items": {"$ref": _KV_REF + "KvKeyValue"}},
            }
        ),
        "KvDeleted": _object(
            {"revision": _INT, "deleted": _INT},
            {"prev_kvs": {"type": "array", "items": {"$ref": _KV_REF + "KvKeyValue"}}},
        ),
        "KvTxn": _object(
            {
                "revision": _INT,
                "succeeded": _BOOL,
                "responses": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "description": "one of {range: KvRange}, {put: {revision, prev_kv?}}, "
                        "{delete: KvDeleted}, {txn: KvTxn}",
                    },
                },
            }
        ),
        "KvCompacted": _object({"revision": _INT, "compact_revision": _INT}),
        "KvError": _object(
            {
                "error": _STR,
                "message": _STR,
                "outcome": {"type": "string", "enum": ["failed", "unknown"]},
            },
            {
                "etcd_message": {**_STR, "description": "etcd's text for the same refusal"},
                "field": _STR,
            },
        ),
    }
)

# ---------------------------------------------------------------------------------------------
# etcd's v3 API (as its JSON gateway writes it: base64 bytes, int64 as strings, enum names)

_B64: Final[dict[str, Any]] = {"type": "string", "contentEncoding": "base64"}
_I64: Final[dict[str, Any]] = {
    "type": ["string", "integer"],
    "description": "int64: a decimal string (answers always are one) or a JSON integer",
}


def _enum(*names: str) -> dict[str, Any]:
    return {"enum": [*names, *range(len(names))], "description": "by name or number"}


def _etcd(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if description:
        schema["description"] = description
    return schema


_ETCD_REF: Final = "#/components/schemas/"
_HEADER: Final = {"$ref": _ETCD_REF + "EtcdHeader"}
_KVS: Final = {"type": "array", "items": {"$ref": _ETCD_REF + "EtcdKeyValue"}}
_ETCD_RANGE = {
    "key": _B64,
    "range_end": {**_B64, "description": "end of [key, range_end); \"AA==\" (a zero byte): "
                  "every key from key on"},
    "limit": _I64,
    "revision": _I64,
    "sort_order": _enum("NONE", "ASCEND", "DESCEND"),
    "sort_target": _enum("KEY", "VERSION", "CREATE", "MOD", "VALUE"),
    "serializable": _BOOL,
    "keys_only": _BOOL,
    "count_only": _BOOL,
    "min_mod_revision": _I64,
    "max_mod_revision": _I64,
    "min_create_revision": _I64,
    "max_create_revision": _I64,
}  # fmt: skip
_ETCD_PUT = {
    "key": _B64,
    "value": _B64,
    "lease": _I64,
    "prev_kv": _BOOL,
    "ignore_value": _BOOL,
    "ignore_lease": _BOOL,
}
_ETCD_DELETE = {"key": _B64, "range_end": _B64, "prev_kv": _BOOL}
_ETCD_COMPARE = {
    "result": _enum("EQUAL", "GREATER", "LESS", "NOT_EQUAL"),
    "target": _enum("VERSION", "CREATE", "MOD", "VALUE", "LEASE"),
    "key": _B64,
    "version": _I64,
    "create_revision": _I64,
    "mod_revision": _I64,
    "value": _B64,
    "lease": _I64,
    "range_end": _B64,
}
_REQUEST_OPS = {
    "type": "array",
    "items": _etcd(
        {
            "request_range": _etcd(_ETCD_RANGE),
            "request_put": _etcd(_ETCD_PUT),
            "request_delete_range": _etcd(_ETCD_DELETE),
            "request_txn": {"$ref": _ETCD_REF + "EtcdTxnRequest"},
        },
        "exactly one of the four",
    ),
}

SCHEMAS.update(
    {
        "EtcdHeader": _etcd(
            {"cluster_id": _STR, "member_id": _STR, "revision": _STR, "raft_term": _STR},
            "uint64/int64 as strings; raft_term is the round of the node's promised ballot",
        ),
        "EtcdKeyValue": _etcd(
            {
                "key": _B64,
                "create_revision": _STR,
                "mod_revision": _STR,
                "version": _STR,
                "value": _B64,
                "lease": _STR,
            }
        ),
        "EtcdRangeRequest": _etcd(_ETCD_RANGE, "etcdserverpb.RangeRequest"),
        "EtcdPutRequest": _etcd(_ETCD_PUT, "etcdserverpb.PutRequest"),
        "EtcdDeleteRangeRequest": _etcd(_ETCD_DELETE, "etcdserverpb.DeleteRangeRequest"),
        "EtcdTxnRequest": _etcd(
            {
                "compare": {"type": "array", "items": _etcd(_ETCD_COMPARE)},
                "success": _REQUEST_OPS,
                "failure": _REQUEST_OPS,
            },
            "etcdserverpb.TxnRequest",
        ),
        "EtcdCompactionRequest": _etcd(
            {"revision": _I64, "physical": _BOOL}, "etcdserverpb.CompactionRequest"
        ),
        "EtcdEmptyRequest": _etcd({}, "an empty object (or no body)"),
        "EtcdRangeResponse": _etcd({"header": _HEADER, "kvs": _KVS, "more": _BOOL, "count": _STR}),
        "EtcdPutResponse": _etcd(
            {"header": _HEADER, "prev_kv": {"$ref": _ETCD_REF + "EtcdKeyValue"}}
        ),
        "EtcdDeleteRangeResponse": _etcd({"header": _HEADER, "deleted": _STR, "prev_kvs": _KVS}),
        "EtcdTxnResponse": _etcd(
            {
                "header": _HEADER,
                "succeeded": _BOOL,
                "responses": {
                    "type": "array",
                    "items": _etcd(
                        {
                            "response_range": {"$ref": _ETCD_REF + "EtcdRangeResponse"},
                            "response_put": {"$ref": _ETCD_REF + "EtcdPutResponse"},
                            "response_delete_range": {
                                "$ref": _ETCD_REF + "EtcdDeleteRangeResponse"
                            },
                            "response_txn": {"$ref": _ETCD_REF + "EtcdTxnResponse"},
                        }
                    ),
                },
            }
        ),
        "EtcdCompactionResponse": _etcd({"header": _HEADER}),
        "EtcdStatusResponse": _etcd(
            {
                "header": _HEADER,
                "version": _STR,
                "dbSize": _STR,
                "leader": _STR,
                "raftIndex": _STR,
                "raftTerm": _STR,
                "raftAppliedIndex": _STR,
                "dbSizeInUse": _STR,
                "errors": {"type": "array", "items": _STR},
            },
            "raftIndex and raftAppliedIndex are the node's chosen and applied log slots",
        ),
        "EtcdMemberListResponse": _etcd(
            {
                "header": _HEADER,
                "members": {
                    "type": "array",
                    "items": _etcd(
                        {
                            "ID": _STR,
                            "name": _STR,
                            "peerURLs": {"type": "array", "items": _STR},
                            "clientURLs": {"type": "array", "items": _STR},
                        }
                    ),
                },
            }
        ),
        "EtcdWatchRequest": _etcd(
            {
                "create_request": _etcd(
                    {
                        "key": _B64,
                        "range_end": _B64,
                        "start_revision": _I64,
                        "progress_notify": _BOOL,
                        "filters": {"type": "array", "items": _enum("NOPUT", "NODELETE")},
                        "prev_kv": _BOOL,
                        "watch_id": _I64,
                        "fragment": _BOOL,
                    }
                ),
                "cancel_request": _etcd({"watch_id": _I64}),
                "progress_request": _etcd({}),
            },
            "etcdserverpb.WatchRequest, one of the three; the body may hold several in turn",
        ),
        "EtcdWatchResponse": _etcd(
            {
                "result": _etcd(
                    {
                        "header": _HEADER,
                        "watch_id": _STR,
                        "created": _BOOL,
                        "canceled": _BOOL,
                        "compact_revision": _STR,
                        "cancel_reason": _STR,
                        "fragment": _BOOL,
                        "events": {
                            "type": "array",
                            "items": _etcd(
                                {
                                    "type": _enum("PUT", "DELETE"),
                                    "kv": {"$ref": _ETCD_REF + "EtcdKeyValue"},
                                    "prev_kv": {"$ref": _ETCD_REF + "EtcdKeyValue"},
                                }
                            ),
                        },
                    }
                )
            },
            'one line of the newline-delimited stream: {"result": WatchResponse}',
        ),
        "WatchEvent": _object(
            {"revision": _INT, "events": {"type": "array", "items": _ANY}},
            {},
        ),
        "EtcdVersion": _object({"etcdserver": _STR, "etcdcluster": _STR}, {"paxosd": _STR}),
        "EtcdError": _object(
            {"error": _STR, "message": _STR, "code": _INT},
            {
                "paxosd": _etcd(
                    {"error": _STR, "detail": _STR, "outcome": _STR},
                    "paxosd's own error code and explanation (limits, counts, revisions)",
                )
            },
        ),
    }
)

# ---------------------------------------------------------------------------------------------
# Leases (/v1/leases, and etcd's Lease service)

SCHEMAS.update(
    {
        "LeaseGranted": _object({"id": _INT, "ttl_ms": _INT, "revision": _INT}),
        "LeaseList": _object({"revision": _INT, "leases": {"type": "array", "items": _INT}}),
        "LeaseTimeToLive": _object(
            {"id": _INT, "ttl_ms": _INT, "granted_ttl_ms": _INT, "revision": _INT},
            {
                "keys": {
                    "type": "array",
                    "items": _object({}, {"key": _STR, "key_base64": _STR}),
                    "description": "with keys=true: each key as text, or base64 if not UTF-8",
                }
            },
        ),
        "LeaseRevoked": _object({"id": _INT, "revision": _INT}),
        "ElectionLeader": _object(
            {"key": _STR, "value": _STR, "token": _INT, "lease": _INT, "revision": _INT}
        ),
        "ElectionDone": _object({"revision": _INT}, {"resigned": _BOOL}),
        "EtcdLeaseGrantRequest": _etcd(
            {"TTL": {**_I64, "description": "seconds (raised to the node's minimum)"}, "ID": _I64},
            "etcdserverpb.LeaseGrantRequest",
        ),
        "EtcdLeaseRequest": _etcd(
            {"ID": _I64}, "etcdserverpb.LeaseRevokeRequest or LeaseKeepAliveRequest"
        ),
        "EtcdLeaseTimeToLiveRequest": _etcd(
            {"ID": _I64, "keys": _BOOL}, "etcdserverpb.LeaseTimeToLiveRequest"
        ),
        "EtcdLeaseGrantResponse": _etcd({"header": _HEADER, "ID": _STR, "TTL": _STR}),
        "EtcdLeaseRevokeResponse": _etcd({"header": _HEADER}),
        "EtcdLeaseTimeToLiveResponse": _etcd(
            {
                "header": _HEADER,
                "ID": _STR,
                "TTL": {**_STR, "description": "seconds left; -1: no such lease"},
                "grantedTTL": _STR,
                "keys": {"type": "array", "items": _B64},
            }
        ),
        "EtcdLeaseLeasesResponse": _etcd(
            {"header": _HEADER, "leases": {"type": "array", "items": _etcd({"ID": _STR})}}
        ),
        "EtcdLeaseKeepAliveResponse": _etcd(
            {
                "result": _etcd(
                    {"header": _HEADER, "ID": _STR, "TTL": {**_STR, "description": "absent: "
                     "no such lease"}}
                )
            },
            'one line per LeaseKeepAliveRequest of the body: {"result": ...}',
        ),
    }
)  # fmt: skip

FIELD_SCHEMAS: Final[dict[FieldKind, dict[str, Any]]] = {
    "string": _STR,
    "integer": _INT,
    "json": _ANY,
}
