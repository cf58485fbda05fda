"""The lab's web app: the page, its assets, and a JSON API over play sessions.

Theory of operation. `Lab` holds the sessions by id. Every endpoint that changes a session
takes the `version` the page last saw and is refused with 409 if the session has moved on
since (another tab did something), so every tab acts only on what it shows; tabs follow
changes with a long poll (`GET .../wait?version=V` answers as soon as the version differs).
One middleware turns every refusal into a JSON answer with a 4xx status: unknown session or
path 404, malformed JSON or an unknown action or step 400, a stale version 409, an oversized
body 413; anything unexpected is logged and answered 500 without a traceback.

Each session has a lock, so one change is applied at a time. The coach runs the explorer in a
worker thread (the event loop keeps answering other requests meanwhile), at most
`coaches_max` at once, for a few seconds each (`seconds` in the request asks for longer, up to
`coach_seconds_max`). While it runs, `GET .../coach/progress` says how far it got and `POST
.../coach/cancel` stops it; the coach's request then answers with what was found so far. What
the coaches of all sessions remember together is bounded (`coach_states_total_max`): the
sessions that asked longest ago forget first. Every asset is a package file served from here:
the page needs no network beyond this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from paxosd.lab import algorithms, tracefile
from paxosd.lab.play import tours
from paxosd.lab.play.coach import (
    Advice,
    CoachMemory,
    advise,
    coach_seconds_default,
    coach_seconds_max,
    release,
)
from paxosd.lab.play.recorded import RecordedRun
from paxosd.lab.play.replay import session_from_trace
from paxosd.lab.play.session import BadAction, PlayConfig, Session, Stale
from paxosd.lab.play.view import recorded_view, session_view
from paxosd.sim.search import Progress

__all__ = ["Lab", "make_app", "serve"]

log = logging.getLogger(__name__)

# Limits.
sessions_max = 200  # the oldest session is forgotten past this
body_bytes_max = 8 << 20  # an imported trace file
wait_s_max = 25.0  # a long poll answers after this long even if nothing changed
coaches_max = 2  # explorer runs at once
coach_states_total_max = 600_000  # states all sessions' coaches remember together
ASSETS = {
    "index.html": "text/html",
    "play.js": "application/javascript",
    "play.css": "text/css",
}

Run = Session | RecordedRun


@dataclass(slots=True)
class CoachJob:
    """A coach's search while it runs: how far it got, and the flag that cancels it."""

    step: int
    seconds: float
    started: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Progress | None = None
    waiting: bool = True  # for a free coach (at most `coaches_max` search at once)

    def to_json(self) -> dict[str, Any]:
        progress = self.progress
        return {
            "running": True,
            "waiting": self.waiting,
            "step": self.step,
            "seconds": self.seconds,
            "elapsed_s": round(time.monotonic() - self.started, 2),
            "states": 0 if progress is None else progress.states,
            "depth": 0 if progress is None else progress.depth,
            "new_states": 0 if progress is None else progress.new_states,
            "cancelling": self.cancel.is_set(),
        }


@dataclass(slots=True)
class _Entry:
    run: Run
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    coach: CoachJob | None = None


class NoSession(LookupError):
    """The request names a session this process does not have (404)."""


class Lab:
    """The sessions of one `paxosd lab play` process."""

    def __init__(self, coach_seconds: float = coach_seconds_default) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._coaches = asyncio.Semaphore(coaches_max)
        self.coach_seconds = coach_seconds
        self._coached: OrderedDict[str, Session] = OrderedDict()  # by last question, oldest first

    def coach_memory(self, session: Session) -> CoachMemory:
        """The session's coach memory, made room for: the sessions whose coach was asked
        longest ago forget what they remembered once all together hold too many states."""
        self._coached.pop(session.id, None)
        self._coached[session.id] = session
        for other in list(self._coached.values())[:-1]:
            total = sum(s.coach_memory.states for s in self._coached.values() if s.coach_memory)
            if total <= coach_states_total_max:
                break
            other.coach_memory = None
            del self._coached[other.id]
            release()
        if session.coach_memory is None:
            session.coach_memory = CoachMemory(session)
        memory: CoachMemory = session.coach_memory
        return memory

    def add(self, run: Run) -> str:
        ident = secrets.token_urlsafe(6)
        run.id = ident
        self._entries[ident] = _Entry(run)
        while len(self._entries) > sessions_max:
            self._entries.popitem(last=False)
        return ident

    def entry(self, ident: str) -> _Entry:
        found = self._entries.get(ident)
        if found is None:
            raise NoSession(f"no session {ident!r}: it may have ended; start a new one")
        return found


def view(run: Run) -> dict[str, Any]:
    return session_view(run) if isinstance(run, Session) else recorded_view(run)


def new_session(config: PlayConfig, tour: str | None = None) -> Session:
    if tour is not None:
        found = tours.TOURS.get(tour)
        if found is None:
            raise BadAction(f"no tour {tour!r}; choose one of: {', '.join(tours.TOURS)}")
        session = Session(found.config)
        tours.start(session, found)
        session.version = 0
        return session
    return Session(config)


