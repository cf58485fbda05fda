"""The HTTP/JSON front end every node serves: API, OpenAPI document, metrics, dashboard.

Theory of operation: `make_app` builds an aiohttp application from the route table in
`routes.py` (the same table `openapi.py` documents). Each route is wrapped by a small
endpoint that parses what every route shares (exactly-once headers, a JSON body checked
against the route's fields) into a `Call`, then runs the route's handler, which maps the call
to one state-machine operation on `node.execute` (see `paxosd.runtime.service_api`).

One middleware is the only place errors become answers: `ApiError` (our own refusals), the
node's typed errors (`NotLeader` 503, `Unavailable` 503 with outcome unknown, `Overloaded`
429), `BadCommand` 400, aiohttp's 404/405/413, and as a last resort any other exception,
which is logged and answered 500 {"error": "internal"} so no traceback ever reaches a client.
The same middleware times every request for the optional `LatencyRecorder` (normally
`metrics.HttpMetrics`). There is no per-request logging: at tens of thousands of requests a
second a log line each would cost more than the request.

Bodies are limited by `body_bytes_max` through aiohttp's client_max_size, which stops reading
as soon as the limit is passed (413), so a huge body costs at most the limit in memory.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from aiohttp import web

from paxosd.runtime.errors import ServiceError as NodeError
from paxosd.runtime.service_api import NodeService
from paxosd.service.errors import BadCommand

from .calls import Call, parse_exactly_once, read_body
from .failures import (
    ApiError,
    from_bad_command,
    from_http_exception,
    from_node_error,
    internal,
    retry_after_s,
)
from .handlers import OPENAPI_DOCUMENT
from .metrics import LatencyRecorder
from .openapi import document
from .routes import ROUTES
from .schema import Route

__all__ = ["ROUTES", "make_app", "serve_http"]

log = logging.getLogger(__name__)

# The default request body limit, in bytes: one maximal value (1 MiB as msgpack) plus JSON's
# overhead rarely needs more; raise it per node for larger documents.
body_bytes_max_default: Final = 1 << 20

_ROUTE: Final = web.RequestKey("paxosd_route", Route)
_UNMATCHED: Final = "unmatched"  # metrics label of requests no route matched

_Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    node: NodeService,
    *,
    body_bytes_max: int = body_bytes_max_default,
    metrics: LatencyRecorder | None = None,
    routes: Sequence[Route] = ROUTES,
) -> web.Application:
    """The aiohttp application serving `node`. `metrics` receives every request's latency."""
    app = web.Application(
        client_max_size=body_bytes_max, middlewares=[_guard_middleware(node, metrics)]
    )
    for route in routes:
        # add_route (unlike add_get) adds no implicit HEAD route, so the router holds exactly
        # the table, which a test compares with the OpenAPI document.
        app.router.add_route(route.method, route.path, _endpoint(route, node))
    app[OPENAPI_DOCUMENT] = json.dumps(document(routes), indent=1).encode()
    return app


async def serve_http(
    node: NodeService,
    host: str,
    port: int,
    *,
    body_bytes_max: int = body_bytes_max_default,
    metrics: LatencyRecorder | None = None,
) -> web.AppRunner:
    """Serve `node` on host:port (port 0: any free port, see `runner.addresses`).

    The caller stops it with `await runner.cleanup()`.
    """
    app = make_app(node, body_bytes_max=body_bytes_max, metrics=metrics)
    # access_log=None: no per-request logging (see the module docstring).
    # shutdown_timeout: how long cleanup() lets in-flight requests finish, in seconds.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _endpoint(route: Route, node: NodeService) -> _Endpoint:
    handler = route.handler
    fields = route.body
    service = route.service

    async def endpoint(request: web.Request) -> web.StreamResponse:
        request[_ROUTE] = route
        client_id, seq = parse_exactly_once(request) if service else (None, None)
        body = await read_body(request, fields) if fields is not None else {}
        return await handler(Call(request, node, body, client_id, seq))

    return endpoint


def _guard_middleware(
    node: NodeService, recorder: LatencyRecorder | None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: _Endpoint) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            response = from_http_exception(exc, request).response()
        except NodeError as exc:
            response = from_node_error(exc, node).response()
        except BadCommand as exc:  # the node's own validation, if it disagrees with ours
            response = from_bad_command(exc).response()
        except TimeoutError:
            # The node should raise Unavailable; a bare timeout means the same thing.
            retry = {"Retry-After": str(retry_after_s)}
            response = ApiError(
                503, "unavailable", "timed out", outcome="unknown", headers=retry
            ).response()
        except Exception:
            log.exception("internal error answering %s %s", request.method, request.path)
            response = internal().response()
        route = request.get(_ROUTE)
        if route is not None and route.cors:
            # Let the dashboard served by one node poll every other node's status.
            response.headers["Access-Control-Allow-Origin"] = "*"
        if recorder is not None:
            name = route.name if route is not None else _UNMATCHED
            recorder.observe(name, response.status, time.perf_counter() - started)
        return response

    return guard
