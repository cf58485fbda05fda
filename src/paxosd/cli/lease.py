"""`paxosd lease grant|revoke|keep-alive|timetolive|list`: etcdctl's lease commands.

Lease ids are printed and read in hexadecimal, as etcdctl prints and reads them, so an id
copied from one tool works in the other; `--json` gives the id as a number too, as `/v1` and
the client use it. TTLs are seconds of the cluster's log time (docs/leases.md): a lease ends
when the leader's log time passes its deadline, never by this machine's clock.
"""

from __future__ import annotations

import time
from typing import Any

import click

from paxosd.cli.common import (
    NO,
    Failure,
    Seconds,
    connected,
    emit,
    endpoints_option,
    json_option,
    timeout_option,
)
from paxosd.client import LeaseNotFound

__all__ = ["LeaseId", "lease"]


class LeaseId(click.ParamType):
    """A lease id in hexadecimal, as etcdctl prints it (`694d5765fc71500b`, `0x` allowed)."""

    name = "lease id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().removeprefix("0x")
        try:
            number = int(text, 16)
        except ValueError:
            self.fail(
                f"{value!r} is not a lease id (hexadecimal, as `lease grant` prints it)",
                param,
                ctx,
            )
        if not 0 < number < 2**63:
            self.fail(f"{value!r} is out of range (1 to 7fffffffffffffff)", param, ctx)
        return number


LEASE_ID = LeaseId()


def _hex(lease_id: int) -> str:
    return format(lease_id, "x")


def _ttl_s(ttl_ms: int) -> int:
    """etcdctl's whole seconds (rounded up: a lease with 300 ms left has not ended)."""
    return -(-ttl_ms // 1000)


@click.group()
def lease() -> None:
    """Leases: keys put with one are deleted when it ends (revoked, or not kept alive)."""


@lease.command()
@click.argument("ttl", type=Seconds(0, positive=True))
@click.option("--id", "lease_id", type=LEASE_ID, default=None, help="Ask for this id (hex).")
@endpoints_option
@json_option
@timeout_option
def grant(ttl: float, lease_id: int | None, endpoints: str, as_json: bool, timeout: float) -> None:
    """A lease of TTL seconds; prints its id. Attach keys with `paxosd put --lease ID`."""
    with connected(endpoints, timeout) as client:
        granted = client.grant(ttl, lease_id=lease_id or 0)
    emit(
        as_json,
        {"id": granted, "id_hex": _hex(granted), "ttl_s": ttl},
        f"lease {_hex(granted)} granted with TTL({ttl:g}s)",
    )


@lease.command()
@click.argument("lease_id", metavar="ID", type=LEASE_ID)
@endpoints_option
@json_option
@timeout_option
def revoke(lease_id: int, endpoints: str, as_json: bool, timeout: float) -> None:
    """End lease ID now; its keys are deleted in one revision. Exit 1 if it had ended."""
    with connected(endpoints, timeout) as client:
        existed = client.revoke(lease_id)
    if not existed:
        raise Failure(
            f"lease {_hex(lease_id)} not found (revoked, or ended by time)",
            code="lease_not_found",
            exit_code=NO,
        )
    emit(as_json, {"id": lease_id, "revoked": True}, f"lease {_hex(lease_id)} revoked")


@lease.command(name="keep-alive")
@click.argument("lease_id", metavar="ID", type=LEASE_ID)
@click.option("--once", is_flag=True, help="Renew once and exit (default: until Ctrl-C).")
@endpoints_option
@json_option
@timeout_option
def keep_alive(lease_id: int, once: bool, endpoints: str, as_json: bool, timeout: float) -> None:
    """Renew lease ID to its full TTL, a third of the TTL apart, until Ctrl-C (or once).
    Exit 1 as soon as the lease is found ended: its keys are gone."""
    with connected(endpoints, timeout) as client:
        while True:
            try:
                ttl_ms = client.keep_alive(lease_id)
            except LeaseNotFound:
                raise Failure(
                    f"lease {_hex(lease_id)} expired or revoked: its keys are deleted",
                    code="lease_not_found",
                    exit_code=NO,
                ) from None
            emit(
                as_json,
                {"id": lease_id, "ttl_s": ttl_ms / 1000},
                f"lease {_hex(lease_id)} keepalived with TTL({_ttl_s(ttl_ms)})",
            )
            if once:
                return
            try:
                time.sleep(max(ttl_ms / 3000, 0.1))
            except KeyboardInterrupt:
                return


@lease.command()
@click.argument("lease_id", metavar="ID", type=LEASE_ID)
@click.option("--keys", is_flag=True, help="Also list the keys attached to it.")
@endpoints_option
@json_option
@timeout_option
def timetolive(lease_id: int, keys: bool, endpoints: str, as_json: bool, timeout: float) -> None:
    """How long lease ID has left, of what it was granted (and its keys, with --keys)."""
    with connected(endpoints, timeout) as client:
        found = client.time_to_live(lease_id, keys=keys)
    if found is None:
        emit(as_json, {"id": lease_id, "ttl_s": -1}, f"lease {_hex(lease_id)} already expired")
        raise SystemExit(NO)
    left, granted = _ttl_s(found["ttl_ms"]), _ttl_s(found["granted_ttl_ms"])
    text = f"lease {_hex(lease_id)} granted with TTL({granted}s), remaining({left}s)"
    if keys:
        names = [k.get("key") if isinstance(k, dict) else k for k in found.get("keys", [])]
        text += f", attached keys([{' '.join(str(name) for name in names)}])"
    emit(as_json, found, text)


@lease.command(name="list")
@endpoints_option
@json_option
@timeout_option
def list_leases(endpoints: str, as_json: bool, timeout: float) -> None:
    """Every live lease's id."""
    with connected(endpoints, timeout) as client:
        ids = client.leases()
    lines = [f"found {len(ids)} leases", *(_hex(i) for i in ids)]
    emit(as_json, {"ids": ids, "ids_hex": [_hex(i) for i in ids]}, "\n".join(lines))
