"""``pgdurable stream stats``: what waits and what moves on each stream (``durable.stream_stats``);
``pgdurable stream limits``: a stream's flow control limits (``durable.set_stream_limits``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pgdurable.cli._common import (
    DsnOption,
    JsonOption,
    NamespaceOption,
    console,
    friendly_errors,
    print_json,
    run_with_connection,
    with_client,
)

if TYPE_CHECKING:
    from pgdurable.client import Client
    from pgdurable.connection import Connection

stream_app = typer.Typer(help="Look at streams and limit them (`pgdurable stream stats|limits`).",
                         no_args_is_help=True)


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


def parse_rate(text: str) -> tuple[int, float]:
    """``N/PERIOD`` (``20/s``, ``10/second``, ``100/1m``, ``5/2.5s``): the count and the period in
    seconds. ``typer.BadParameter`` names what is wrong."""
    from pgdurable.durations import to_seconds

    count, sep, period = text.partition("/")
    if not sep or not count.strip().isdigit() or not period.strip():
        raise typer.BadParameter(f"{text!r} is not N/PERIOD: write e.g. 20/s, 10/second or 100/1m",
                                 param_hint="--rate")
    period = period.strip()
    if not period[0].isdigit() and period[0] != ".":
        period = "1 " + period  # "20/s": one second
    try:
        seconds = to_seconds(period, what="rate period")
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}", param_hint="--rate") from None
    if int(count) < 1 or seconds <= 0:
        raise typer.BadParameter(f"{text!r}: give at least 1 per a period longer than zero, e.g. 20/s",
                                 param_hint="--rate")
    return int(count), seconds


@stream_app.command("limits")
@friendly_errors
def stream_limits(
    stream: Annotated[str, typer.Argument(help="The stream: a task queue (workflow tasks) or "
                                               "<task_queue>-activity (activity attempts).")],
    max_running: Annotated[int | None, typer.Option(
        "--max-running", min=0, help="At most N tasks of the stream running (leased) at once, across all "
                                     "workers; 0 pauses the stream.")] = None,
    rate: Annotated[str | None, typer.Option(
        "--rate", help="At most N claims started in any window of PERIOD (sliding), e.g. 20/s, 10/second, "
                       "100/1m.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every limit of the stream.")] = False,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Show a stream's limits, or change them: the options given are set, the others kept
    (`--clear` removes them all). Running workers apply a change at once.

    Run it as the engine's owner (worker roles may not change limits).
    """
    if clear and (max_running is not None or rate is not None):
        raise typer.BadParameter("give --clear alone, or the limits to set", param_hint="--clear")
    parsed_rate = None if rate is None else parse_rate(rate)

    async def body(client: Client) -> dict[str, Any]:
        current = next((row for row in await client.stream_limits() if row["stream"] == stream), None)
        if clear:
            await client.set_stream_limits(stream)
        elif max_running is not None or parsed_rate is not None:
            keep = current or {"max_running": None, "rate_limit": None, "rate_period": None}
            await client.set_stream_limits(
                stream,
                max_running=keep["max_running"] if max_running is None else max_running,
                rate_limit=keep["rate_limit"] if parsed_rate is None else parsed_rate[0],
                rate_period=keep["rate_period"] if parsed_rate is None else parsed_rate[1])
        else:
            return current or {"stream": stream, "max_running": None, "rate_limit": None, "rate_period": None}
        after = next((row for row in await client.stream_limits() if row["stream"] == stream), None)
        return after or {"stream": stream, "max_running": None, "rate_limit": None, "rate_period": None}

    limits = {"namespace": namespace, **with_client(dsn, namespace, body)}
    if as_json:
        print_json(limits)
        return
    running = "no limit" if limits["max_running"] is None else str(limits["max_running"])
    rate_text = ("no limit" if limits["rate_limit"] is None
                 else f"{limits['rate_limit']} per {limits['rate_period']:g} s (sliding)")
    console.print(f"stream {escape(stream)} (namespace {escape(namespace)}): max running: {running}; "
                  f"rate: {rate_text}", highlight=False)
