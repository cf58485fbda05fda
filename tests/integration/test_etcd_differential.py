"""paxosd's etcd API against a real etcd 3.4: the same random requests, the same answers.

One seeded sequence of puts, deletes, ranges (every option), transactions (nested, over
ranges, refused ones) and compactions goes, request by request, to a fresh 3-node paxosd
cluster (any node, through /v3) and to a fresh single etcd member started by the test on
loopback. Every answer is compared field by field - revisions included; of the header only
the revision, since cluster, member and term are each server's own - and every refusal by
HTTP status, gRPC code and message.

Where etcd 3.4 and paxosd answer differently on purpose, the difference is named in
`DIFFERENCES` (and in docs/etcd-api.md) and the comparison allows exactly that; anything else
fails with the seed, the request number and the command that replays it.

Skips, saying why, where there is no etcd binary (CI installs etcd with bench/setup.sh).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.mvcc_store import needs_store

from .cluster import Cluster
from .etcd_server import EtcdServer, etcd_missing

pytestmark = [
    needs_store,
    pytest.mark.skipif(etcd_missing() is not None, reason=etcd_missing() or ""),
]

REPLAY = "tests/integration/test_etcd_differential.py"
SEEDS = [int(s) for s in os.environ.get("PAXOSD_DIFF_SEEDS", "1,2").split(",")]
REQUESTS = int(os.environ.get("PAXOSD_DIFF_REQUESTS", "150"))

# Few keys, so that ranges, compares and deletes meet each other; some are not UTF-8. At most
# 12, so that etcd's sort of a range (Go's sort.Sort: insertion sort below 13 items) is
# deterministic and can be compared.
KEYS = [b"a", b"a/1", b"a/2", b"a/3", b"b", b"b\x00", b"c", b"k", b"\xff", b"\xff\x01"]
VALUES = [b"", b"1", b"2", b"xyz", b"\x00\xff"]

# What paxosd answers differently from etcd 3.4 on purpose (docs/etcd-api.md).
DIFFERENCES = {
    "count_after_filters": "a range's count counts the keys that pass the min/max revision "
    "filters (etcd 3.4 counts the keys before its filters)",
    "descending_ties": "sorted DESCEND on a target other than KEY, keys with equal values "
    "come in descending key order, the exact reverse of ASCEND (etcd 3.4 keeps them in "
    "ascending key order for up to 12 keys, and in no defined order for more)",
    "sort_none_with_limit": "sort_order NONE with a sort_target other than KEY sorts "
    "ascending by that target before the limit cuts (etcd 3.4 cuts first: it sorts only the "
    "first limit + 1 keys in key order, then cuts)",
    "put_under_delete_to_end": "a transaction branch that puts a key and deletes a range to "
    "the end of the keyspace (range_end \\0) that holds it is refused as a duplicate key "
    "(etcd 3.4 misses the overlap and applies it)",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Requests:
    """A seeded source of etcd JSON requests over KEYS, aware of the store's revisions."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.revision = 1
        self.compacted = 0

    def seen(self, answer: dict[str, Any]) -> None:
        header = answer.get("header", {})
        if "revision" in header:
            self.revision = max(self.revision, int(header["revision"]))

    def key(self) -> bytes:
        return self.random.choice(KEYS)

    def a_revision(self) -> int:
        r = self.random
        choice = r.random()
        if choice < 0.4:
            return 0
        if choice < 0.5:
            return self.revision + r.randint(1, 3)  # the future
        if choice < 0.6 and self.compacted > 1:
            return r.randint(1, self.compacted - 1)  # compacted
        return r.randint(max(1, self.compacted), self.revision)

    def span(self, to_end: bool = True) -> dict[str, str]:
        """key and range_end: one key, a prefix, [a, b), or (`to_end`) everything from a key
        on."""
        r = self.random
        key = self.key()
        kind = r.random() * (1.0 if to_end else 0.8)
        if kind < 0.35:
            return {"key": b64(key)}
        if kind < 0.6:
            prefix = key[:1]
            end = bytes([prefix[0] + 1]) if prefix[0] < 0xFF else b"\x00"
            if end == b"\x00" and not to_end:
                return {"key": b64(prefix)}
            return {"key": b64(prefix), "range_end": b64(end)}
        if kind < 0.8:
            low, high = sorted((key, self.key()))
            return {"key": b64(low), "range_end": b64(high)}
        if kind < 0.9:
            return {"key": b64(key), "range_end": b64(b"\x00")}
        return {"key": b64(b"\x00"), "range_end": b64(b"\x00")}

    def range(self) -> dict[str, Any]:
        r = self.random
        body: dict[str, Any] = self.span()
        if r.random() < 0.4:
            body["limit"] = r.choice([1, 2, 3, "2", 0, -1])
        if r.random() < 0.3:
            body["revision"] = str(self.a_revision())
        if r.random() < 0.4:
            body["sort_order"] = r.choice(["NONE", "ASCEND", "DESCEND", 2])
        if r.random() < 0.4:
            body["sort_target"] = r.choice(["KEY", "VERSION", "CREATE", "MOD", "VALUE"])
            if body.get("sort_order", "NONE") == "NONE" and body.get("limit"):
                body["sort_order"] = "ASCEND"  # not etcd's sort_none_with_limit
        for flag in ("keys_only", "count_only"):
            if r.random() < 0.15:
                body[flag] = True
        for name in ("min_mod_revision", "max_mod_revision"):
            if r.random() < 0.1:
                body[name] = str(r.randint(1, self.revision))
        for name in ("min_create_revision", "max_create_revision"):
            if r.random() < 0.1:
                body[name] = str(r.randint(1, self.revision))
        return body

    def put(self) -> dict[str, Any]:
        r = self.random
        body: dict[str, Any] = {"key": b64(self.key())}
        choice = r.random()
        if choice < 0.08:
            body["ignore_value"] = True  # refused for a missing key
        else:
            value = r.choice(VALUES)
            if value:
                body["value"] = b64(value)
        if r.random() < 0.4:
            body["prev_kv"] = True
        return body

    def delete(self, to_end: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = self.span(to_end)
        if self.random.random() < 0.5:
            body["prev_kv"] = True
        return body

    def compare(self) -> dict[str, Any]:
        r = self.random
        target = r.choice(["VERSION", "CREATE", "MOD", "VALUE", "LEASE"])
        body: dict[str, Any] = {
            "key": b64(self.key()),
            "target": target,
            "result": r.choice(["EQUAL", "NOT_EQUAL", "GREATER", "LESS"]),
        }
        if target == "VALUE":
            body["value"] = b64(r.choice(VALUES))
        elif target == "VERSION":
            body["version"] = str(r.randint(0, 3))
        elif target == "LEASE":
            body["lease"] = "0"
        else:
            name = "create_revision" if target == "CREATE" else "mod_revision"
            body[name] = str(r.choice([0, r.randint(1, self.revision)]))
        if r.random() < 0.15:
            body.update(self.span())  # a compare over a range
            body.setdefault("range_end", b64(b"\x00"))
        return body

    def txn(self, depth: int = 0) -> dict[str, Any]:
        r = self.random
        body: dict[str, Any] = {"compare": [self.compare() for _ in range(r.randint(0, 3))]}
        for branch in ("success", "failure"):
            ops = []
            written: set[str] = set()
            for _ in range(r.randint(0, 3)):
                kind = r.random()
                if kind < 0.3:
                    ops.append({"request_range": self.range()})
                elif kind < 0.65:
                    put = self.put()
                    if put["key"] in written and r.random() < 0.8:
                        continue  # mostly avoid the (refused) duplicate key
                    written.add(put["key"])
                    ops.append({"request_put": put})
                elif kind < 0.85 or depth >= 2:
                    # Not to the end of the keyspace: see put_under_delete_to_end.
                    ops.append({"request_delete_range": self.delete(to_end=False)})
                else:
                    ops.append({"request_txn": self.txn(depth + 1)})
            if ops or r.random() < 0.5:
                body[branch] = ops
        return body

    def compaction(self) -> dict[str, Any]:
        r = self.random
        if r.random() < 0.2:
            revision = r.choice([self.compacted, self.revision + 1, 1])
        else:
            revision = r.randint(max(1, self.compacted), self.revision)
        return {"revision": str(revision)}

    def next(self) -> tuple[str, dict[str, Any]]:
        choice = self.random.random()
        if choice < 0.3:
            return "kv/put", self.put()
        if choice < 0.55:
            return "kv/range", self.range()
        if choice < 0.67:
            return "kv/deleterange", self.delete()
        if choice < 0.95:
            return "kv/txn", self.txn()
        return "kv/compaction", self.compaction()


# ---------------------------------------------------------------------------------------------
# Comparing answers


def comparable(answer: dict[str, Any]) -> Any:
    """An answer without what is each server's own: of every header, only the revision."""
    if isinstance(answer, dict):
        out = {}
        for name, value in answer.items():
            if name == "header":
                out[name] = {k: v for k, v in value.items() if k == "revision"}
            elif name != "paxosd":
                out[name] = comparable(value)
        return out
    if isinstance(answer, list):
        return [comparable(item) for item in answer]
    return answer


def has_filters(body: dict[str, Any]) -> bool:
    names = ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision")
    return any(int(body.get(name, 0)) for name in names)


def allow_differences(path: str, body: dict[str, Any], ours: Any, theirs: Any) -> None:
    """Apply DIFFERENCES: make `ours` say what etcd's says where the difference is named."""
    if path == "kv/range":
        _ranges(body, ours, theirs)
    elif path == "kv/txn":
        _txn_ranges(body, ours, theirs)


_SORT_VALUES = {
    "VERSION": lambda kv: int(kv.get("version", 0)),
    "CREATE": lambda kv: int(kv.get("create_revision", 0)),
    "MOD": lambda kv: int(kv.get("mod_revision", 0)),
    "VALUE": lambda kv: base64.b64decode(kv.get("value", "")),
}
_TARGETS = ["KEY", "VERSION", "CREATE", "MOD", "VALUE"]


def _ties_in_any_order(kvs: list[dict[str, Any]], target: str, more: bool) -> list[Any]:
    """descending_ties: the answer with each run of equal sort values in key order, and the
    last run, when the limit may have cut it, only by its value and length."""
    value = _SORT_VALUES[target]
    runs = [list(run) for _, run in itertools.groupby(kvs, key=value)]
    out: list[Any] = []
    for i, run in enumerate(runs):
        if more and i == len(runs) - 1:
            out.append(("cut", value(run[0]), len(run)))
        else:
            out.append(sorted(run, key=lambda kv: base64.b64decode(kv["key"])))
    return out


def _ranges(request: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    target = request.get("sort_target", "KEY")
    target = _TARGETS[target] if isinstance(target, int) else target
    if request.get("sort_order") in ("DESCEND", 2) and target != "KEY" and "kvs" in theirs:
        mine = _ties_in_any_order(ours.get("kvs", []), target, bool(ours.get("more")))
        etcds = _ties_in_any_order(theirs["kvs"], target, bool(theirs.get("more")))
        if mine == etcds:
            ours["kvs"] = theirs["kvs"]
    if has_filters(request) and "count" in theirs | ours:
        # count_after_filters: paxosd's count is the number of keys the filters passed.
        assert int(ours.get("count", 0)) <= int(theirs.get("count", 0))
        if "count" in theirs:
            ours["count"] = theirs["count"]
        else:
            ours.pop("count", None)


def _txn_ranges(request: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    branch = "success" if theirs.get("succeeded") else "failure"
    if ours.get("succeeded") != theirs.get("succeeded"):
        return  # a real difference: leave it to the comparison
    for op, mine, etcds in zip(
        request.get(branch, []),
        ours.get("responses", []),
        theirs.get("responses", []),
        strict=False,
    ):
        if "request_range" in op and "response_range" in mine and "response_range" in etcds:
            _ranges(op["request_range"], mine["response_range"], etcds["response_range"])
        if "request_txn" in op and "response_txn" in mine and "response_txn" in etcds:
            _txn_ranges(op["request_txn"], mine["response_txn"], etcds["response_txn"])


def answer(client: httpx.Client, url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.post(f"{url}/v3/{path}", content=json.dumps(body))
    result = {"status": reply.status_code, **comparable(reply.json())}
    if reply.status_code != 200:
        result = {name: result[name] for name in ("status", "code", "message")}
    return result


# ---------------------------------------------------------------------------------------------
# The test


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, EtcdServer]]:
    etcd = EtcdServer.start(tmp_path_factory.mktemp("etcd"))
    try:
        version = etcd.version()
        assert version is not None and version["etcdserver"].startswith("3.4."), version
        cluster = Cluster.start(tmp_path_factory.mktemp("paxosd"))
        try:
            yield cluster, etcd
        finally:
            cluster.stop()
    finally:
        etcd.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_same_answers_as_etcd(servers: tuple[Cluster, EtcdServer], seed: int) -> None:
    cluster, etcd = servers
    # Each seed starts from an empty keyspace on both: delete everything (one revision on
    # each, when there was something) and start the revisions' bookkeeping from etcd's.
    with httpx.Client(timeout=30) as client:
        everything = {"key": b64(b"\x00"), "range_end": b64(b"\x00")}
        nodes = [f"http://{address}" for address in cluster.endpoints()]
        start = [answer(client, url, "kv/deleterange", everything) for url in (nodes[0], etcd.url)]
        assert start[0] == start[1], f"seed {seed}: the stores differ before the run: {start}"
        requests = Requests(seed)
        requests.seen(start[1])
        for number in range(REQUESTS):
            path, body = requests.next()
            node = nodes[number % len(nodes)]
            theirs = answer(client, etcd.url, path, body)
            ours = answer(client, node, path, body)
            requests.seen(theirs)
            if path == "kv/compaction" and theirs["status"] == 200:
                requests.compacted = int(body["revision"])
            allow_differences(path, body, ours, theirs)
            assert ours == theirs, (
                f"seed {seed}, request {number}: POST /v3/{path} {json.dumps(body)}\n"
                f"  paxosd: {json.dumps(ours)}\n  etcd:   {json.dumps(theirs)}\n"
                f"replay: PAXOSD_DIFF_SEEDS={seed} PAXOSD_DIFF_REQUESTS={number + 1} "
                f"pytest {REPLAY}"
            )


def test_a_doubly_wrong_txn_names_its_puts_error_as_etcd_does(
    servers: tuple[Cluster, EtcdServer],
) -> None:
    """etcd checks a writing transaction's puts before its ranges, nested ones included: a
    transaction whose range reads a future revision and whose later (nested) put has
    ignore_value on a missing key is refused for the put, on both servers."""
    cluster, etcd = servers
    with httpx.Client(timeout=30) as client:
        urls = (f"http://{cluster.http(1)}", etcd.url)
        head = answer(client, etcd.url, "kv/range", {"key": b64(b"y/")})
        future = str(int(head["header"]["revision"]) + 5)
        put = {"key": b64(b"y/missing"), "ignore_value": True}
        body = {
            "success": [
                {"request_range": {"key": b64(b"y/"), "revision": future}},
                {"request_txn": {"success": [{"request_put": put}]}},
            ]
        }
        ours, theirs = (answer(client, url, "kv/txn", body) for url in urls)
        refused = {"status": 400, "code": 3, "message": "etcdserver: key not found"}
        assert ours == theirs == refused, (ours, theirs)


def test_leases_answer_as_etcd_s(servers: tuple[Cluster, EtcdServer]) -> None:
    """The Lease service, request by request on both servers, with ids the test names (so
    that both use the same ones): grant, put with the lease, time-to-live with keys,
    keep-alive, the list, revoke (the key goes), and the refusals. The time left may differ
    by a second (each server truncates what it measured); the header's revision is
    compared as a difference from each server's revision before the sequence."""
    cluster, etcd = servers
    urls = {"paxosd": f"http://{cluster.http(2)}", "etcd": etcd.url}
    with httpx.Client(timeout=30) as client:
        start = {
            name: int(answer(client, url, "kv/range", {"key": b64(b"l/")})["header"]["revision"])
            for name, url in urls.items()
        }

        def both(path: str, body: dict[str, Any]) -> dict[str, Any]:
            replies = {}
            for name, url in urls.items():
                reply = answer(client, url, path, body)
                if "header" in reply:
                    reply["header"] = int(reply["header"].get("revision", 0)) - start[name]
                result = reply.get("result")
                if isinstance(result, dict) and "header" in result:
                    result["header"] = int(result["header"].get("revision", 0)) - start[name]
                replies[name] = reply
            return replies

        def same(path: str, body: dict[str, Any], ttl_slack: bool = False) -> dict[str, Any]:
            replies = both(path, body)
            ours, theirs = replies["paxosd"], replies["etcd"]
            if ttl_slack and "TTL" in ours and "TTL" in theirs:
                assert abs(int(ours.pop("TTL")) - int(theirs.pop("TTL"))) <= 1, replies
            assert ours == theirs, f"POST /v3/{path} {json.dumps(body)}: {replies}"
            return theirs

        same("lease/grant", {"TTL": 60, "ID": 7001})
        same("kv/put", {"key": b64(b"l/a"), "value": b64(b"1"), "lease": "7001"})
        same("lease/timetolive", {"ID": 7001, "keys": True}, ttl_slack=True)
        same("kv/lease/timetolive", {"ID": "7001"}, ttl_slack=True)
        same("lease/keepalive", {"ID": 7001})
        same("lease/leases", {})
        same("lease/grant", {"TTL": 60, "ID": 7001})  # in use: lease already exists
        same("lease/grant", {"TTL": 9_000_000_001, "ID": 7002})  # too large
        same("kv/put", {"key": b64(b"l/b"), "value": b64(b"1"), "lease": "7009"})  # not found
        same("kv/lease/revoke", {"ID": 7001})
        same("kv/range", {"key": b64(b"l/a")})  # the key went with its lease
        same("lease/timetolive", {"ID": 7001})  # TTL -1
        same("lease/revoke", {"ID": 7001})  # not found
        same("lease/keepalive", {"ID": 7001})  # no TTL: the lease does not exist
        # Each raises a short TTL to its own minimum: 1.5 election timeouts, in whole
        # seconds (etcd's election timeout is 1 s here, paxosd's test cluster's shorter).
        raised = both("lease/grant", {"TTL": 0, "ID": 7003})
        assert int(raised["etcd"]["TTL"]) == 2 and 1 <= int(raised["paxosd"]["TTL"]) <= 2
        same("lease/revoke", {"ID": 7003})


def test_named_differences(servers: tuple[Cluster, EtcdServer]) -> None:
    """Each difference in DIFFERENCES, shown on both servers with keys of its own. (Last in
    the module: etcd applies a transaction paxosd refuses, so it leaves etcd a revision
    ahead.)"""
    cluster, etcd = servers
    urls = {"paxosd": f"http://{cluster.http(1)}", "etcd": etcd.url}
    with httpx.Client(timeout=30) as client:

        def both(path: str, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
            return {name: answer(client, url, path, body) for name, url in urls.items()}

        def keys(reply: dict[str, Any]) -> list[bytes]:
            return [base64.b64decode(kv["key"]) for kv in reply.get("kvs", [])]

        # Three keys written z/c, z/a, z/b: mod revisions z/c < z/a < z/b; equal values.
        for key in (b"z/c", b"z/a", b"z/b"):
            both("kv/put", {"key": b64(key), "value": b64(b"same")})
        span = {"key": b64(b"z/"), "range_end": b64(b"z0")}

        # sort_none_with_limit: sorted by MOD, sort_order NONE, cut at 1. etcd sorts only the
        # first 2 keys in key order (z/a, z/b).
        reply = both("kv/range", {**span, "sort_target": "MOD", "limit": 1})
        assert keys(reply["paxosd"]) == [b"z/c"]  # the smallest mod revision of all
        assert keys(reply["etcd"]) == [b"z/a"]

        # descending_ties: equal values, sorted DESCEND by VALUE.
        reply = both("kv/range", {**span, "sort_target": "VALUE", "sort_order": "DESCEND"})
        assert keys(reply["paxosd"]) == [b"z/c", b"z/b", b"z/a"]
        assert keys(reply["etcd"]) == [b"z/a", b"z/b", b"z/c"]

        # count_after_filters: min_mod_revision keeps only z/b.
        newest = max(int(kv["mod_revision"]) for kv in reply["etcd"]["kvs"])
        reply = both("kv/range", {**span, "min_mod_revision": str(newest)})
        assert keys(reply["paxosd"]) == keys(reply["etcd"]) == [b"z/b"]
        assert reply["paxosd"]["count"] == "1" and reply["etcd"]["count"] == "3"

        # put_under_delete_to_end (applied by etcd only: the last request of the module).
        body = {
            "success": [
                {"request_delete_range": {"key": b64(b"z/"), "range_end": b64(b"\x00")}},
                {"request_put": {"key": b64(b"z/n"), "value": b64(b"1")}},
            ]
        }
        reply = both("kv/txn", body)
        assert reply["paxosd"] == {
            "status": 400,
            "code": 3,
            "message": "etcdserver: duplicate key given in txn request",
        }
        assert reply["etcd"]["status"] == 200
