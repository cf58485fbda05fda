"""Keyspace notifications' pure parts: Redis's glob, and which keys a channel or pattern
needs watched."""

from __future__ import annotations

import pytest

from paxosd.api.resp_pubsub import _plan, glob_regex


@pytest.mark.parametrize(
    ("pattern", "channel", "matches"),
    [
        (b"__keyspace@0__:*", b"__keyspace@0__:a/b", True),
        (b"__key*__:*", b"__keyevent@0__:set", True),
        (b"h?llo", b"hello", True),
        (b"h?llo", b"heello", False),
        (b"h[ae]llo", b"hallo", True),
        (b"h[^e]llo", b"hello", False),
        (b"h[^e]llo", b"hallo", True),
        (b"h[a-b]llo", b"hbllo", True),
        (b"h[a-b]llo", b"hcllo", False),
        (b"a\\*b", b"a*b", True),
        (b"a\\*b", b"axb", False),
        (b"a*", b"a\nb", True),
    ],
)
def test_globs_match_as_redis_matches_them(pattern: bytes, channel: bytes, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(channel)) is matches


def test_what_each_subscription_watches() -> None:
    key_watch = _plan(b"__keyspace@0__:cfg/a", pattern=False)
    assert key_watch is not None and key_watch[0].key == b"cfg/a" and not key_watch[0].range_end
    prefix = _plan(b"__keyspace@0__:cfg/*", pattern=True)
    assert prefix is not None and (prefix[0].key, prefix[0].range_end) == (b"cfg/", b"cfg0")
    both = _plan(b"__key*__:*", pattern=True)
    assert both is not None and both[0].range_end == b"\0" and both[1] and both[2]
    assert _plan(b"__keyevent@0__:expired", pattern=False) is None
    assert _plan(b"news", pattern=False) is None
    assert _plan(b"news.*", pattern=True) is None
