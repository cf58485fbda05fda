"""A user's mistake is one line, `error: ...`, exit 2 - never a traceback - and with --json
it is a JSON object. None of these need a cluster: each is refused before anything is sent."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from paxosd.cli.main import main
from tests.ports import free_block


@pytest.fixture
def nowhere() -> str:
    base = free_block(3)
    return ",".join(f"127.0.0.1:{base + i}" for i in range(3))


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), prog_name="paxosd")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["put", "x", "NaN"], "NaN is not a JSON value"),
        (["put", "x", "Infinity"], "Infinity is not a JSON value"),
        (["put", "x", "1e999"], "NaN and infinity are not JSON values"),
        (["put", "x", "{bad json"], "looks like JSON but does not parse"),
        (["put", "", "1"], "the key must not be empty"),
        (["get", ""], "the key must not be empty"),
        (["get", "x", "--timeout", "-1"], "'--timeout': -1 seconds: must be more than 0"),
        (["get", "x", "--timeout", "nan"], "'--timeout': nan seconds"),
        (["lock", "j", "--ttl", "99999"], "'--ttl': 99999 seconds: must be at least 0.1"),
        (["lock", "j", "--", "no-such-command-xyz"], "cannot run 'no-such-command-xyz'"),
        (["get", "x", "--endpoints", "localhost"], "bad endpoint 'localhost'"),
        (["get"], "Missing argument 'KEY'"),
        (["get", "x", "--bogus"], "No such option '--bogus'. (see 'paxosd get --help')"),
        (["no-such-verb"], "No such command 'no-such-verb'"),
        (["chaos", "--first-port", "44000"], "44000 is not in the range 1024<=x<=32000"),
    ],
)
def test_a_mistake_is_one_error_line_and_exit_2(
    args: list[str], expected: str, nowhere: str
) -> None:
    if args and args[0] in ("put", "get", "lock") and "--endpoints" not in args:
        # If anything were sent, nobody would answer.
        at = args.index("--") if "--" in args else len(args)
        args = [*args[:at], "--endpoints", nowhere, *args[at:]]
    code, out, err = run(*args)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_with_json_a_mistake_is_a_json_object(nowhere: str) -> None:
    code, out, _ = run("put", "", "1", "--json", "--endpoints", nowhere)
    assert code == 2
    assert json.loads(out) == {
        "error": "bad_request", "message": "the key must not be empty", "outcome": "failed"
    }  # fmt: skip
    code, out, _ = run("get", "x", "--bogus", "--json")
    assert code == 2 and json.loads(out)["error"] == "usage"


def test_text_that_is_not_json_is_stored_as_a_string_unless_it_looks_like_json() -> None:
    from paxosd.cli.common import parse_value

    assert parse_value("hello") == "hello"
    assert parse_value("1.5") == 1.5 and parse_value('"1"') == "1"
    assert parse_value("{bad", as_string=True) == "{bad"


def test_the_endpoints_help_names_the_environment_variable() -> None:
    code, out, _ = run("get", "--help")
    assert code == 0 and "PAXOSD_ENDPOINTS" in out
