"""``pgdurable stream stats``: what waits and what moves on each stream (``durable.stream_stats``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pgdurable.cli._common import (
    DsnOption,
    JsonOption,
    console,
    friendly_errors,
    print_json,
    run_with_connection,
)

if TYPE_CHECKING:
    from pgdurable.connection import Connection

stream_app = typer.Typer(help="Look at streams (`pgdurable stream stats`).", no_args_is_help=True)


@stream_app.command("stats")
@friendly_errors
def stream_stats(
    namespace: Annotated[str | None, typer.Option("--namespace", "-n",
                                                  help="Only this namespace's streams (default: all).")]
    = None,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Per stream: tasks queued (visible now), delayed, running (leased), how long the oldest
    queued one has waited, and how many started and failed in the last minute.

    Run it as the engine's owner (worker roles may not read it).
    """
    from pgdurable import _store as store

    async def body(connection: Connection) -> list[dict[str, Any]]:
        return await connection.run(lambda conn: store.stream_stats(conn, namespace))

    rows = [{**row, "oldest_queued_age": None if row["oldest_queued_age"] is None
             else row["oldest_queued_age"].total_seconds()} for row in run_with_connection(dsn, body)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no streams" + ("" if namespace is None else f" in namespace {namespace!r}"),
                      highlight=False)
        return
    table = Table()
    for column in ("namespace", "stream", "queued", "delayed", "running", "oldest queued (s)",
                   "started /min", "failed /min"):
        table.add_column(column, overflow="fold")
    for row in rows:
        age = row["oldest_queued_age"]
        table.add_row(escape(row["namespace"]), escape(row["stream"]), str(row["queued"]),
                      str(row["delayed"]), str(row["running"]), "" if age is None else f"{age:.1f}",
                      str(row["started_last_minute"]), str(row["failed_last_minute"]))
    console.print(table)
