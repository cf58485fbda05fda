"""The clients' key-value calls over many keys - get(prefix=), range(), delete(prefix=),
txn() and compact() - sync and async, against the HTTP API over a FakeNode; and the
transaction builders, whose mistakes are refused before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from paxosd import (
    AsyncClient,
    BadRequest,
    Client,
    DeleteResult,
    FutureRevision,
    RangeResult,
    RevisionCompacted,
    Txn,
)
from paxosd.client.kv import create, delete, get, lease, mod, put, value, version
from tests.api.conftest import Api, FakeNode
from tests.mvcc_store import needs_store


@pytest.fixture
def endpoint() -> Iterator[str]:
    harness = Api(FakeNode())
    try:
        yield f"127.0.0.1:{harness.client.server.port}"
    finally:
        harness.close()


def test_builders_make_the_api_json() -> None:
    txn = (
        Txn()
        .compare(create("jobs/7") == 0, mod(prefix="jobs/") < 10, value("k") != b"\x00")
        .compare(version(start="a", end="b") > 1, lease("k") == 0)
        .success(put("jobs/7", {"owner": "w1"}, prev_kv=True), delete(prefix="tmp/"))
        .failure(get("jobs/7"), get(prefix="jobs/", limit=2, sort_by="create", order="descend"))
    )
    inner = Txn().success(put("x", 1))
    txn.success(inner)
    assert txn.to_json() == {
        "compare": [
            {"key": "jobs/7", "target": "create", "result": "=", "create_revision": 0},
            {"prefix": "jobs/", "target": "mod", "result": "<", "mod_revision": 10},
            {"key": "k", "target": "value", "result": "!=", "value_base64": "AA=="},
            {"start": "a", "end": "b", "target": "version", "result": ">", "version": 1},
            {"key": "k", "target": "lease", "result": "=", "lease": 0},
        ],
        "success": [
            {"put": {"key": "jobs/7", "value": {"owner": "w1"}, "prev_kv": True}},
            {"delete": {"prefix": "tmp/"}},
            {"txn": {"compare": [], "success": [{"put": {"key": "x", "value": 1}}],
                     "failure": []}},
        ],
        "failure": [
            {"range": {"key": "jobs/7"}},
            {"range": {"prefix": "jobs/", "limit": 2, "sort": "create", "order": "descend"}},
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    "build",
    [
        lambda: version("k") == "1",
        lambda: Txn().compare(True),  # type: ignore[arg-type]
        lambda: Txn().success("put k 1"),  # type: ignore[arg-type]
        lambda: get(),
        lambda: get("a", prefix="b"),
        lambda: get(end="b"),
        lambda: get("a", sort_by="size"),
        lambda: get("a", order="up"),
        lambda: get("a", limit="3"),
    ],
)
def test_builder_mistakes_are_bad_requests(build: object) -> None:
    with pytest.raises(BadRequest):
        build()  # type: ignore[operator]


def test_client_mistakes_are_refused_before_sending(endpoint: str) -> None:
    with Client(endpoint) as client:
        with pytest.raises(BadRequest, match="give a key"):
            client.get()  # type: ignore[call-overload]
        with pytest.raises(BadRequest, match="sort_by"):
            client.range(prefix="a", sort_by="size")
        with pytest.raises(TypeError):
            client.range(prefix="a", colour="red")


@needs_store
def test_sync_client(endpoint: str) -> None:
    with Client(endpoint) as client:
        first = client.txn().success(put("a/1", 1), put("a/2", b"\x00raw"), put("b", "x")).commit()
        assert first.succeeded and first.revision == 2
        kvs = client.get(prefix="a/")
        assert [(kv.key, kv.value, kv.version) for kv in kvs] == [
            ("a/1", 1, 1),
            ("a/2", b"\x00raw", 1),
        ]
        client.txn().success(put("a/1", 10)).commit()
        assert client.get("a/1", revision=2).value == 1  # type: ignore[union-attr]
        assert client.get("a/1", serializable=True).value == 10  # type: ignore[union-attr]
        assert client.get("nope", revision=3) is None
        page = client.range(prefix="a/", limit=1, sort_by="mod", order="descend")
        assert isinstance(page, RangeResult)
        assert [kv.key for kv in page.kvs] == ["a/1"] and page.more and page.count == 2
        assert client.range("a/2").count == 2  # every key from a/2 on
        assert client.range(count_only=True).count == 3
        lost = (
            client.txn().compare(create("b") == 0).success(put("b", "y")).failure(get("b")).commit()
        )
        assert not lost.succeeded and lost.responses[0].kvs[0].value == "x"
        gone = client.delete(prefix="a/", prev_kv=True)
        assert isinstance(gone, DeleteResult) and gone.deleted == 2
        assert [kv.key for kv in gone.prev_kvs] == ["a/1", "a/2"]
        assert client.compact(3) == 4
        with pytest.raises(RevisionCompacted, match="compacted"):
            client.range(prefix="", revision=2)
        with pytest.raises(FutureRevision):
            client.range(prefix="", revision=99)
        with pytest.raises(BadRequest, match="puts twice"):
            client.txn().success(put("k", 1), put("k", 2)).commit()


@needs_store
def test_async_client(endpoint: str) -> None:
    async def run() -> None:
        async with AsyncClient(endpoint) as client:
            done = await client.txn().success(put("x/1", 1), put("x/2", 2)).commit()
            assert done.succeeded
            assert [kv.value for kv in await client.get(prefix="x/")] == [1, 2]
            page = await client.range(prefix="x/", keys_only=True)
            assert [kv.value for kv in page.kvs] == [None, None]
            assert (await client.delete(prefix="x/")).deleted == 2
            assert await client.compact(done.revision) == 3
            with pytest.raises(RevisionCompacted):
                await client.get("x/1", revision=1)

    asyncio.run(run())
