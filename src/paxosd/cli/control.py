"""How other `paxosd` commands talk to a running `paxosd up` supervisor: small files in the
cluster's data directory, so that no port or socket is needed and a stale request is plain
to see.

- `supervisor.pid`: the supervisor's pid, while it runs;
- `rebuild-<node>.request`: `paxosd rebuild NODE` asks for a node's rebuild (the file holds a
  random token); the supervisor takes it within a poll (0.2 s), and
- `rebuild-<node>.answer`: its answer, `{"token": ..., "accepted": bool, "detail": ...}`,
  written whole (a temporary file renamed into place);
- `add-<node>.request` and `add-<node>.answer`: the same, for `paxosd up --add`, which asks
  the supervisor to start (and from then on supervise) a node that has just joined.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "SUPERVISOR_PID",
    "Answer",
    "answer_request",
    "ask",
    "ask_rebuild",
    "rebuild_requests",
    "requests",
    "supervisor_pid",
]

SUPERVISOR_PID: Final = "supervisor.pid"
_REQUEST: Final = "{kind}-{node}.request"
_ANSWER: Final = "{kind}-{node}.answer"


@dataclass(frozen=True, slots=True)
class Answer:
    accepted: bool
    detail: str


def supervisor_pid(data_dir: Path) -> int | None:
    """The pid of the `paxosd up` running for `data_dir`, if one runs."""
    try:
        pid = int((data_dir / SUPERVISOR_PID).read_text().split()[0])
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"paxosd" in command_line else None


def ask_rebuild(data_dir: Path, node: int, timeout_s: float = 10.0) -> Answer | None:
    """Ask the supervisor to rebuild `node`; its answer, or None if none came in time."""
    return ask(data_dir, "rebuild", node, timeout_s)


def ask(data_dir: Path, kind: str, node: int, timeout_s: float = 10.0) -> Answer | None:
    """Ask the supervisor for `kind` ("rebuild", "add") of `node`; its answer, or None if
    none came in time."""
    token = secrets.token_hex(8)
    answer_path = data_dir / _ANSWER.format(kind=kind, node=node)
    answer_path.unlink(missing_ok=True)
    _write_whole(data_dir / _REQUEST.format(kind=kind, node=node), token)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            raw = json.loads(answer_path.read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
            continue
        if raw.get("token") == token:
            answer_path.unlink(missing_ok=True)
            return Answer(bool(raw.get("accepted")), str(raw.get("detail", "")))
        time.sleep(0.1)
    (data_dir / _REQUEST.format(kind=kind, node=node)).unlink(missing_ok=True)
    return None


def rebuild_requests(data_dir: Path) -> list[tuple[int, str]]:
    """The pending rebuild requests as (node, token), each taken (its file removed)."""
    return requests(data_dir, "rebuild")


def requests(data_dir: Path, kind: str) -> list[tuple[int, str]]:
    """The pending requests of `kind` as (node, token), each taken (its file removed)."""
    found = []
    for path in sorted(data_dir.glob(_REQUEST.format(kind=kind, node="*"))):
        digits = path.name.removeprefix(f"{kind}-").removesuffix(".request")
        try:
            token = path.read_text().strip()
            path.unlink()
        except OSError:
            continue
        if digits.isdigit():
            found.append((int(digits), token))
    return found


def answer_request(
    data_dir: Path, node: int, token: str, answer: Answer, kind: str = "rebuild"
) -> None:
    body = {"token": token, "accepted": answer.accepted, "detail": answer.detail}
    _write_whole(data_dir / _ANSWER.format(kind=kind, node=node), json.dumps(body))


def _write_whole(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
