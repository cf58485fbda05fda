"""The clients' watch logic without I/O (client/watch.py): where the next connection goes,
what each Server-Sent Event means, and the bounded retry policy."""

from __future__ import annotations

import json
import random

import pytest

from paxosd.client import BadRequest, Unavailable, WatchCompacted
from paxosd.client.watch import EventParser, WatchState

ENDPOINTS = ["http://a:1", "http://b:2", "http://c:3"]


def state(**options: object) -> WatchState:
    made = WatchState.make(ENDPOINTS, None, prefix="p/", **options)  # type: ignore[arg-type]
    made.rng = random.Random(1)
    made.turn = 0
    return made


def test_a_watch_from_the_next_revision_is_pinned_by_created_then_resumes_after_the_last() -> None:
    watch = state()
    assert "start_revision" not in watch.url()
    watch.message("created", json.dumps({"watch_id": 1, "revision": 9, "start_revision": 10}))
    assert watch.revision == 9  # a reconnect before any change asks for 10, not "the next"
    events = watch.message(
        "message",
        json.dumps({"revision": 12, "events": [{"type": "put", "key": "p/a", "value": 1,
                    "create_revision": 12, "mod_revision": 12, "version": 1, "lease": 0}]}),
    )  # fmt: skip
    assert [(e.type, e.key, e.value, e.revision) for e in events] == [("put", "p/a", 1, 12)]
    watch.message("progress", json.dumps({"revision": 15}))
    watch.failed("the node went away")
    assert "start_revision=16" in watch.url() and watch.url().startswith("http://b:2")


def test_cancellations_resume_where_told_or_end_as_compacted() -> None:
    watch = state(start_revision=5)
    assert "start_revision=5" in watch.url()
    watch.message("cancelled", json.dumps({"reason": "slow", "message": "", "resume_revision": 20,
                                           "compact_revision": 0}))  # fmt: skip
    assert watch.revision == 19
    compacted = {"reason": "compacted", "message": "re-list", "resume_revision": 20,
                 "compact_revision": 30}  # fmt: skip
    with pytest.raises(WatchCompacted) as raised:
        watch.message("cancelled", json.dumps(compacted))
    assert raised.value.compact_revision == 30 and raised.value.revision == 19
    with pytest.raises(WatchCompacted):
        watch.refused(204, b"")


def test_retries_are_bounded_and_a_created_resets_them() -> None:
    watch = state(retries_max=3)
    watch.failed("one")
    watch.message("created", json.dumps({"start_revision": 1}))
    watch.failed("two")
    watch.failed("three")
    with pytest.raises(Unavailable, match="after 3 attempts"):
        watch.failed("four")


def test_a_definite_refusal_is_a_bad_request_and_a_busy_node_is_retried() -> None:
    watch = state()
    with pytest.raises(BadRequest, match="bad_request"):
        watch.refused(400, json.dumps({"error": "bad_request", "message": "no"}).encode())
    assert watch.refused(503, b"{}") > 0


@pytest.mark.parametrize("start", [-1, "5"])
def test_a_malformed_start_revision_is_refused_before_anything_is_sent(start: object) -> None:
    with pytest.raises(BadRequest, match="start_revision"):
        WatchState.make(ENDPOINTS, "k", start_revision=start)  # type: ignore[arg-type]


def test_server_sent_events_are_parsed_as_browsers_parse_them() -> None:
    parser = EventParser()
    lines = ["retry: 1000", "event: created", 'data: {"a":', "data: 1}", "", ": keepalive",
             "", "id: 7", 'data: {"b": 2}', ""]  # fmt: skip
    found = [m for m in (parser.line(line) for line in lines) if m is not None]
    assert found == [("created", '{"a":\n1}'), ("message", '{"b": 2}')]
