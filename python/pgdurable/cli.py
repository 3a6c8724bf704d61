"""The ``pgdurable`` command line (typer).

Every command that talks to a database takes ``--dsn``; without it the DSN
comes from ``PGDURABLE_DSN``, then ``DATABASE_URL``, else the embedded dev
server (``pgdurable dev``'s, started for the command if it is not running).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="pgdurable",
    help="pgdurable: durable workflows for Python, with the engine in Postgres.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the durable schema (alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="libpq connection string (URL or key=value). "
        "Default: $PGDURABLE_DSN, $DATABASE_URL, else the embedded dev server.",
        show_default=False,
    ),
]


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    dsn: DsnOption = None,
) -> None:
    """Upgrade the durable schema to REVISION (default: the latest)."""
    from pgdurable._migrate import current, migrate
    from pgdurable.embedded import dev_server

    with dev_server(dsn) as resolved:
        migrate(resolved, revision)
        console.print(f"durable schema at revision [bold]{current(resolved)}[/bold]")


@db_app.command("downgrade")
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
    from pgdurable.embedded import dev_server

    if revision == "base" and not yes:
        typer.confirm(
            "Downgrading to base drops the durable schema and every workflow in it. Continue?",
            abort=True,
        )
    with dev_server(dsn) as resolved:
        downgrade(resolved, revision)
        console.print(f"durable schema at revision [bold]{current(resolved)}[/bold]")


@db_app.command("current")
def db_current(dsn: DsnOption = None) -> None:
    """Print the revision the database is at ('none' if never migrated)."""
    from pgdurable._migrate import current
    from pgdurable.embedded import dev_server

    with dev_server(dsn) as resolved:
        revision = current(resolved)
    console.print(revision if revision is not None else "none")


@app.command("dev")
def dev(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory (default: the user data dir's pgdurable/embedded-18)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (default: the one used last time, else free).")
    ] = None,
    upgrade: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Upgrade the durable schema on start.")
    ] = True,
) -> None:
    """Run the embedded Postgres for development, print its DSN, serve until Ctrl-C."""
    from pgdurable._migrate import migrate
    from pgdurable.embedded import EmbeddedPostgres, default_data_dir

    server = EmbeddedPostgres(data_dir or default_data_dir(), port)
    with console.status("starting embedded Postgres..."):
        server.start()
    try:
        if upgrade:
            migrate(server.dsn())
        console.print(f"embedded Postgres running, data in {server.data_dir}")
        console.print(f"export PGDURABLE_DSN={server.dsn()}")
        console.print("Ctrl-C to stop.")
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        try:
            while not stopping.wait(1.0):
                if not server.is_running():
                    err_console.print(f"the server stopped unexpectedly; see {server.log_file}")
                    raise typer.Exit(1)
        except KeyboardInterrupt:
            pass
    finally:
        with console.status("stopping embedded Postgres..."):
            server.stop()
    console.print("stopped.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
