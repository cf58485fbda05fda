"""`paxosd get|del|txn|compact`: the key-value store from the command line, one key or many.

    paxosd get config/mode                       # one key's value (exit 1 if missing)
    paxosd get --prefix config/ --limit 10       # keys and values, etcdctl's layout
    paxosd get --prefix jobs/ --sort-by create --order descend --keys-only
    paxosd get config/mode --rev 5               # as it was at revision 5
    paxosd del --prefix tmp/                     # every key of a prefix, one revision
    paxosd txn < script.txt                      # etcdctl's text form (cli/txn_text.py)
    paxosd txn --file txn.json                   # /v1/txn's JSON
    paxosd compact 1200                          # forget the history before 1200

Output: one key prints its value; several print each key then its value on the next line, as
etcdctl does (`--keys-only`: keys only; `--count-only`: the count). With --json, the API's
answer. Exit codes as every verb's (paxosd.cli.common): a missing key, and a transaction
whose compares failed (its failure requests ran), exit 1.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import click

from paxosd.cli.common import (
    NO,
    Failure,
    connected,
    emit,
    endpoints_option,
    json_option,
    show,
    timeout_option,
)
from paxosd.cli.txn_text import TxnSyntaxError, parse
from paxosd.client.core import KeyValue
from paxosd.client.kv import DeleteResult, PutResult, RangeResult, TxnResult

__all__ = ["compact", "delete", "get", "txn"]

_SORT_BY = click.Choice(
    ["KEY", "VERSION", "CREATE", "MODIFY", "MOD", "VALUE"], case_sensitive=False
)
_ORDER = click.Choice(["ASCEND", "DESCEND"], case_sensitive=False)


def _kv_json(kv: KeyValue, keys_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"key": kv.key}
    if not keys_only:
        if isinstance(kv.value, bytes):
            out["value_base64"] = base64.b64encode(kv.value).decode()
        else:
            out["value"] = kv.value
    out.update(
        create_revision=kv.create_revision,
        mod_revision=kv.revision,
        version=kv.version,
        lease=kv.lease,
    )
    return out


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return show(value)


def _range_text(found: RangeResult, keys_only: bool, count_only: bool) -> str:
    if count_only:
        return str(found.count)
    lines: list[str] = []
    for kv in found.kvs:
        lines.append(kv.key)
        if not keys_only:
            lines.append(_shown(kv.value))
    return "\n".join(lines)


def _range_json(found: RangeResult, keys_only: bool) -> dict[str, Any]:
    return {
        "revision": found.revision,
        "count": found.count,
        "more": found.more,
        "kvs": [_kv_json(kv, keys_only) for kv in found.kvs],
    }


@click.command()
@click.argument("key")
@click.option("--prefix", is_flag=True, help="Every key that starts with KEY.")
@click.option("--from-key", is_flag=True, help="Every key from KEY on.")
@click.option("--range-end", metavar="END", help="The keys in [KEY, END).")
@click.option("--limit", type=click.IntRange(min=0), default=0, help="At most N keys.")
@click.option("--rev", type=click.IntRange(min=0), default=0, help="As of this revision.")
@click.option("--sort-by", type=_SORT_BY, help="Sort by this (default: the key).")
@click.option("--order", type=_ORDER, help="ASCEND or DESCEND.")
@click.option("--keys-only", is_flag=True, help="Print keys only.")
@click.option("--count-only", is_flag=True, help="Print the number of keys only.")
@click.option("--serializable", is_flag=True, help="This node's state, without a quorum.")
@endpoints_option
@json_option
@timeout_option
def get(
    key: str, prefix: bool, from_key: bool, range_end: str | None, limit: int, rev: int,
    sort_by: str | None, order: str | None, keys_only: bool, count_only: bool,
    serializable: bool, endpoints: str, as_json: bool, timeout: float,
) -> None:  # fmt: skip
    """Print KEY's value (linearizable), or with --prefix, --from-key or --range-end the
    keys and values of a range. Exit 1 if KEY alone does not exist."""
    many = prefix or from_key or range_end is not None
    if sum((prefix, from_key, range_end is not None)) > 1:
        raise Failure("give one of --prefix, --from-key and --range-end", code="usage")
    options: dict[str, Any] = {
        "limit": limit,
        "revision": rev,
        "keys_only": keys_only,
        "count_only": count_only,
        "serializable": serializable,
    }
    if sort_by is not None:
        options["sort_by"] = "mod" if sort_by.lower() == "modify" else sort_by.lower()
    if order is not None:
        options["order"] = order.lower()
    simple = not many and not rev and not serializable and not keys_only and not count_only
    with connected(endpoints, timeout) as client:
        if simple:
            found_one = client.get(key)
            if found_one is None:
                emit(as_json, {"key": key, "value": None, "revision": 0}, f"{key}: not found")
                sys.exit(NO)
            data = {"key": found_one.key, "value": found_one.value, "revision": found_one.revision}
            emit(as_json, data, _shown(found_one.value))
            return
        if prefix:
            found = client.range(prefix=key, **options)
        elif from_key:
            found = client.range(key, **options)
        elif range_end is not None:
            found = client.range(key, range_end, **options)
        else:
            found = client.range(key=key, **options)
    if not many and not found.kvs and not count_only:
        emit(as_json, _range_json(found, keys_only), f"{key}: not found")
        sys.exit(NO)
    emit(as_json, _range_json(found, keys_only), _range_text(found, keys_only, count_only))


@click.command()
@click.argument("key")
@click.option("--prefix", is_flag=True, help="Every key that starts with KEY.")
@click.option("--from-key", is_flag=True, help="Every key from KEY on.")
@click.option("--range-end", metavar="END", help="The keys in [KEY, END).")
@click.option("--prev-kv", is_flag=True, help="Print the deleted keys and values.")
@endpoints_option
@json_option
@timeout_option
def delete(
    key: str, prefix: bool, from_key: bool, range_end: str | None, prev_kv: bool,
    endpoints: str, as_json: bool, timeout: float,
) -> None:  # fmt: skip
    """Delete KEY, or with --prefix, --from-key or --range-end every key of a range, in one
    revision. Exit 0 whether or not anything existed; the output says what was deleted."""
    if sum((prefix, from_key, range_end is not None)) > 1:
        raise Failure("give one of --prefix, --from-key and --range-end", code="usage")
    with connected(endpoints, timeout) as client:
        if not (prefix or from_key or range_end is not None or prev_kv):
            existed = client.delete(key)
            text = "deleted" if existed else "no such key"
            emit(as_json, {"key": key, "existed": existed}, text)
            return
        if prefix:
            result = client.delete(prefix=key, prev_kv=prev_kv)
        elif from_key:
            result = client.delete(start=key, prev_kv=prev_kv)
        elif range_end is not None:
            result = client.delete(start=key, end=range_end, prev_kv=prev_kv)
        else:  # the key alone, as the range [key, key + "\0")
            result = client.delete(start=key, end=key + "\0", prev_kv=prev_kv)
    lines = [str(result.deleted)]
    for kv in result.prev_kvs:
        lines += [kv.key, _shown(kv.value)]
    emit(as_json, _delete_json(result), "\n".join(lines))


def _delete_json(result: DeleteResult) -> dict[str, Any]:
    out: dict[str, Any] = {"revision": result.revision, "deleted": result.deleted}
    if result.prev_kvs:
        out["prev_kvs"] = [_kv_json(kv) for kv in result.prev_kvs]
    return out


@click.command()
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the transaction as /v1/txn's JSON from this file ('-': standard input).",
)
@click.option(
    "-i",
    "--interactive",
    is_flag=True,
    help="Prompt for each part of the text form on standard error.",
)
@click.option("--string", "as_string", is_flag=True, help="Take values as text, not JSON.")
@endpoints_option
@json_option
@timeout_option
def txn(
    path: Path | None, interactive: bool, as_string: bool, endpoints: str, as_json: bool,
    timeout: float,
) -> None:  # fmt: skip
    """Run a transaction read from standard input in etcdctl's text form: compares, a blank
    line, the requests to run if they all hold, a blank line, the requests to run if not.
    Prints SUCCESS or FAILURE, then each request's answer. Exit 1 on FAILURE."""
    try:
        if path is not None:
            text = sys.stdin.read() if str(path) == "-" else path.read_text()
            body = json.loads(text)
            if not isinstance(body, dict):
                raise Failure("the transaction file must hold a JSON object", code="bad_request")
        else:
            prompt = (lambda name: click.echo(f"{name}:", err=True)) if interactive else None
            body = parse(sys.stdin, as_string, prompt)
    except (OSError, ValueError) as exc:  # TxnSyntaxError is a ValueError
        where = "the transaction" if isinstance(exc, TxnSyntaxError) else "--file"
        raise Failure(f"{where}: {exc}", code="bad_request") from None
    with connected(endpoints, timeout) as client:
        result = client.txn(body).commit()
    emit(as_json, _txn_json(result), _txn_text(result))
    if not result.succeeded:
        sys.exit(NO)


