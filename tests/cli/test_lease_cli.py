"""`paxosd lease` and `paxosd put --lease`: etcdctl's lease commands (hex ids, its lines)
against the HTTP API over a FakeNode: a key put with a lease goes with it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from paxosd.cli.main import main
from tests.api.conftest import Api, FakeNode
from tests.mvcc_store import needs_store


@pytest.fixture
def endpoint() -> Iterator[str]:
    harness = Api(FakeNode())
    try:
        yield f"127.0.0.1:{harness.client.server.port}"
    finally:
        harness.close()


def run(endpoint: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--endpoints", endpoint])
    return result.exit_code, result.output


@needs_store
def test_a_key_put_with_a_lease_goes_with_it(endpoint: str) -> None:
    code, out = run(endpoint, "lease", "grant", "60")
    assert code == 0 and out.startswith("lease ") and out.strip().endswith("granted with TTL(60s)")
    lease_hex = out.split()[1]
    code, out = run(endpoint, "put", "workers/a", "up", "--lease", lease_hex)
    assert code == 0, out
    code, out = run(endpoint, "lease", "timetolive", lease_hex, "--keys")
    assert code == 0 and "granted with TTL(60s)" in out, out
    assert out.strip().endswith("attached keys([workers/a])"), out  # etcdctl's line
    code, out = run(endpoint, "lease", "list")
    assert out.splitlines() == ["found 1 leases", lease_hex]
    code, out = run(endpoint, "lease", "keep-alive", lease_hex, "--once")
    assert code == 0 and out.strip() == f"lease {lease_hex} keepalived with TTL(60)"
    code, out = run(endpoint, "lease", "list", "--json")
    assert json.loads(out)["ids_hex"] == [lease_hex]
    code, out = run(endpoint, "lease", "revoke", lease_hex)
    assert code == 0 and out.strip() == f"lease {lease_hex} revoked"
    code, out = run(endpoint, "get", "workers/a")
    assert code == 1, out  # gone with its lease
    code, out = run(endpoint, "lease", "revoke", lease_hex)
    assert code == 1 and "not found" in out
    code, out = run(endpoint, "lease", "keep-alive", lease_hex, "--once")
    assert code == 1 and "expired or revoked" in out
    code, out = run(endpoint, "lease", "timetolive", lease_hex)
    assert code == 1 and "already expired" in out


@needs_store
def test_bad_lease_input_is_refused_with_the_reason(endpoint: str) -> None:
    code, out = run(endpoint, "lease", "revoke", "not-hex")
    assert code == 2 and "not a lease id" in out
    code, out = run(endpoint, "lease", "grant", "0")
    assert code == 2 and "must be more than 0" in out
    code, out = run(endpoint, "put", "k", "v", "--lease", "abc")
    assert code != 0 and "lease" in out.lower(), out  # no such lease: nothing written
    code, out = run(endpoint, "get", "k")
    assert code == 1
    code, out = run(endpoint, "lease", "grant", "60", "--id", "10")
    assert code == 0 and out.split()[1] == "10"
    code, out = run(endpoint, "lease", "grant", "60", "--id", "0x10")
    assert code != 0 and "exist" in out.lower(), out  # an id in use is refused
