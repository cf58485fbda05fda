"""An unmodified etcd client, `etcd3gw` (etcd's JSON gateway client), against a real paxosd
cluster: it finds the API path from GET /version and uses /v3 on whichever node it is given.

What it relies on and gets: get, put, delete, the prefix calls, create and replace (its
transactions), raw transactions, status and the member list, leases (grant, put with a
lease, time-to-live, keep-alive, keys, revoke) and its lock, which holds a key on a lease."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from etcd3gw.client import Etcd3Client

from tests.mvcc_store import needs_store

from .cluster import Cluster

pytestmark = needs_store


@pytest.fixture(scope="module")
def clients(shared_cluster: Cluster) -> Iterator[list[Etcd3Client]]:
    made = []
    for node in (1, 2, 3):
        host, port = shared_cluster.http(node).rsplit(":", 1)
        made.append(Etcd3Client(host=host, port=int(port), timeout=30))
    yield made
    for client in made:
        client.session.close()


def test_discovers_the_v3_path(clients: list[Etcd3Client]) -> None:
    assert clients[0].api_path == "/v3/"


def test_put_get_delete_on_any_node(clients: list[Etcd3Client]) -> None:
    one, two, three = clients
    assert one.put("gw/a", "alpha") is True
    assert two.get("gw/a") == [b"alpha"]
    [(value, meta)] = three.get("gw/a", metadata=True)
    assert value == b"alpha" and meta["key"] == b"gw/a"
    assert meta["version"] == "1" and int(meta["create_revision"]) == int(meta["mod_revision"])
    one.put("gw/a", "beta")
    [(value, meta)] = two.get("gw/a", metadata=True)
    assert value == b"beta" and meta["version"] == "2"
    assert three.delete("gw/a") is True
    assert one.delete("gw/a") is False  # nothing deleted: etcd leaves "deleted" out
    assert two.get("gw/a") == []


def test_prefixes_sorting_and_ranges(clients: list[Etcd3Client]) -> None:
    one, two, _ = clients
    for i, name in enumerate(["c", "a", "b"]):
        one.put(f"gw/p/{name}", str(i))
    one.put("gw/q", "outside")
    listed = two.get_prefix("gw/p/")
    assert [meta["key"] for _, meta in listed] == [b"gw/p/a", b"gw/p/b", b"gw/p/c"]
    by_value = two.get_prefix("gw/p/", sort_order="descend", sort_target="value")
    assert [value for value, _ in by_value] == [b"2", b"1", b"0"]
    assert two.get("gw/p/", range_end="gw/p0", limit=2) == [b"1", b"2"]
    everything = two.get_all()
    assert {b"gw/p/a", b"gw/q"} <= {meta["key"] for _, meta in everything}
    assert one.delete_prefix("gw/p/") is True
    assert two.get_prefix("gw/p/") == []
    assert two.get("gw/q") == [b"outside"]


def test_create_and_replace(clients: list[Etcd3Client]) -> None:
    one, two, three = clients
    assert one.create("gw/once", "first") is True
    assert two.create("gw/once", "second") is False
    assert three.get("gw/once") == [b"first"]
    assert one.replace("gw/once", "first", "third") is True
    assert two.replace("gw/once", "first", "fourth") is False
    assert three.get("gw/once") == [b"third"]


def test_a_raw_transaction(clients: list[Etcd3Client]) -> None:
    one, two, _ = clients
    one.put("gw/t/balance", "10")

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    txn = {
        "compare": [{"key": b64("gw/t/balance"), "result": "EQUAL", "target": "VALUE",
                     "value": b64("10")}],
        "success": [
            {"request_put": {"key": b64("gw/t/balance"), "value": b64("7")}},
            {"request_put": {"key": b64("gw/t/log"), "value": b64("-3")}},
            {"request_range": {"key": b64("gw/t/"), "range_end": b64("gw/t0")}},
        ],
        "failure": [{"request_range": {"key": b64("gw/t/balance")}}],
    }  # fmt: skip
    result = two.transaction(txn)
    assert result["succeeded"] is True
    revision = result["header"]["revision"]
    ranged = result["responses"][2]["response_range"]
    assert [kv["mod_revision"] for kv in ranged["kvs"]] == [revision, revision]  # one revision
    again = one.transaction(txn)
    assert "succeeded" not in again  # false, left out as etcd leaves it out
    assert again["responses"][0]["response_range"]["kvs"][0]["value"] == b64("7")


def test_status_and_members(clients: list[Etcd3Client], shared_cluster: Cluster) -> None:
    status = clients[1].status()
    assert status["version"].startswith("3.4.")
    assert status["header"]["member_id"] == "2"
    assert int(status["leader"]) in (1, 2, 3)
    assert int(status["raftIndex"]) >= int(status["raftAppliedIndex"]) > 0
    members = clients[0].members()
    assert sorted(m["ID"] for m in members) == ["1", "2", "3"]
    urls = {url for m in members for url in m["clientURLs"]}
    assert urls == {f"http://{shared_cluster.http(n)}" for n in (1, 2, 3)}


def test_leases_keep_and_end_keys(clients: list[Etcd3Client]) -> None:
    lease = clients[0].lease(ttl=30)
    assert clients[1].put("gw-eph", "up", lease=lease)
    assert 0 < lease.ttl() <= 30
    assert lease.refresh() == 30
    assert lease.keys() == [b"gw-eph"]
    assert lease.revoke()
    assert clients[2].get("gw-eph") == []  # the lease took its key with it
    assert lease.ttl() == -1 and lease.refresh() == -1  # etcd's answers for a lease gone


def test_lock_takes_a_lease_and_excludes_another(clients: list[Etcd3Client]) -> None:
    first = clients[0].lock("gw-job", ttl=5)
    assert first.acquire()
    assert first.is_acquired()
    second = clients[1].lock("gw-job", ttl=5)
    assert not second.acquire()  # held: etcd3gw gives up rather than wait
    assert first.refresh() == 5
    assert first.release()
    assert second.acquire() and second.release()
    assert clients[2].get("/locks/gw-job") == []
