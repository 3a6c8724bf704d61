"""``pgdurable dev`` (the embedded Postgres for development) and ``pgdurable demo`` (the seed's
order workflow end to end on it)."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pgdurable.cli._common import DsnOption, console, database, err_console, friendly_errors


@friendly_errors
def dev(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory (default: the user data dir's pgdurable/embedded-18)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (default: $PGDURABLE_DEV_PORT, else the one used last "
                                      "time, else a free one).")
    ] = None,
    upgrade: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Upgrade the durable schema on start.")
    ] = True,
) -> None:
    """Run the embedded Postgres for development, print its DSN, serve until Ctrl-C."""
    from pgdurable._migrate import migrate
    from pgdurable.embedded import EmbeddedPostgres, default_data_dir, dev_port

    server = EmbeddedPostgres(data_dir or default_data_dir(), port or dev_port())
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


@friendly_errors
def demo(
    dsn: DsnOption = None,
    orders: Annotated[int, typer.Option(min=1, max=20, help="How many order workflows to run.")] = 5,
) -> None:
    """Run the seed's order workflow end to end, live: workers, retries, timers, a signal.

    Migrates the database, starts workers in this process, starts ORDERS order
    workflows (one of whose payments fails once and is retried) and one that
    waits for a manager's approval signal, shows their progress, then their
    results and one workflow's history. Everything it does stays in the
    database: look at it afterwards with `pgdurable workflow list`.
    """
    from pgdurable import demo as demo_module
    from pgdurable._migrate import migrate

    with database(dsn) as resolved:
        with err_console.status("migrating the durable schema..."):
            migrate(resolved)
        ok = asyncio.run(demo_module.run(resolved, console=console, orders=orders))
    hint = " --dsn ..." if dsn else ""
    console.print(f"\nAll of it is in Postgres. Next: [bold]pgdurable workflow list{hint}[/bold], "
                  f"[bold]pgdurable workflow history{hint} <id>[/bold], or the dashboard: "
                  f"[bold]pgdurable ui{hint}[/bold]; the code is in "
                  f"{escape(demo_module.__file__ or 'pgdurable/demo.py')}.", highlight=False)
    if not ok:
        raise typer.Exit(1)
