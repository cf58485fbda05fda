"""`GET /v1/members`: the cluster's members as this node knows them.

Who is a member, and whether it votes, comes from the node's configuration (the value its
store was made for, core/multi/configuration.py); each entry adds its addresses (from the
config file, or from the record of a member that joined through the log), its store's
incarnation when it joined through the log, whether this node is connected to it, and, when
it refuses this node's peer connection, why (a protocol version too old or too new, another
cluster, a lost store). The leader is this node's view of it.

`POST /v1/members` with a `join` object (`{"id": 4, "incarnation": "hex", "contact": "peer=H:P
http=H:P resp=H:P"}`) adds a new node as a learner with its identity: what `paxosd node
--join` asks the leader for.
`paxosd member list` asks one node for this, then each member for its own progress.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from paxosd.core.multi.busy import Busy
from paxosd.core.multi.configuration import Joined
from paxosd.runtime import incarnation

from .calls import Call
from .failures import ApiError

_NO_STORE = {"Cache-Control": "no-store"}


def members_view(status: dict[str, Any]) -> dict[str, Any]:
    """The members part of a node's status, as /v1/members answers it."""
    configuration = status.get("configuration") or {}
    voters = set(configuration.get("voters", []))
    learners = set(configuration.get("learners", []))
    identities = {j.get("id"): j.get("incarnation") for j in configuration.get("joined") or []}
    members = []
    for member in status.get("members", []):
        entry = dict(member)
        node = entry.get("id")
        voting = "voter" if node in voters else "learner" if node in learners else "removed"
        entry["voting"] = voting
        if node in identities:
            entry["incarnation"] = identities[node]
        members.append(entry)
    return {
        "cluster_id": status.get("cluster_id"),
        "answered_by": status.get("node_id"),
        "leader": status.get("leader"),
        "epoch": configuration.get("epoch"),
        "protocol": status.get("protocol"),
        "members": members,
    }


async def members(call: Call) -> web.Response:
    return web.json_response(members_view(call.node.status()), headers=_NO_STORE)


async def change_members(call: Call) -> web.Response:
    """Ask this node, the leader, to change the members to `voters` and `learners` through
    the log (core/multi/epochs.py); 202 once the change is under way (`epoch` in `GET
    /v1/members` says when it is done)."""
    body = call.body
    lists = []
    for name in ("voters", "learners"):
        value = body.get(name, [])
        if type(value) is not list or not all(type(v) is int for v in value):
            raise ApiError(400, "bad_request", f"{name} must be a list of node ids")
        lists.append(value)
    voters, learners = lists
    joining = _joining(body.get("join"))
    refused = call.node.change_members(voters, learners, joining)
    if refused:
        raise _refusal(refused)
    status = call.node.status()
    epoch = (status.get("configuration") or {}).get("epoch", 0) + 1
    reply = {"epoch": epoch, "voters": sorted(voters), "learners": sorted(learners),
             "state": "changing"}  # fmt: skip
    return web.json_response(reply, status=202, headers=_NO_STORE)


def _joining(value: Any) -> Joined | None:
    """The `join` object of a change: the node that joins, with its identity."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"id", "incarnation", "contact"}:
        raise ApiError(400, "bad_request", 'join must be {"id", "incarnation", "contact"}')
    node, text, contact = value["id"], value["incarnation"], value["contact"]
    if type(text) is not str:
        raise ApiError(400, "bad_request", "join.incarnation must be hex text")
    try:
        return Joined(node, incarnation.parse(text), contact)
    except ValueError as error:
        raise ApiError(400, "bad_request", f"join: {error}") from None


async def transfer_leader(call: Call) -> web.Response:
    """Ask this node, the leader, to hand leadership to `to` (core/multi/transfer.py); 202
    once the handover has begun (`GET /v1/status`'s leader says when it is done)."""
    target = call.body["to"]
    refused = call.node.transfer_leadership(target)
    if refused is not None:
        raise _refusal(refused)
    body = {"from": call.node.node_id, "to": target, "state": "handing over"}
    return web.json_response(body, status=202, headers=_NO_STORE)


def _refusal(reason: str) -> ApiError:
    """409 "busy" for a refusal that passes by itself (core/multi/busy.py: ask the leader
    again shortly), 409 "refused" for one that stays until the request changes."""
    return ApiError(409, "busy" if isinstance(reason, Busy) else "refused", reason)