def open_trace(data: Any, property: str | None = None) -> Run:
    """A session for a lab trace document: explored runs live, simulated ones recorded."""
    lab_trace = tracefile.load(data, property)
    if lab_trace.model == "explored":
        return session_from_trace(lab_trace)
    config = lab_trace.config
    algorithms.get(str(config["algorithm"]))
    nodes = config.get("nodes")
    if not isinstance(nodes, int) or not 1 <= nodes <= 64:
        raise ValueError('a simulated run\'s config needs "nodes", from 1 to 64')
    return RecordedRun(
        str(config["algorithm"]), nodes, lab_trace.trace, lab_trace.title, lab_trace.story,
        config=dict(config),
    )  # fmt: skip


# -- the app -----------------------------------------------------------------------------------


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except NoSession as missing:
        return _json({"error": str(missing)}, status=404)
    except Stale as stale:
        return _json({"error": str(stale), "version": stale.current}, status=409)
    except (BadAction, ValueError) as error:
        return _json({"error": str(error)}, status=400)
    except web.HTTPException as http:
        message = http.reason if http.status != 413 else "the body is too large"
        return _json({"error": f"{message} ({request.method} {request.path})"}, status=http.status)
    except Exception:
        log.exception("lab play: %s %s failed", request.method, request.path)
        return _json({"error": "internal error (see the server's log)"}, status=500)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _int(body: dict[str, Any], name: str, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f'"{name}" must be an integer')
    return value


