"""``pgdurable db upgrade|downgrade|current|prune``: the durable schema (alembic migrations) and
retention."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pgdurable.cli._common import DsnOption, JsonOption, console, database, friendly_errors, print_json

db_app = typer.Typer(help="Manage the durable schema (alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    dsn: DsnOption = None,
) -> None:
    """Upgrade the durable schema to REVISION (default: the latest)."""
    from pgdurable._migrate import current, migrate

    with database(dsn) as resolved:
        migrate(resolved, revision)
        console.print(f"durable schema at revision [bold]{current(resolved)}[/bold]")


@db_app.command("downgrade")
@friendly_errors
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision; 'base' removes the engine and all its data.")
    ],
    dsn: DsnOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask before downgrading to base.")
    ] = False,
) -> None:
    """Downgrade the durable schema to REVISION."""
    from pgdurable._migrate import current, downgrade

    if revision == "base" and not yes:
        typer.confirm(
            "Downgrading to base drops the durable schema and every workflow in it. Continue?",
            abort=True,
        )
    with database(dsn) as resolved:
        downgrade(resolved, revision)
        console.print(f"durable schema at revision [bold]{current(resolved)}[/bold]")


@db_app.command("current")
@friendly_errors
def db_current(dsn: DsnOption = None) -> None:
    """Print the revision the database is at ('none' if never migrated)."""
    from pgdurable._migrate import current

    with database(dsn) as resolved:
        revision = current(resolved)
    console.print(revision if revision is not None else "none")


@db_app.command("prune")
@friendly_errors
def db_prune(
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Retention: remove runs closed longer ago than this ('30 days', '12h').")],
    namespace: Annotated[str | None, typer.Option(help="Only this namespace (default: all).")] = None,
    batch: Annotated[int, typer.Option(help="Runs removed per transaction.", min=1)] = 1000,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Remove closed workflows (and their history) older than the retention, in bounded batches
    that never block running work; also drops expired buffered signals. Same as
    `SELECT durable.prune('30 days')` in psql."""
    from datetime import timedelta

    from pgdurable import Durable
    from pgdurable.connection import Connection
    from pgdurable.durations import to_seconds

    try:
        retention = timedelta(seconds=to_seconds(older_than, what="--older-than"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None

    async def run(resolved: str) -> int:
        connection = Connection(resolved, pool_size=1)
        try:
            return await Durable.prune(connection, retention, namespace, batch)
        finally:
            await connection.close()

    with database(dsn) as resolved:
        total = asyncio.run(run(resolved))
    if as_json:
        print_json({"removed_runs": total, "older_than_seconds": retention.total_seconds()})
    else:
        console.print(f"removed {total} closed workflow run(s) older than {older_than}")
