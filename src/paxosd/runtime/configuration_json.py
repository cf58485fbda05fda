"""A membership configuration as JSON: what `/v1/status` shows (whole, so that a node that
joins makes its store from it, cli/join.py) and what a removed node writes down of the
configuration that left it out (runtime/removal.py)."""

from __future__ import annotations

from typing import Any

from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.runtime import incarnation


def configuration_json(configuration: Configuration) -> dict[str, Any]:
    return {
        "epoch": configuration.epoch,
        "voters": list(configuration.voters),
        "learners": list(configuration.learners),
        "first_slot": configuration.first_slot,
        "joined": [
            {"id": j.node, "incarnation": incarnation.show(j.incarnation), "contact": j.contact}
            for j in configuration.joined
        ],
    }


def configuration_from_json(raw: dict[str, Any]) -> Configuration:
    """The configuration `configuration_json` gave (a missing first slot or joined list
    reads as the defaults). KeyError, TypeError or ValueError for anything else."""
    joined = tuple(
        Joined(entry["id"], incarnation.parse(entry["incarnation"]), entry["contact"])
        for entry in raw.get("joined") or []
    )
    return Configuration(
        tuple(raw["voters"]),
        tuple(raw["learners"]),
        raw["epoch"],
        raw.get("first_slot", 1),
        joined,
    )
