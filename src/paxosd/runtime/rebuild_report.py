"""Whom a rebuild waits for, and why: for `/v1/status`, `paxosd status` and the node's log.

Theory of operation. A rebuilding node (one that lost its store, `paxosd node
--reinitialize`) votes only after EVERY other member has reported its acceptor state
(core/multi/rebuild.py), so one member that cannot report stalls the rebuild, safely and for
as long as it lasts. The core knows whom it still waits for and whether that member said it
is rebuilding too (`Status.rebuild_waiting_for`); this module adds what only the process can
see, so an operator reads the reason rather than guesses it:

- `rebuilding`: it answered that it lost its store too, so it cannot vouch for anything;
- `damaged`: its HTTP status says its store failed its checks (a damaged node takes no part
  in the protocol, so it never answers);
- `unreachable`: no connection to it (down, or its peer port is not reachable);
- `no_answer`: connected, but no report yet (it has just been asked, or it is slow).

While a rebuild waits, the node logs `rebuild_waiting` (a warning) after `first_line_s` and
then every `every_s`, naming each member and why, with what to do; `/v1/status` carries
`rebuild_waiting_for` ({"2": "rebuilding"}) all along.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from paxosd.core.multi.ready import RebuildWait, Status
from paxosd.runtime.config import NodeConfig
from paxosd.runtime.logs import event

__all__ = ["RebuildReport"]

log = logging.getLogger("paxosd.node")

first_line_s: Final = 5.0
every_s: Final = 10.0
peer_status_timeout_s: Final = 1.0
# An HTTP status answer is small; more than this is not one.
status_bytes_max: Final = 1 << 20


class RebuildReport:
    """The reasons of a rebuilding node's wait, refreshed by `tick` (the node's timer)."""

    def __init__(self, config: NodeConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.damaged: set[int] = set()  # members whose HTTP status said damaged, last we asked
        self._since: float | None = None  # waiting since
        self._next_line = 0.0
        self._probe: asyncio.Task[None] | None = None

    def reasons(self, status: Status, connected: Iterable[int]) -> dict[int, str]:
        """member -> why the rebuild still waits for it (empty: not waiting)."""
        up = set(connected)
        reasons = {}
        for peer, why in status.rebuild_waiting_for:
            if why is RebuildWait.REBUILDING:
                reasons[peer] = "rebuilding"
            elif peer in self.damaged:
                reasons[peer] = "damaged"
            elif peer not in up:
                reasons[peer] = "unreachable"
            else:
                reasons[peer] = "no_answer"
        return reasons

    def tick(self, status: Status, connected: Iterable[int]) -> None:
        """Called every few ticks: ask the silent members' HTTP status now and then, and
        log the wait at its intervals."""
        silent = RebuildWait.NO_ANSWER
        waiting = [peer for peer, why in status.rebuild_waiting_for if why is silent]
        now = self.clock()
        if not status.rebuild_waiting_for:
            self._since = None
            self.damaged.clear()
            return
        if self._since is None:
            self._since = now
            self._next_line = now + first_line_s
        if waiting and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(self._ask(waiting))
        if now >= self._next_line:
            self._next_line = now + every_s
            self._log(self.reasons(status, connected), now - self._since)

    def _log(self, reasons: dict[int, str], waited_s: float) -> None:
        named = ", ".join(f"{peer} ({why})" for peer, why in sorted(reasons.items()))
        event(
            log, "rebuild_waiting", logging.WARNING, node=self.config.node_id,
            waiting_for=named, waited_s=round(waited_s),
            detail="this node votes again only once every other member has reported its "
            "state: start the members that are down; a member that is itself rebuilding or "
            "damaged cannot report (two lost stores: see docs/operations.md, 'Two lost "
            "stores')",
        )  # fmt: skip

    async def _ask(self, peers: list[int]) -> None:
        answers = await asyncio.gather(*(self._role_of(peer) for peer in peers))
        for peer, role in zip(peers, answers, strict=True):
            if role == "damaged":
                self.damaged.add(peer)
            else:
                self.damaged.discard(peer)

    async def _role_of(self, peer: int) -> str | None:
        """The role a member's HTTP status gives (None: no answer)."""
        member = self.config.member(peer)
        if member is None:
            return None
        host, port = member.http
        try:
            async with asyncio.timeout(peer_status_timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(f"GET /v1/status HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
                    data = b""
                    while len(data) <= status_bytes_max and (chunk := await reader.read(65536)):
                        data += chunk
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return None
        _head, _, body = data.partition(b"\r\n\r\n")
        try:
            view: Any = json.loads(body)
        except ValueError:
            return None
        role = view.get("role") if isinstance(view, dict) else None
        return role if isinstance(role, str) else None
