"""The client's typed errors for the caller's mistakes and for a cluster that is not there,
without a cluster: mistakes are refused before anything is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from paxosd import AsyncClient, BadRequest, Client, RequestMismatch, Unavailable
from paxosd.client.core import Call, judge
from tests.ports import free_block


@pytest.fixture
def nowhere() -> str:
    """Three endpoints where nothing listens."""
    base = free_block(3)
    return ",".join(f"127.0.0.1:{base + i}" for i in range(3))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_value_json_cannot_carry_is_a_bad_request(value: float, nowhere: str) -> None:
    with Client(nowhere) as client, pytest.raises(BadRequest, match="not JSON values"):
        client.put("x", value)


def test_an_object_json_cannot_carry_is_a_bad_request(nowhere: str) -> None:
    with Client(nowhere) as client, pytest.raises(BadRequest, match="not JSON"):
        client.put("x", {1, 2})


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda c: c.put("", 1), "key"),
        (lambda c: c.get(""), "key"),
        (lambda c: c.acquire("", "me", 1), "lock name"),
        (lambda c: c.register("", "me"), "name"),
        (lambda c: c.propose("", "v"), "decision id"),
    ],
)
def test_an_empty_key_or_name_says_it_must_not_be_empty(
    call: Callable[[Client], object], what: str, nowhere: str
) -> None:
    with Client(nowhere) as client, pytest.raises(BadRequest, match=f"the {what} must not be"):
        call(client)


@pytest.mark.parametrize("ttl", [0.01, 99999, float("nan")])
def test_a_lock_ttl_out_of_range_is_refused_in_seconds(ttl: float, nowhere: str) -> None:
    with (
        Client(nowhere) as client,
        pytest.raises(BadRequest, match=r"between 0\.1 and 3600 seconds"),
    ):
        client.acquire("jobs", "me", ttl)


def test_bad_endpoints_are_named() -> None:
    with pytest.raises(BadRequest, match="bad endpoint 'localhost': expected HOST:PORT"):
        Client("localhost")
    with pytest.raises(BadRequest, match="no endpoints given"):
        Client(" , ")


def test_the_endpoints_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAXOSD_ENDPOINTS", "10.1.1.1:7001,10.1.1.2:7001")
    with Client() as client:
        assert client.endpoints == ["http://10.1.1.1:7001", "http://10.1.1.2:7001"]


def test_when_every_endpoint_refuses_the_call_fails_at_once(nowhere: str) -> None:
    """Nothing listens: waiting out the 10 s timeout would tell the caller nothing more."""
    with Client(nowhere, timeout_s=10) as client:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="every endpoint refused the connection") as caught:
            client.get("x")
        assert caught.value.refused
        with pytest.raises(Unavailable):
            client.put("x", 1)  # a write nothing received is not an unknown outcome
        assert time.monotonic() - started < 1.0


def test_the_async_client_fails_at_once_too(nowhere: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(nowhere, timeout_s=10) as client:
            with pytest.raises(Unavailable, match="every endpoint refused") as caught:
                await client.get("x")
            assert caught.value.refused
            with pytest.raises(BadRequest):
                await client.put("x", float("nan"))

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 1.0


def test_a_reused_request_id_is_a_typed_definite_failure() -> None:
    call = Call("PUT", "/v1/kv/x", {"value": 1}, True)
    body = b'{"error": "request_mismatch", "message": "seq 1 was another request"}'
    for status in (409, 422):
        verdict = judge(call, status, body)
        assert verdict.done and isinstance(verdict.error, RequestMismatch)
        assert isinstance(verdict.error, BadRequest)  # fix the caller; retrying cannot help
