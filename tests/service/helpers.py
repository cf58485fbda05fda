"""Test helpers: a tiny log driver and strict (type-aware) comparison of results."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings

from paxosd.service import Error, Request, StateMachine, encode
from paxosd.service.results import Result


class Log:
    """Feeds commands to a machine the way the engine does: encoded, one slot at a time."""

    def __init__(self, machine: StateMachine | None = None, *, clients_max: int = 100_000):
        self.machine = machine if machine is not None else StateMachine(clients_max=clients_max)
        self.slot = self.machine.applied_slot

    def apply_bytes(self, payload: bytes) -> Result:
        self.slot += 1
        result, _ = self.machine.apply(self.slot, payload)
        return result

    def run(self, command: Any) -> Result:
        return self.apply_bytes(encode(command))

    def request(self, client_id: str, seq: int, op: Any) -> Result:
        return self.run(Request(client_id=client_id, seq=seq, op=op))


def shape(result: Result) -> str | None:
    """A result's JSON as text: distinguishes true/1/1.0, which Python's == does not.

    Error messages are prose, so only an Error's code takes part in comparisons.
    """
    if result is None:
        return None
    data = {"error": result.code} if isinstance(result, Error) else result.to_json()
    return json.dumps(data)


def strict(value: Any) -> str:
    """A type-aware rendering for equality of commands and values (repr keeps 1 != True)."""
    return repr(value)


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings for this suite.

    No deadline and no too_slow health check: the first text() draw of a fresh machine builds
    Hypothesis's unicode tables (about a second), which is not the code under test being slow.
    """
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
