"""The OpenAPI 3.1 document of the HTTP API, generated from the route table.

Theory of operation: `document(ROUTES)` walks the same `Route` values `http.make_app`
registers, so every route, its path parameters, the exactly-once headers of service routes, its
request body (an object with exactly the route's fields; unknown members are refused), its
success answers and every error it can produce appear exactly as the server implements them.
aiohttp's regex parameters (`{key:.+}`) are written as plain `{key}`; their description says
that "/" is allowed. `make_app` renders the document once; serving it costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from paxosd.service.commands import key_bytes_max, owner_bytes_max

from .calls import CLIENT_ID_HEADER, SEQ_HEADER
from .routes import Route
from .schema import FIELD_SCHEMAS, JSON_TYPE, SCHEMAS, Reply

openapi_version: Final = "3.1.0"
api_version: Final = "1.0.0"

_PARAM: Final = re.compile(r"\{(\w+)(?::[^}]*)?\}")

_PARAM_DOC: Final = {
    "key": f"the key (1-{key_bytes_max} UTF-8 bytes; may contain '/', or send it as %2F)",
    "name": f"the lock or registry name (1-{key_bytes_max} UTF-8 bytes; '/' allowed)",
    "id": f"the decision id (1-{key_bytes_max} UTF-8 bytes; '/' allowed)",
}

# Errors every route of a kind can answer, besides its own replies.
_BODY_ERRORS: Final = (
    Reply(400, "Error", "bad_json, bad_request (field names the member), bad_command"),
    Reply(413, "Error", "too_large: the body is over the node's limit"),
)
_SERVICE_ERRORS: Final = (
    Reply(400, "Error", "bad_header (exactly-once headers), bad_command (sizes, limits)"),
    Reply(429, "Error", "overloaded: not accepted; retry after Retry-After seconds"),
    Reply(
        503,
        "Error",
        "not_leader (leader, leader_http say where to go; outcome failed), "
        "unavailable (no quorum or timeout; outcome UNKNOWN: retry with the same "
        "Paxosd-Client-Id and Paxosd-Seq), damaged",
    ),
)
_DEFAULT_ERROR: Final = Reply(
    500, "Error", "internal (500); not_found for an unknown route (404); method_not_allowed (405)"
)


def openapi_path(pattern: str) -> str:
    """aiohttp's `/v1/kv/{key:.+}` as OpenAPI's `/v1/kv/{key}`."""
    return _PARAM.sub(r"{\1}", pattern)


def document(routes: Iterable[Route], *, title: str = "paxosd HTTP API") -> dict[str, Any]:
    """The OpenAPI 3.1 document for `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": openapi_version,
        "info": {
            "title": title,
            "version": api_version,
            "description": "Linearizable key-value store with revisions, locks with fencing "
            "tokens, write-once names and decisions, replicated with Multi-Paxos. Every "
            "error body is {error, message, outcome}; outcome 'unknown' means a write may "
            "still take effect.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": {
                "ClientId": {
                    "name": CLIENT_ID_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "exactly-once client identity (1-"
                    f"{owner_bytes_max} UTF-8 bytes); send with {SEQ_HEADER}",
                    "schema": {"type": "string"},
                },
                "Seq": {
                    "name": SEQ_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "exactly-once sequence number, a positive integer that "
                    f"increases per client; a retry reuses it; send with {CLIENT_ID_HEADER}",
                    "schema": {"type": "integer", "minimum": 1},
                },
            },
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PARAM_DOC.get(name, name),
            "schema": {"type": "string"},
        }
        for name in _PARAM.findall(route.path)
    ]
    example = route.example or {}
    for field in route.query:
        parameter: dict[str, Any] = {
            "name": field.name,
            "in": "query",
            "required": field.required,
            "description": field.doc,
            "schema": FIELD_SCHEMAS[field.kind],
        }
        if field.name in example.get("query", {}):
            parameter["example"] = example["query"][field.name]
        parameters.append(parameter)
    if route.service:
        parameters += [
            {"$ref": "#/components/parameters/ClientId"},
            {"$ref": "#/components/parameters/Seq"},
        ]
    replies: list[Reply] = list(route.replies)
    if route.body is not None:
        replies += _BODY_ERRORS
    if route.service:
        replies += _SERVICE_ERRORS
    responses: dict[str, Any] = {}
    for reply in replies:
        _add_reply(responses, reply, route.content_type if reply.status < 300 else JSON_TYPE)
    responses["default"] = _response(_DEFAULT_ERROR, JSON_TYPE)
    if "response" in example:
        success = next(code for code in responses if code.startswith("2"))
        responses[success]["content"][route.content_type]["example"] = example["response"]
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    if route.description:
        operation["description"] = route.description
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": any(field.required for field in route.body),
            "content": {JSON_TYPE: {"schema": _body_schema(route)}},
        }
        if "body" in example:
            operation["requestBody"]["content"][JSON_TYPE]["example"] = example["body"]
    elif route.request_schema is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {
                JSON_TYPE: {"schema": {"$ref": f"#/components/schemas/{route.request_schema}"}}
            },
        }
    return operation


def _add_reply(responses: dict[str, Any], reply: Reply, content_type: str) -> None:
    key = str(reply.status)
    if key in responses:
        # Two sources document the same status (e.g. a route's 400 and the common 400):
        # one response object, both descriptions.
        responses[key]["description"] += "; " + reply.doc
        return
    responses[key] = _response(reply, content_type)


def _response(reply: Reply, content_type: str) -> dict[str, Any]:
    return {
        "description": reply.doc,
        "content": {content_type: {"schema": {"$ref": f"#/components/schemas/{reply.schema}"}}},
    }


def _body_schema(route: Route) -> dict[str, Any]:
    fields = route.body or ()
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [field.name for field in fields if field.required],
        "properties": {
            field.name: {**FIELD_SCHEMAS[field.kind], "description": field.doc} for field in fields
        },
    }