def _txn_json(result: TxnResult) -> dict[str, Any]:
    responses: list[dict[str, Any]] = []
    for answer in result.responses:
        if isinstance(answer, RangeResult):
            responses.append({"range": _range_json(answer, False)})
        elif isinstance(answer, PutResult):
            put: dict[str, Any] = {"revision": answer.revision}
            if answer.prev_kv is not None:
                put["prev_kv"] = _kv_json(answer.prev_kv)
            responses.append({"put": put})
        elif isinstance(answer, DeleteResult):
            responses.append({"delete": _delete_json(answer)})
        else:
            responses.append({"txn": _txn_json(answer)})
    return {"revision": result.revision, "succeeded": result.succeeded, "responses": responses}


def _txn_text(result: TxnResult) -> str:
    lines = ["SUCCESS" if result.succeeded else "FAILURE"]
    for answer in result.responses:
        lines.append("")
        if isinstance(answer, RangeResult):
            lines.append(_range_text(answer, False, False))
        elif isinstance(answer, PutResult):
            lines.append("OK")
        elif isinstance(answer, DeleteResult):
            lines.append(str(answer.deleted))
        else:
            lines.append(_txn_text(answer))
    return "\n".join(lines)


@click.command()
@click.argument("revision", type=click.IntRange(min=1))
@endpoints_option
@json_option
@timeout_option
def compact(revision: int, endpoints: str, as_json: bool, timeout: float) -> None:
    """Forget every version of every key superseded before REVISION: reads below it are
    refused from then on."""
    with connected(endpoints, timeout) as client:
        current = client.compact(revision)
    emit(
        as_json,
        {"revision": current, "compact_revision": revision},
        f"compacted revision {revision}",
    )
