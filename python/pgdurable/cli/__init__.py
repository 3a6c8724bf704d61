"""The ``pgdurable`` command line (typer).

Every command that talks to a database takes ``--dsn``; without it the DSN
comes from ``PGDURABLE_DSN``, then ``DATABASE_URL``, else the embedded dev
server (``pgdurable dev``'s, started for the command if it is not running,
and stopped again afterwards).

Expected failures (no server, no schema, unknown workflow, ...) print one
line on stderr and exit with status 1; ``--json`` output goes alone to
stdout, so scripts can parse it.

This module builds :data:`app` from the command groups (one module each: ``db``, ``dev`` (dev and
demo), ``worker``, ``workflow``, ``roles``, ``stream``, ``schedule``, ``replay``, ``ui``) and owns
the options every command has (``-v``, ``--version``); what the commands share is in ``_common``,
how they render workflows in ``tables``.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from pgdurable.cli import dev as _dev
from pgdurable.cli import replay as _replay
from pgdurable.cli import ui as _ui
from pgdurable.cli import worker as _worker
from pgdurable.cli._common import err_console
from pgdurable.cli.db import db_app
from pgdurable.cli.roles import roles_app
from pgdurable.cli.schedule import schedule_app
from pgdurable.cli.stream import stream_app
from pgdurable.cli.workflow import workflow_app

__all__ = ["app", "configure_logging", "main"]

app = typer.Typer(
    name="pgdurable",
    help="pgdurable: durable workflows for Python, with the engine in Postgres.\n\n"
    "New here? Run `pgdurable demo`.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(workflow_app, name="workflow")
app.command("dev")(_dev.dev)
app.command("demo")(_dev.demo)
app.add_typer(_worker.worker_app, name="worker")
app.add_typer(roles_app, name="roles", help="Provision, list, rotate and revoke scoped worker roles.")
app.add_typer(stream_app, name="stream")
app.add_typer(schedule_app, name="schedule")
app.command("replay")(_replay.replay)
app.command("ui")(_ui.ui)


# -- logging and the options of every command -------------------------------------

_log_handler: logging.Handler | None = None


def configure_logging(verbosity: int) -> None:
    """Warnings only by default; ``-v`` shows pgdurable's INFO lines, ``-vv`` its DEBUG lines
    and other libraries' INFO lines. Log lines go to stderr."""
    global _log_handler
    from rich.logging import RichHandler

    root = logging.getLogger()
    if _log_handler is not None:
        root.removeHandler(_log_handler)
    _log_handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
    _log_handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root.addHandler(_log_handler)
    root.setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)
    # Without -v, pgdurable's loggers inherit the root's WARNING.
    pgdurable_level = {0: logging.NOTSET, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.getLogger("pgdurable").setLevel(pgdurable_level)


def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"pgdurable {version('pgdurable')}")
        except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
            typer.echo("pgdurable (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True,
                     help="Show pgdurable's INFO log lines on stderr (-vv: DEBUG)."),
    ] = 0,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = None,
) -> None:
    configure_logging(verbose)


def main() -> None:
    """The console script: run :data:`app`."""
    app()
