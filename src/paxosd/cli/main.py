"""The `paxosd` command."""

from __future__ import annotations

import importlib
from typing import Any

import click

from paxosd.cli.common import ERROR, Failure, remember_argv, wants_json

# Subcommands live in their own modules and are imported only when used, so `paxosd --help`
# stays fast and one broken subcommand cannot take the others down.
SUBCOMMANDS = {
    "lab": ("paxosd.cli.lab", "lab", "The book's algorithms in a deterministic simulator."),
    "check": ("paxosd.cli.check", "command", "Check a recorded history for linearizability."),
    "sim": ("paxosd.cli.sim", "command", "The Multi-Paxos engine in the simulator, under faults."),
    "init": ("paxosd.cli.init", "command", "Make the stores of a new cluster's nodes."),
    "node": ("paxosd.cli.node", "command", "Run one node of a cluster."),
    "up": ("paxosd.cli.up", "command", "Start a local cluster of separate processes."),
    "rebuild": ("paxosd.cli.rebuild", "command", "Rebuild a lost node through `paxosd up`."),
    "reseed": ("paxosd.cli.reseed", "command", "Two lost stores: copy a survivor (data loss)."),
    "logs": ("paxosd.cli.logs", "command", "Print or follow the logs of `paxosd up`'s nodes."),
    "chaos": ("paxosd.cli.chaos", "command", "Fault-test a real local cluster; check histories."),
    "get": ("paxosd.cli.kv", "get", "Print a key's value, or a range's (linearizable)."),
    "put": ("paxosd.cli.verbs", "put", "Set a key."),
    "delete": ("paxosd.cli.kv", "delete", "Delete a key, or a prefix or range of keys."),
    "del": ("paxosd.cli.kv", "delete", "The same as delete (etcdctl's name)."),
    "txn": ("paxosd.cli.kv", "txn", "Run a transaction (etcdctl's text form, or JSON)."),
    "compact": ("paxosd.cli.kv", "compact", "Forget the history before a revision."),
    "watch": ("paxosd.cli.watch", "watch", "Print every change of a key or a range as it happens."),
    "cas": ("paxosd.cli.verbs", "cas", "Compare and set a key."),
    "lease": ("paxosd.cli.lease", "lease", "Grant, keep alive, revoke and list leases."),
    "lock": ("paxosd.cli.locks", "lock", "Take a lock (optionally while a command runs)."),
    "unlock": ("paxosd.cli.locks", "unlock", "Release a lock."),
    "lock-status": ("paxosd.cli.locks", "lock_status", "Who holds a lock, and its token."),
    "register": ("paxosd.cli.verbs", "register", "Claim a unique name."),
    "elect": ("paxosd.cli.elect", "elect", "Lead an election while a command runs; observe one."),
    "instances": ("paxosd.cli.elect", "instances", "Register live instances; list, watch them."),
    "lookup": ("paxosd.cli.verbs", "lookup", "Who owns a name."),
    "propose": ("paxosd.cli.verbs", "propose", "The book's propose(): offer a value."),
    "query": ("paxosd.cli.verbs", "query", "The book's query(): the chosen value."),
    "snapshot": ("paxosd.cli.snapshot", "snapshot", "Back up a running cluster; restore a backup."),
    "member": (
        "paxosd.cli.member",
        "member",
        "The members: voters, learners, each one's progress.",
    ),
    "status": ("paxosd.cli.status", "status", "Every node's role, leader, ballot, slots."),
    "sql": ("paxosd.cli.sql", "sql", "Run SQL on the replicated database (-c, or a shell)."),
    "endpoint": ("paxosd.cli.status", "endpoint", "Per-endpoint checks: `endpoint health`."),
    "bench": ("paxosd.cli.bench", "command", "Benchmark against etcd, ZooKeeper, PySyncObj."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, _ = entry
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        remember_argv(ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Every usage error of every verb as one line, `error: ...` (JSON with --json), exit
        2; Ctrl-C ends quietly with 130, as a shell reports an interrupted command."""
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            where = error.ctx.command_path if error.ctx is not None else ctx.command_path
            raise Failure(
                f"{error.format_message()} (see '{where} --help')",
                code="usage",
                exit_code=ERROR,
                as_json=wants_json(ctx),
            ) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None


@click.group(cls=LazyGroup)
@click.version_option(package_name="paxosd")
def main() -> None:
    """paxosd: fault-tolerant consensus you can run, use and learn from."""
