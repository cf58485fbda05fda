"""One API call: its parsed request (path, body, exactly-once identity) and its way to the node.

Theory of operation: `http.py` turns every aiohttp request into a `Call` before any handler
runs. The body is read once, parsed as JSON and checked against the route's `Field`s (types,
missing and unknown members) so handlers only ever see well-typed values; the exactly-once
headers are parsed the same way. `Call.execute` validates the state-machine operation with
`paxosd.service.commands.validate` (sizes, TTL bounds, JSON values) and passes it to the node,
turning a `results.Error` answer into an `ApiError`. Everything refused here is certain not to
have taken effect: nothing reaches the node before it is fully checked.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Final, NoReturn
from urllib.parse import unquote_to_bytes

from aiohttp import web

from paxosd.runtime.service_api import NodeService
from paxosd.service.commands import owner_bytes_max, seq_max, validate
from paxosd.service.errors import BadCommand
from paxosd.service.kv import KvError
from paxosd.service.results import Error as ErrorResult

from .failures import ApiError, from_bad_command, from_kv_error, from_result
from .schema import BAD_HEADER, BAD_JSON, BAD_REQUEST, REQUEST_TIMEOUT, Field, FieldKind

CLIENT_ID_HEADER: Final = "Paxosd-Client-Id"
SEQ_HEADER: Final = "Paxosd-Seq"

# A decimal sequence number: digits only (no sign, no spaces); at most 19 digits fits seq_max.
_SEQ_PATTERN: Final = re.compile(r"[0-9]{1,19}")
# A "%" that does not start a %XX escape.
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")

# Exact type checks: bool is an int subclass in Python but not a JSON integer.
_KIND_TYPES: Final[dict[FieldKind, type | None]] = {"string": str, "integer": int, "json": None}


@dataclass(slots=True)
class Call:
    """A request that passed the generic checks; what a route handler works with."""

    request: web.Request
    node: NodeService
    body: dict[str, Any]
    client_id: str | None = None
    seq: int | None = None
    # How long the body may take to arrive, for handlers that read it themselves.
    body_timeout_s: float = 30.0

    def param(self, name: str) -> str:
        """A path parameter, percent-decoded ("/" allowed in keys and names)."""
        return self.request.match_info[name]

    async def execute(self, op: Any) -> Any:
        """Validate `op`, run it on the node, and return its result (never a results.Error)."""
        try:
            validate(op, self.node.kv_limits)
        except BadCommand as exc:
            raise from_bad_command(exc) from None
        result = await self.node.execute(op, client_id=self.client_id, seq=self.seq)
        if isinstance(result, ErrorResult):
            raise from_result(result)
        if isinstance(result, KvError):
            raise from_kv_error(result)
        return result


def parse_exactly_once(request: web.Request) -> tuple[str | None, int | None]:
    """The (client id, seq) of `Paxosd-Client-Id` / `Paxosd-Seq`: both or neither."""
    headers = request.headers
    client_id = headers.get(CLIENT_ID_HEADER)
    seq_text = headers.get(SEQ_HEADER)
    if client_id is None and seq_text is None:
        return None, None
    if client_id is None or seq_text is None:
        _bad_header(f"{CLIENT_ID_HEADER} and {SEQ_HEADER} must be sent together")
    if not client_id:
        _bad_header(f"{CLIENT_ID_HEADER} must not be empty")
    try:
        size = len(client_id.encode())
    except UnicodeEncodeError:  # aiohttp keeps undecodable header bytes as surrogates
        _bad_header(f"{CLIENT_ID_HEADER} is not valid UTF-8")
    if size > owner_bytes_max:
        _bad_header(f"{CLIENT_ID_HEADER} is {size} bytes, more than {owner_bytes_max}")
    if not _SEQ_PATTERN.fullmatch(seq_text):
        _bad_header(f"{SEQ_HEADER} must be a positive decimal integer, got {seq_text[:40]!r}")
    seq = int(seq_text)
    if not 1 <= seq <= seq_max:
        _bad_header(f"{SEQ_HEADER} {seq} is outside [1, {seq_max}]")
    return client_id, seq


def _bad_header(message: str) -> NoReturn:
    raise ApiError(400, BAD_HEADER, message)


def check_path_encoding(request: web.Request) -> None:
    """Refuse a path whose percent-escapes are malformed or do not decode to UTF-8.

    aiohttp keeps such escapes literally, so `/v1/kv/a%FFb` would name the key `a%FFb`, the
    same key as `/v1/kv/a%25FFb`: two spellings of one key, and a key nobody meant.
    """
    raw = request.rel_url.raw_path
    if "%" not in raw and raw.isascii():
        return
    bad = _BAD_ESCAPE.search(raw)
    if bad is not None:
        raise ApiError(
            400,
            BAD_REQUEST,
            f"the path has a '%' at offset {bad.start()} that does not start a %XX escape "
            "(write '%' itself as %25)",
            field="path",
        )
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise ApiError(
            400,
            BAD_REQUEST,
            "the path's percent-escapes do not decode to UTF-8: keys and names are UTF-8 "
            "text, each byte of it written as %XX (e.g. 'é' is %C3%A9)",
            field="path",
        ) from None


async def read_raw_body(request: web.Request, timeout_s: float) -> bytes:
    """The request body's bytes. Raises ApiError 408 if it takes longer than `timeout_s` to
    arrive, and aiohttp's 413 for a body over the application's client_max_size."""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise ApiError(
            408,
            REQUEST_TIMEOUT,
            f"the request body did not arrive within {round(timeout_s * 1000)} ms",
            close=True,
        ) from None


async def read_body(
    request: web.Request, fields: tuple[Field, ...], timeout_s: float
) -> dict[str, Any]:
    """The request body as a JSON object holding exactly `fields` with their types.

    Raises ApiError 400 for anything else, 408 if the body takes longer than `timeout_s` to
    arrive, and aiohttp's 413 (turned into JSON by the middleware) for a body over the
    application's client_max_size. An empty body is read as {} so that the answer names the
    first missing field rather than complaining about JSON.
    """
    document = parse_json(await read_raw_body(request, timeout_s))
    if type(document) is not dict:
        raise ApiError(400, BAD_REQUEST, "body must be a JSON object")
    for name in document:
        if not any(field.name == name for field in fields):
            expected = ", ".join(field.name for field in fields) or "none"
            raise ApiError(
                400, BAD_REQUEST, f"unknown field {name!r} (expected: {expected})", field=name
            )
    for field in fields:
        if field.name not in document:
            if field.required:
                raise ApiError(400, BAD_REQUEST, f"missing field {field.name!r}", field=field.name)
            continue
        expected_type = _KIND_TYPES[field.kind]
        value = document[field.name]
        if expected_type is not None and type(value) is not expected_type:
            raise ApiError(
                400,
                BAD_REQUEST,
                f"field {field.name!r} must be a JSON {field.kind}, got {_json_kind(value)}",
                field=field.name,
            )
    return document


def parse_json(raw: bytes) -> Any:
    """The JSON document in a body; an empty (or all-blank) body is {}. Raises ApiError 400
    bad_json for anything that is not one JSON document."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, BAD_JSON, "body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, huge int literals
        raise ApiError(400, BAD_JSON, f"body is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity; JSON (and the state machine) does not.
    raise ValueError(f"{name} is not a JSON value")


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    if type(value) is str:
        return "string"
    if type(value) is list:
        return "array"
    return "object"
