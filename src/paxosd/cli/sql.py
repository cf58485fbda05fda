"""`paxosd sql`: the SQL database from the command line, one command (`-c`) or a shell.

Output is sqlite3's list mode: each row's values joined by `|` (`--header` adds the column
names), NULL as an empty value; `--json` prints each statement's answer as JSON instead. In
the shell, a statement ends at its `;` and may span lines; `.tables` lists the tables,
`.schema` prints their SQL, `.begin` / `.commit` / `.rollback` run an interactive transaction,
`.quit` leaves. History is kept in ~/.paxosd_sql_history. Exit codes: 0 done, 2 an error
(a statement failed: SQLite's message on stderr; a transaction's conflict too).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import click

from paxosd.cli.common import Failure, endpoints_option, json_option, timeout_option

__all__ = ["sql"]

HISTORY = Path.home() / ".paxosd_sql_history"
_LEVELS = ("none", "weak", "linearizable", "strong")


def statements(text: str) -> list[str]:
    """`text` cut into statements where SQLite says one is complete (a trigger stays whole)."""
    found = []
    buffer = ""
    for char in text:
        buffer += char
        if char == ";" and sqlite3.complete_statement(buffer):
            found.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        found.append(buffer.strip())
    return found


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.hex().upper()
    return str(value)


def run(connection: Any, sql: str, *, header: bool, as_json: bool) -> None:
    cursor = connection.execute(sql)
    if as_json:
        columns = [d[0] for d in cursor.description or ()]
        rows = [[_shown(v) if isinstance(v, bytes) else v for v in row] for row in cursor]
        answer: dict[str, Any] = {"rows_affected": max(cursor.rowcount, 0)}
        if columns:
            answer = {"columns": columns, "rows": rows}
        click.echo(json.dumps(answer))
        return
    if cursor.description is None:
        return
    if header:
        click.echo("|".join(d[0] for d in cursor.description))
    for row in cursor:
        click.echo("|".join(_shown(v) for v in row))


def _dot(connection: Any, command: str, header: bool, as_json: bool) -> bool:
    """Run a dot command; False for .quit."""
    word = command.split()[0].lower()
    if word in (".quit", ".exit"):
        return False
    if word == ".tables":
        run(connection, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE "
            "'sqlite_%' ORDER BY name", header=False, as_json=as_json)  # fmt: skip
    elif word == ".schema":
        run(connection, "SELECT sql || ';' FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY "
            "rowid", header=False, as_json=as_json)  # fmt: skip
    elif word == ".begin":
        connection.isolation_level = ""
        click.echo("(a transaction begins at its first write; .commit or .rollback ends it)")
    elif word == ".commit":
        connection.commit()
        connection.isolation_level = None
    elif word == ".rollback":
        connection.rollback()
        connection.isolation_level = None
    else:
        click.echo(f"unknown command {word}: .tables .schema .begin .commit .rollback .quit",
                   err=True)  # fmt: skip
    return True


def shell(connection: Any, header: bool, as_json: bool) -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - not every Python has it
        readline = None  # type: ignore[assignment]
    if readline is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(HISTORY)
    import paxosd.sql as driver

    click.echo('paxosd sql: statements end with ";"; .tables .schema .begin .commit .quit')
    buffer = ""
    try:
        while True:
            try:
                line = input("...> " if buffer else "sql> ")
            except EOFError:
                click.echo()
                break
            if not buffer and line.strip().startswith("."):
                if not _dot(connection, line.strip(), header, as_json):
                    break
                continue
            buffer += line + "\n"
            if not sqlite3.complete_statement(buffer):
                continue
            for statement in statements(buffer):
                try:
                    run(connection, statement, header=header, as_json=as_json)
                except driver.Error as exc:
                    click.echo(f"error: {exc}", err=True)
            buffer = ""
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(HISTORY)


@click.command()
@click.option("-c", "command", help="Run these statements (separated by ';') and exit.")
@click.option("--header", is_flag=True, help="Print the column names first.")
@click.option(
    "--level",
    type=click.Choice(_LEVELS),
    default="linearizable",
    show_default=True,
    help="How current a read must be (docs/sql.md).",
)
@endpoints_option
@json_option
@timeout_option
def sql(
    command: str | None, header: bool, level: str, endpoints: str, as_json: bool, timeout: float
) -> None:
    """Run SQL on the cluster's replicated database: -c "..." or an interactive shell."""
    import paxosd.sql as driver

    connection = driver.connect(endpoints, timeout=timeout, level=level, autocommit=True)
    try:
        if command is None:
            shell(connection, header, as_json)
            return
        for statement in statements(command):
            try:
                run(connection, statement, header=header, as_json=as_json)
            except driver.Error as exc:
                raise Failure(str(exc), code=type(exc).__name__) from None
    finally:
        connection.close()
