"""What the client verbs share: their options, their exit codes, and how an error reaches the
user - one line `error: ...` on stderr (with a `hint:` line when there is one), or with
`--json` one JSON object on stdout, never a traceback.

Exit codes, the same for every verb (docs/client.md has the table):

    0  done
    1  a definite no: the key is missing, the lock is held, the name is taken, the CAS did
       not match, the decision is open, not the holder, not healthy, no quorum
    2  a usage error or an error (nothing was applied: bad input, no node reachable)
    3  the outcome is unknown: a write reached the cluster and no definite answer came
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from paxosd.client import (
    BadRequest,
    Client,
    LockHeld,
    LockLost,
    NotHolder,
    OutcomeUnknown,
    PaxosdError,
    RequestMismatch,
    Unavailable,
)
from paxosd.client.core import DEFAULT_ENDPOINTS, ENDPOINTS_VARIABLE

__all__ = [
    "DONE",
    "ERROR",
    "NO",
    "UNKNOWN",
    "Failure",
    "Seconds",
    "connected",
    "emit",
    "endpoints_option",
    "failure_from",
    "json_option",
    "parse_value",
    "show",
    "tidy",
    "timeout_option",
    "timeout_option_for",
    "wants_json",
]

F = TypeVar("F", bound=Callable[..., Any])
DONE, NO, ERROR, UNKNOWN = 0, 1, 2, 3
_JSON = "paxosd.json"  # in click's context meta: the user asked for --json
_ARGV = "paxosd.argv"  # the raw arguments, for errors raised before --json was parsed
NOT_RUNNING_HINT = (
    "is the cluster running? `make up` starts one; elsewhere pass --endpoints "
    f"or set ${ENDPOINTS_VARIABLE}"
)


class Failure(click.ClickException):
    """An error as the user sees it: `error: MESSAGE` (and `hint: HINT`) on stderr, or with
    --json {"error": CODE, "message": ..., "outcome": ..., "hint": ...} on stdout."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        exit_code: int = ERROR,
        outcome: str = "failed",
        hint: str | None = None,
        as_json: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code  # type: ignore[misc] # per error, not per class
        self.outcome = outcome
        self.hint = hint
        if as_json is None:
            as_json = wants_json(click.get_current_context(silent=True))
        self.as_json = as_json

    def show(self, file: Any = None) -> None:
        if self.as_json:
            body = {"error": self.code, "message": self.message, "outcome": self.outcome}
            click.echo(json.dumps(body | ({"hint": self.hint} if self.hint else {})))
            return
        click.echo(f"error: {self.message}", err=True)
        if self.hint:
            click.echo(f"hint: {self.hint}", err=True)


def wants_json(ctx: click.Context | None) -> bool:
    if ctx is None:
        return False
    if ctx.meta.get(_JSON):
        return True
    argv = ctx.meta.get(_ARGV, [])
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


def remember_argv(ctx: click.Context, args: list[str]) -> None:
    ctx.meta[_ARGV] = list(args)


def failure_from(error: PaxosdError) -> Failure:
    """The client's typed error -> what the user sees, with its exit code."""
    match error:
        case OutcomeUnknown():
            return Failure(
                f"outcome unknown: {error}",
                code="outcome_unknown",
                exit_code=UNKNOWN,
                outcome="unknown",
                hint="the write may or may not have happened; read it to find out "
                "(retrying it is safe)",
            )
        case Unavailable():
            hint = NOT_RUNNING_HINT if error.refused else "retry later: nothing was applied"
            return Failure(str(error), code="unavailable", hint=hint)
        case RequestMismatch():
            return Failure(str(error), code="request_mismatch")
        case BadRequest():
            return Failure(str(error), code="bad_request")
        case NotHolder():
            return Failure(str(error), code="not_holder", exit_code=NO)
        case LockHeld():
            return Failure(str(error), code="lock_held", exit_code=NO)
        case LockLost():
            return Failure(str(error), code="lock_lost")
    return Failure(str(error))


@contextmanager
def connected(endpoints: str, timeout: float) -> Iterator[Client]:
    """A client for the verb; the client's errors leave as Failures."""
    try:
        client = Client(endpoints, timeout_s=timeout)
    except BadRequest as error:
        raise Failure(f"--endpoints: {error}", code="usage") from None
    try:
        with client:
            yield client
    except PaxosdError as error:
        raise failure_from(error) from None


class Seconds(click.ParamType):
    """A duration in seconds: a finite number within [minimum, maximum] (`minimum` itself
    excluded when `positive`)."""

    name = "seconds"

    def __init__(
        self, minimum: float = 0.0, maximum: float | None = None, *, positive: bool = False
    ):
        self.minimum, self.maximum, self.positive = minimum, maximum, positive

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        low_ok = seconds > self.minimum if self.positive else seconds >= self.minimum
        high_ok = self.maximum is None or seconds <= self.maximum
        if not math.isfinite(seconds) or not low_ok or not high_ok:
            low = f"more than {self.minimum:g}" if self.positive else f"at least {self.minimum:g}"
            high = f" and at most {self.maximum:g}" if self.maximum is not None else ""
            self.fail(f"{value} seconds: must be {low}{high}", param, ctx)
        return seconds


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_JSON] = True
    return value


endpoints_option = click.option(
    "--endpoints",
    envvar=ENDPOINTS_VARIABLE,
    show_envvar=True,
    default=",".join(e.removeprefix("http://") for e in DEFAULT_ENDPOINTS),
    show_default=True,
    help="Comma-separated HOST:PORT of the nodes' HTTP API.",
)
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    is_eager=True,
    callback=_remember_json,
    help="Machine-readable output; errors too are JSON (on stdout).",
)


def timeout_option_for(default_s: float, help: str) -> Callable[[F], F]:
    return click.option(
        "--timeout", default=default_s, show_default=True,
        type=Seconds(positive=True, maximum=3600), help=help,
    )  # fmt: skip


timeout_option = timeout_option_for(10.0, "Seconds to wait for an answer.")


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)


def parse_value(text: str, as_string: bool = False) -> Any:
    """A value on the command line is JSON if it parses as JSON, else a string. Text that
    looks like JSON but does not parse is refused rather than stored as a string by mistake;
    `--string` stores any text as it is."""
    if as_string:
        return text
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except _NotJson as error:
        raise Failure(
            f"{error} is not a JSON value (JSON has no NaN or infinity); "
            "pass --string to store the text as it is",
            code="bad_request",
        ) from None
    except ValueError as error:
        if text.lstrip()[:1] in ("{", "[", '"'):
            raise Failure(
                f"the value looks like JSON but does not parse ({error}); "
                "pass --string to store the text as it is",
                code="bad_request",
            ) from None
        return text


def show(value: Any) -> str:
    """A value as a user reads it: strings bare, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def tidy(value: Any) -> Any:
    """Floats rounded to 3 decimals, all the way down, for output (0.9999999999763 -> 1.0)."""
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: tidy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tidy(v) for v in value]
    return value


def emit(as_json: bool, data: dict[str, Any] | list[Any], text: str) -> None:
    click.echo(json.dumps(tidy(data)) if as_json else text)
