"""One request to a node's operator endpoints (`POST /v1/members`, `POST
/v1/leader/transfer`) and its answer as a value: what `paxosd member`, `paxosd node --join`
and the chaos nemesis send, each reading the answer in its own terms (a failure to report,
a refusal to retry, a line in a fault's record).

A refusal's error code tells whether asking again can help: "busy" passes by itself (the
node does not lead, or a change or a handover is under way: core/multi/busy.py), "refused"
stays until the request changes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int  # the HTTP status; 0 when the node did not answer
    code: str | None  # an error body's "error" ("busy", "refused", ...)
    message: str  # an error body's "message"; a success's body (its start); why no answer

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def busy(self) -> bool:
        """Refused for a reason that passes by itself: ask (the leader) again shortly."""
        return self.code == "busy"


def post(http: str, path: str, body: dict[str, Any], timeout_s: float) -> Answer:
    """POST `body` as JSON to `path` of the node whose HTTP address is `http` (HOST:PORT)."""
    request = urllib.request.Request(
        f"http://{http}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return Answer(answer.status, None, answer.read()[:200].decode(errors="replace"))
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            refusal = json.loads(text)
            return Answer(error.code, str(refusal["error"]), str(refusal["message"]))
        except (ValueError, TypeError, KeyError):
            return Answer(error.code, None, text[:200].decode(errors="replace"))
    except urllib.error.URLError as error:
        return Answer(0, None, str(error.reason))
    except OSError as error:
        return Answer(0, None, str(error))
