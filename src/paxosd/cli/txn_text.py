"""`paxosd txn`'s text form, which is etcdctl's: compares, a blank line, the success
requests, a blank line, the failure requests.

    mod("jobs/7") = "0"
    value("config/mode") = "fast"

    put jobs/7 '{"owner": "w1"}'
    get --prefix jobs/

    get jobs/7

A compare is `TARGET("KEY") OP "OPERAND"`: TARGET one of value (val), version (ver),
create (c), mod (m), lease; OP one of =, !=, <, >; the key and the operand double-quoted (Go
and JSON escapes). A request is a `put KEY VALUE`, `get KEY [OPTIONS]` or `del KEY [OPTIONS]`
line; words may be quoted with '...' or "...". get takes --prefix, --from-key, --range-end,
--limit, --rev, --sort-by, --order, --keys-only, --count-only; del takes --prefix,
--from-key, --range-end, --prev-kv; put takes --prev-kv. Values are read as `paxosd put`
reads them: JSON if they parse (1, [1,2], "a"), else text; with `strings` always text.

`parse` returns the transaction as /v1/txn's JSON; a line it cannot read raises
`TxnSyntaxError` naming the line.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ["TxnSyntaxError", "parse", "parse_compare", "parse_request"]

_COMPARE: Final = re.compile(
    r"""^\s*(?P<target>[a-z]+)\(\s*(?P<key>"(?:[^"\\]|\\.)*")\s*\)\s*"""
    r"""(?P<op>!=|=|<|>)\s*(?P<operand>"(?:[^"\\]|\\.)*")\s*$"""
)
_TARGETS: Final = {
    "value": ("value", "value"),
    "val": ("value", "value"),
    "version": ("version", "version"),
    "ver": ("version", "version"),
    "create": ("create", "create_revision"),
    "c": ("create", "create_revision"),
    "mod": ("mod", "mod_revision"),
    "m": ("mod", "mod_revision"),
    "lease": ("lease", "lease"),
}
_SORTS: Final = {"key": "key", "version": "version", "create": "create", "modify": "mod",
                 "mod": "mod", "value": "value"}  # fmt: skip


class TxnSyntaxError(ValueError):
    def __init__(self, line: str, reason: str) -> None:
        super().__init__(f"{reason}: {line.strip()!r}")
        self.line = line
        self.reason = reason


def _unquote(quoted: str, line: str) -> str:
    try:
        text = json.loads(quoted)
    except ValueError:
        raise TxnSyntaxError(line, f"cannot read the quoted text {quoted}") from None
    assert isinstance(text, str)
    return text


def _value(text: str, strings: bool) -> Any:
    if strings:
        return text
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return text


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def parse_compare(line: str, strings: bool = False) -> dict[str, Any]:
    found = _COMPARE.match(line)
    if found is None:
        raise TxnSyntaxError(line, 'not a compare like mod("key") > "5"')
    target = _TARGETS.get(found["target"])
    if target is None:
        raise TxnSyntaxError(
            line, f"unknown target {found['target']} (value, version, create, mod, lease)"
        )
    name, operand_name = target
    key = _unquote(found["key"], line)
    operand = _unquote(found["operand"], line)
    body: dict[str, Any] = {"key": key, "target": name, "result": found["op"]}
    if name == "value":
        body["value"] = _value(operand, strings)
    else:
        try:
            body[operand_name] = int(operand, 10)
        except ValueError:
            raise TxnSyntaxError(
                line, f"{name} compares with an integer, not {operand!r}"
            ) from None
    return body


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise TxnSyntaxError(line, f"cannot split it into words ({exc})") from None


def _keys(key: str, options: dict[str, Any], line: str) -> dict[str, str]:
    if options.pop("prefix", False):
        return {"prefix": key}
    if options.pop("from_key", False):
        return {"start": key}
    end = options.pop("range_end", None)
    if end is not None:
        return {"start": key, "end": end}
    return {"key": key}


def _options(
    words: list[str], flags: set[str], valued: set[str], line: str
) -> tuple[list[str], dict[str, Any]]:
    positional: list[str] = []
    options: dict[str, Any] = {}
    items = iter(words)
    for word in items:
        if not word.startswith("--"):
            positional.append(word)
            continue
        name, _, attached = word[2:].partition("=")
        name = name.replace("-", "_")
        if name in flags:
            options[name] = True
        elif name in valued:
            value = attached or next(items, None)
            if value is None:
                raise TxnSyntaxError(line, f"--{name.replace('_', '-')} needs a value")
            options[name] = value
        else:
            raise TxnSyntaxError(line, f"unknown option {word.split('=')[0]}")
    return positional, options


def parse_request(line: str, strings: bool = False) -> dict[str, Any]:
    words = _words(line)
    if not words:
        raise TxnSyntaxError(line, "empty request")
    verb, rest = words[0], words[1:]
    if verb == "put":
        positional, options = _options(rest, {"prev_kv"}, set(), line)
        if len(positional) != 2:
            raise TxnSyntaxError(line, "put takes a key and a value")
        body: dict[str, Any] = {"key": positional[0], "value": _value(positional[1], strings)}
        if options.get("prev_kv"):
            body["prev_kv"] = True
        return {"put": body}
    if verb in ("get", "del", "delete"):
        deleting = verb != "get"
        flags = {"prefix", "from_key"} | ({"prev_kv"} if deleting else
                                           {"keys_only", "count_only"})  # fmt: skip
        valued = {"range_end"} | (set() if deleting else {"limit", "rev", "sort_by", "order"})
        positional, options = _options(rest, flags, valued, line)
        if len(positional) != 1:
            raise TxnSyntaxError(line, f"{verb} takes one key")
        keys = _keys(positional[0], options, line)
        if deleting:
            return {"delete": {**keys, **({"prev_kv": True} if options.get("prev_kv") else {})}}
        body = dict(keys)
        for name, converted in (("limit", "limit"), ("rev", "revision")):
            if name in options:
                try:
                    body[converted] = int(options[name], 10)
                except ValueError:
                    raise TxnSyntaxError(line, f"--{name} takes an integer") from None
        if "sort_by" in options:
            sort = _SORTS.get(options["sort_by"].lower())
            if sort is None:
                raise TxnSyntaxError(line, f"--sort-by {options['sort_by']}: not a sort target")
            body["sort"] = sort
        if "order" in options:
            body["order"] = options["order"].lower()
        for flag in ("keys_only", "count_only"):
            if options.get(flag):
                body[flag] = True
        return {"range": body}
    raise TxnSyntaxError(line, f"unknown request {verb!r} (put, get, del)")


def parse(
    lines: Iterable[str],
    strings: bool = False,
    prompt: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The transaction in etcdctl's text form (see the module docstring). `prompt`, if given,
    is called with each section's name before it is read (interactive use)."""
    sections: list[list[str]] = [[], [], []]
    names = ("compares", "success requests (get, put, del)", "failure requests (get, put, del)")
    lines = iter(lines)
    for index, section in enumerate(sections):
        if prompt is not None:
            prompt(names[index])
        for line in lines:
            if not line.strip():
                break
            section.append(line.rstrip("\n"))
    compares, success, failure = sections
    return {
        "compare": [parse_compare(line, strings) for line in compares],
        "success": [parse_request(line, strings) for line in success],
        "failure": [parse_request(line, strings) for line in failure],
    }
