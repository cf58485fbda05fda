"""Typed errors of the replicated state machine.

Theory of operation: the consensus engine moves opaque bytes, so every way those bytes can be
wrong must surface as one of a few typed errors the engine and the HTTP layer can catch without
guessing. `BadCommand` means "these command bytes (or this command object) are not a valid
command"; `CorruptSnapshot` means "these snapshot bytes are not a state this code wrote";
`SlotOrderError` means the engine broke its side of the contract (apply out of order), which
would silently fork replicas if it were tolerated, so it is loud instead.

Well-formed commands that cannot take effect (refreshing a lock you do not hold, a stale retry)
are not exceptions: they are `results.Error` values, because every replica must reach the same
answer and record it in the log's history.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class of every error raised by `paxosd.service`."""


class BadCommand(ServiceError, ValueError):
    """A command failed validation. `field` names the offending part, e.g. "Put.key".

    Raised by `encode` (so a bad command never reaches the log), by `decode` (the only error it
    ever raises, whatever the input bytes) and by `StateMachine.read` for an invalid query.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[BadCommand], tuple[str, str]]:
        # Exceptions pickle their args by default; ours takes two, not the joined message.
        return (type(self), (self.field, self.reason))


class CorruptSnapshot(ServiceError):
    """Snapshot bytes are truncated, damaged, foreign or of an unsupported version."""


class SlotOrderError(ServiceError):
    """`apply` was called with a slot not strictly above the last applied slot."""
