"""`paxosd watch`: every change of a key, a prefix or a range, as it happens.

    paxosd watch config/mode                     # one key, from the next change on
    paxosd watch --prefix config/ --rev 120      # every key of a prefix, from revision 120
    paxosd watch --prefix jobs/ --prev-kv --json # one JSON object per change

Output, as etcdctl prints a watch: per change its type (PUT or DELETE), then (with --prev-kv)
the key and value before it, then the key and its value (empty for a DELETE), one per line;
with --json one object per change: type, key, value (or value_base64), revision, and prev.
Each line is flushed as it is printed, so a pipe sees every change at once.

The watch follows the cluster: when its node fails it resumes on another from the revision
after the last one printed, so a change is printed once, whatever fails. It runs until
Ctrl-C (exit 130), or until --limit changes were printed (exit 0). A revision the cluster has
compacted exits 2 naming the revision to re-list at; no node reachable (after the retries)
exits 2.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import click

from paxosd.cli.common import (
    ERROR,
    Failure,
    connected,
    endpoints_option,
    json_option,
    show,
)
from paxosd.client import WatchCompacted, WatchEvent
from paxosd.client.core import KeyValue

__all__ = ["watch"]


def _value(kv: KeyValue | None) -> dict[str, Any]:
    if kv is None:
        return {}
    if isinstance(kv.value, bytes):
        return {"value_base64": base64.b64encode(kv.value).decode()}
    return {"value": kv.value}


def _kv_json(kv: KeyValue) -> dict[str, Any]:
    return {
        "key": kv.key,
        **_value(kv),
        "create_revision": kv.create_revision,
        "mod_revision": kv.revision,
        "version": kv.version,
    }


def event_json(event: WatchEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"type": event.type, "key": event.key, "revision": event.revision}
    out.update(_value(event.kv))
    if event.kv is not None:
        out["create_revision"] = event.kv.create_revision
        out["version"] = event.kv.version
    if event.prev is not None:
        out["prev"] = _kv_json(event.prev)
    return out


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return show(value)


def event_text(event: WatchEvent, prev_kv: bool) -> str:
    lines = [event.type.upper()]
    if prev_kv and event.prev is not None:
        lines += [event.prev.key, _shown(event.prev.value)]
    lines += [event.key, _shown(event.value)]
    return "\n".join(lines)


@click.command()
@click.argument("key")
@click.option("--prefix", is_flag=True, help="Every key that starts with KEY.")
@click.option("--from-key", is_flag=True, help="Every key from KEY on.")
@click.option("--range-end", metavar="END", help="The keys in [KEY, END).")
@click.option(
    "--rev",
    type=click.IntRange(min=0),
    default=0,
    help="Start at this revision (past: replay the history still held). Default: the next.",
)
@click.option("--prev-kv", is_flag=True, help="Print each key's value before the change too.")
@click.option("--no-put", is_flag=True, help="Leave out puts.")
@click.option("--no-delete", is_flag=True, help="Leave out deletes.")
@click.option("--limit", type=click.IntRange(min=1), help="Exit after this many changes.")
@click.option(
    "--retries",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Failed connections in a row before giving up.",
)
@endpoints_option
@json_option
def watch(
    key: str, prefix: bool, from_key: bool, range_end: str | None, rev: int, prev_kv: bool,
    no_put: bool, no_delete: bool, limit: int | None, retries: int, endpoints: str,
    as_json: bool,
) -> None:  # fmt: skip
    """Print every change of KEY (or with --prefix, --from-key or --range-end, of a range) as
    it happens, from the next revision or from --rev. Runs until Ctrl-C or --limit."""
    if sum((prefix, from_key, range_end is not None)) > 1:
        raise Failure("give one of --prefix, --from-key and --range-end", code="usage")
    keys: dict[str, Any]
    if prefix:
        keys = {"prefix": key}
    elif from_key:
        keys = {"start": key}
    elif range_end is not None:
        keys = {"start": key, "end": range_end}
    else:
        keys = {"key": key}
    printed = 0
    with connected(endpoints, 10.0) as client:
        stream = client.watch(
            **keys,
            start_revision=rev,
            prev_kv=prev_kv,
            no_put=no_put,
            no_delete=no_delete,
            retries_max=retries,
        )
        try:
            with stream:
                for event in stream:
                    text = json.dumps(event_json(event)) if as_json else event_text(event, prev_kv)
                    click.echo(text)
                    sys.stdout.flush()
                    printed += 1
                    if limit is not None and printed >= limit:
                        return
        except WatchCompacted as error:
            at = error.compact_revision
            raise Failure(
                str(error),
                code="compacted",
                exit_code=ERROR,
                hint=f"list the keys at revision {at} or later (paxosd get ... --rev), then "
                "watch from the revision after it"
                if at
                else "list the keys again, then watch from the revision after the list",
            ) from None