def make_app(lab: Lab | None = None) -> web.Application:
    lab = lab or Lab()
    app = web.Application(middlewares=[_errors], client_max_size=body_bytes_max)
    static = resources.files("paxosd.lab.play").joinpath("static")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in ASSETS:
            raise web.HTTPNotFound()
        body = static.joinpath(name).read_text(encoding="utf-8")
        return web.Response(text=body, content_type=ASSETS[name], charset="utf-8")

    async def catalog(_: web.Request) -> web.Response:
        return _json(
            {
                "algorithms": [
                    {
                        "name": a.name,
                        "summary": a.summary,
                        "flaw": a.flaw,
                        "variants": list(a.variants),
                    }
                    for a in algorithms.ALGORITHMS.values()
                ],
                "tours": [
                    {"key": t.key, "title": t.title, "chapter": t.chapter}
                    for t in tours.TOURS.values()
                ],
            }
        )

    async def create(request: web.Request) -> web.Response:
        body = await _body(request)
        tour = body.get("tour")
        if tour is not None and not isinstance(tour, str):
            raise ValueError('"tour" must be a tour name')
        config = None if tour else PlayConfig.from_json(body.get("config", body))
        session = new_session(config or PlayConfig("paxos"), tour)
        lab.add(session)
        return _json(view(session), status=201)

    async def import_(request: web.Request) -> web.Response:
        body = await _body(request)
        run = open_trace(body, request.query.get("property"))
        lab.add(run)
        return _json(view(run), status=201)

    async def show(request: web.Request) -> web.Response:
        return _json(view(lab.entry(request.match_info["sid"]).run))

    async def wait(request: web.Request) -> web.Response:
        entry = lab.entry(request.match_info["sid"])
        try:
            seen = int(request.query.get("version", "-1"))
        except ValueError:
            raise ValueError("version must be an integer") from None
        async with entry.changed:
            if entry.run.version == seen:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        entry.changed.wait_for(lambda: entry.run.version != seen), wait_s_max
                    )
        return _json(view(entry.run))

    async def changed(entry: _Entry) -> web.Response:
        async with entry.changed:
            entry.changed.notify_all()
        return _json(view(entry.run))

    def live(entry: _Entry) -> Session:
        if not isinstance(entry.run, Session):
            raise BadAction("a recorded run can only be stepped through; import it as explored")
        return entry.run

    def mutation(
        change: Callable[[_Entry, dict[str, Any], int | None], None],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            entry = lab.entry(request.match_info["sid"])
            body = await _body(request)
            version = _int(body, "version", required=False)
            async with entry.lock:
                change(entry, body, version)
                session = entry.run
                if isinstance(session, Session) and session.tour is not None:
                    moved = tours.advance(session, session.tour)
                    session.version += moved
            return await changed(entry)

        return endpoint

    def do_apply(entry: _Entry, body: dict[str, Any], version: int | None) -> None:
        action = body.get("action")
        if not isinstance(action, str):
            raise ValueError('"action" must be an action id, such as "deliver:3"')
        live(entry).apply(action, version)

    def do_path(entry: _Entry, body: dict[str, Any], version: int | None) -> None:
        path = body.get("path")
        if not isinstance(path, list) or not all(isinstance(s, dict) for s in path):
            raise ValueError('"path" must be a list of steps')
        live(entry).apply_all(path, version)

    def do_goto(entry: _Entry, body: dict[str, Any], version: int | None) -> None:
        step = _int(body, "step")
        assert step is not None
        entry.run.goto(step, version)

    def do_fork(entry: _Entry, body: dict[str, Any], version: int | None) -> None:
        live(entry).fork(version)

    def do_switch(entry: _Entry, body: dict[str, Any], version: int | None) -> None:
        branch = _int(body, "branch")
        assert branch is not None
        live(entry).switch(branch, version)

    def do_discard(entry: _Entry, body: dict[str, Any], version: int | None) -> None:
        branch = _int(body, "branch")
        assert branch is not None
        live(entry).discard(branch, version)

    def tour_of(session: Session) -> tours.TourProgress:
        if session.tour is None:
            raise BadAction("this session is not a tour")
        progress: tours.TourProgress = session.tour
        return progress

    def do_next(entry: _Entry, body: dict[str, Any], version: int | None) -> None:
        session = live(entry)
        session._check(version)
        if tours.advance(session, tour_of(session), next_pressed=True):
            session.version += 1

    def do_show(entry: _Entry, body: dict[str, Any], version: int | None) -> None:
        session = live(entry)
        stage = tour_of(session).current
        if not stage.show:
            raise BadAction(
                "this stage has nothing to show: ask the coach, or press next"
                if stage.coach_at is None
                else "the page shows this one: it goes to the step and asks the coach"
            )
        session.apply_all(list(stage.show), version)

    async def coach(request: web.Request) -> web.Response:
        entry = lab.entry(request.match_info["sid"])
        body = await _body(request)
        version = _int(body, "version", required=False)
        seconds = body.get("seconds", lab.coach_seconds)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
            raise ValueError('"seconds" must be a positive number')
        seconds = min(float(seconds), coach_seconds_max)
        session = live(entry)
        async with entry.lock:
            session._check(version)
            job = entry.coach = CoachJob(session.cursor, seconds)
            try:
                async with lab._coaches:
                    job.waiting = False
                    job.started = time.monotonic()
                    memory = lab.coach_memory(session)

                    def note(progress: Progress) -> None:
                        job.progress = progress

                    advice: Advice = await asyncio.to_thread(
                        advise, session, seconds, job.cancel, note, memory
                    )
            finally:
                entry.coach = None
            progress = session.tour
            if progress is not None:
                tours.heard(progress, advice.step, advice)
                tours.advance(session, progress)
                session.version += 1
        answer = await changed(entry)
        return _json({"advice": advice.to_json(), "view": json.loads(answer.text or "{}")})

    async def coach_progress(request: web.Request) -> web.Response:
        job = lab.entry(request.match_info["sid"]).coach
        return _json({"running": False} if job is None else job.to_json())

    async def coach_cancel(request: web.Request) -> web.Response:
        job = lab.entry(request.match_info["sid"]).coach
        if job is not None:
            job.cancel.set()
        return _json({"running": job is not None, "cancelled": job is not None})

    async def export(request: web.Request) -> web.Response:
        entry = lab.entry(request.match_info["sid"])
        run = entry.run
        if isinstance(run, Session):
            document = tracefile.document(
                "explored", run.config.to_json(), run.trace(), title=view(run)["title"]
            )
        else:
            document = tracefile.document(
                "simulated", run.config, run.trace, title=run.title, story=run.story
            )
        response = _json(document)
        response.headers["Content-Disposition"] = f'attachment; filename="lab-{run.id}.json"'
        return response

    app.router.add_get("/", asset)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/catalog", catalog)
    app.router.add_post("/api/sessions", create)
    app.router.add_post("/api/import", import_)
    app.router.add_get("/api/sessions/{sid}", show)
    app.router.add_get("/api/sessions/{sid}/wait", wait)
    app.router.add_get("/api/sessions/{sid}/export", export)
    app.router.add_post("/api/sessions/{sid}/apply", mutation(do_apply))
    app.router.add_post("/api/sessions/{sid}/path", mutation(do_path))
    app.router.add_post("/api/sessions/{sid}/goto", mutation(do_goto))
    app.router.add_post("/api/sessions/{sid}/fork", mutation(do_fork))
    app.router.add_post("/api/sessions/{sid}/switch", mutation(do_switch))
    app.router.add_post("/api/sessions/{sid}/discard", mutation(do_discard))
    app.router.add_post("/api/sessions/{sid}/tour/next", mutation(do_next))
    app.router.add_post("/api/sessions/{sid}/tour/show", mutation(do_show))
    app.router.add_post("/api/sessions/{sid}/coach", coach)
    app.router.add_get("/api/sessions/{sid}/coach/progress", coach_progress)
    app.router.add_post("/api/sessions/{sid}/coach/cancel", coach_cancel)
    return app


async def serve(lab: Lab, host: str, port: int) -> web.AppRunner:
    """Serve the lab on host:port (port 0: any free port, see `runner.addresses`)."""
    runner = web.AppRunner(make_app(lab), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
