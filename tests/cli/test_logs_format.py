"""Operator log lines: one record, one line, in the format asked for."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from paxosd.runtime import logs

KV_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) ")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The process's logging as `setup()` leaves it, written to a buffer; put back after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    try:
        yield out
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_kv_lines_carry_an_iso_utc_time_the_level_the_node_the_event_and_its_fields(
    stream: io.StringIO,
) -> None:
    logs.setup("info", "kv", node_id=2, stream=stream)
    logs.event(logging.getLogger("paxosd.node"), "leader_changed", leader=3, ballot="7.3")
    [line] = lines(stream)
    assert KV_LINE.match(line), line
    assert line.split(" ", 2)[2] == "node=2 event=leader_changed leader=3 ballot=7.3"


def test_json_lines_are_one_object_each_with_the_same_facts(stream: io.StringIO) -> None:
    logs.setup("info", "json", node_id=2, stream=stream)
    logs.event(logging.getLogger("paxosd.node"), "peer_lost", logging.WARNING, peer=3, for_s=1.5)
    [line] = lines(stream)
    record = json.loads(line)
    assert record.pop("ts").endswith("Z")
    assert record == {
        "level": "WARNING", "node": 2, "event": "peer_lost", "peer": 3, "for_s": 1.5,
    }  # fmt: skip


def test_values_with_spaces_quotes_or_newlines_stay_one_token(stream: io.StringIO) -> None:
    logs.setup("info", "kv", stream=stream)
    logs.event(logging.getLogger("t"), "x", reason='disk "full"\nretrying', empty="", flag=True)
    [line] = lines(stream)
    assert line.endswith('event=x reason="disk \\"full\\"\\nretrying" empty="" flag=true')


def test_a_plain_log_record_and_its_traceback_stay_on_one_line(stream: io.StringIO) -> None:
    logs.setup("info", "kv", node_id=1, stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("paxosd.api").exception("request failed")
    [line] = lines(stream)
    assert 'node=1 logger=paxosd.api msg="request failed" traceback=' in line
    assert "ValueError: boom" in line


def test_records_below_the_level_are_not_written(stream: io.StringIO) -> None:
    logs.setup("warning", "kv", stream=stream)
    logs.event(logging.getLogger("t"), "quiet")
    logs.event(logging.getLogger("t"), "loud", logging.ERROR)
    assert [line.split(" ", 2)[2] for line in lines(stream)] == ["event=loud"]


def test_setup_twice_does_not_double_the_lines(stream: io.StringIO) -> None:
    logs.setup("info", "kv", stream=stream)
    logs.setup("info", "kv", stream=stream)
    logs.event(logging.getLogger("t"), "once")
    assert len(lines(stream)) == 1


def test_a_field_named_like_a_key_of_the_line_is_kept_under_another_name(
    stream: io.StringIO,
) -> None:
    logs.setup("info", "json", node_id=1, stream=stream)
    logs.event(logging.getLogger("t"), "x", msg="hi", node=4, ts=5)
    record = json.loads(lines(stream)[0])
    assert (record["level"], record["node"]) == ("INFO", 1)
    assert (record["msg_"], record["node_"], record["ts_"]) == ("hi", 4, 5)


def test_a_line_about_a_node_from_outside_it_names_the_node(stream: io.StringIO) -> None:
    logs.setup("info", "kv", stream=stream)  # the supervisor: no node of its own
    logs.event(logging.getLogger("paxosd.up"), "node_exited", node=3, code=-9)
    assert lines(stream)[0].endswith("event=node_exited node=3 code=-9")


def test_unknown_levels_and_formats_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="use one of debug, info, warning, error"):
        logs.setup("loud", "kv")
    with pytest.raises(ValueError, match="use one of kv, json"):
        logs.setup("info", "xml")
