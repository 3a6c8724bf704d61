"""The ``pgdurable`` command line (typer).

Every command that talks to a database takes ``--dsn``; without it the DSN
comes from ``PGDURABLE_DSN``, then ``DATABASE_URL``, else the embedded dev
server (``pgdurable dev``'s, started for the command if it is not running,
and stopped again afterwards).

Expected failures (no server, no schema, unknown workflow, ...) print one
line on stderr and exit with status 1; ``--json`` output goes alone to
stdout, so scripts can parse it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pgdurable.cli_roles import roles_app

if TYPE_CHECKING:
    from pgdurable.client import Client

P = ParamSpec("P")
T = TypeVar("T")

app = typer.Typer(
    name="pgdurable",
    help="pgdurable: durable workflows for Python, with the engine in Postgres.\n\n"
    "New here? Run `pgdurable demo`.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the durable schema (alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
workflow_app = typer.Typer(
    help="Inspect and steer workflows: list, show, history, start, signal, cancel, interrupt. "
    "Tables by default; --json for scripts. An id that starts with '-' goes after '--' "
    "(pgdurable workflow show -- -x1).",
    no_args_is_help=True,
)
app.add_typer(workflow_app, name="workflow")
# `pgdurable roles provision|list|rotate|revoke` (the DBA's worker-role commands) live
# in cli_roles.py; roles_app is registered at the end of this module.

console = Console()
err_console = Console(stderr=True)

log = logging.getLogger("pgdurable.cli")

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="libpq connection string (URL or key=value). "
        "Default: $PGDURABLE_DSN, $DATABASE_URL, else the embedded dev server.",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str, typer.Option("--namespace", "-n", help="The namespace the workflows live in.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of a table.")
]


# -- logging and errors ---------------------------------------------------------

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


class CliError(Exception):
    """An expected failure: printed as one line, exit status 1."""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe_error(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, or None for a bug (shown with its traceback)."""
    import psycopg

    from pgdurable import errors
    from pgdurable._dsn import MissingDsnError
    from pgdurable.embedded import EmbeddedPostgresError

    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:  # pragma: no cover - sqlalchemy comes with alembic
        DBAPIError = ()  # type: ignore[assignment,misc]  # noqa: N806

    if isinstance(exc, DBAPIError) and isinstance(exc.orig, BaseException):
        exc = exc.orig
    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, psycopg.OperationalError):
        return f"cannot connect to the database: {_one_line(str(exc))}"
    if isinstance(exc, ConnectionError):  # Connection's wrapping of the above
        return _one_line(str(exc))
    if isinstance(exc, psycopg.Error):
        return f"database error: {_one_line(exc.diag.message_primary or str(exc))}"
    if isinstance(exc, (errors.DurableError, MissingDsnError)):
        return _one_line(str(exc))
    if isinstance(exc, EmbeddedPostgresError):
        return str(exc)  # several lines: the server log's tail helps
    return None


def _friendly_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Turns expected failures into one line on stderr and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise
        except Exception as exc:
            message = describe_error(exc)
            if message is None:
                raise
            err_console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True,
                              highlight=False)
            raise typer.Exit(1) from None

    return wrapper


# -- databases and clients ------------------------------------------------------

@contextlib.contextmanager
def _database(dsn: str | None) -> Iterator[str]:
    """The DSN to use: ``--dsn``, the environment, else the embedded dev server (started for the
    block and stopped after it, unless it was already running, e.g. under ``pgdurable dev``)."""
    from pgdurable._dsn import find_dsn

    found = find_dsn(dsn)
    if found is not None:
        yield found
        return
    from pgdurable.embedded import EmbeddedPostgres, default_data_dir

    server = EmbeddedPostgres(default_data_dir())
    was_running = server.is_running()
    if not was_running:
        first = not server.is_initialized()
        with err_console.status("initialising the embedded Postgres (first run only)..." if first
                                else "starting the embedded Postgres..."):
            server.start()
    log.info("using the embedded Postgres at %s (data in %s)", server.dsn(), server.data_dir)
    try:
        yield server.dsn()
    finally:
        if not was_running:
            server.stop()


def _with_client(dsn: str | None, namespace: str, body: Callable[[Client], Awaitable[T]]) -> T:
    """Runs ``body(client)`` on a fresh event loop against the resolved database."""
    from pgdurable import Client, Connection

    async def main(resolved: str) -> T:
        connection = Connection(resolved, pool_size=2)
        try:
            return await body(Client(connection=connection, namespace=namespace))
        finally:
            await connection.close()

    with _database(dsn) as resolved:
        return asyncio.run(main(resolved))


def to_jsonable(value: Any) -> Any:
    """``json.dumps`` default: timestamps as ISO 8601, UUID and Decimal as strings, bytes as base64."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot print a {type(value).__name__} as JSON")


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=to_jsonable, indent=2, ensure_ascii=False))


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=to_jsonable, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _time(value: Any) -> str:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return "" if value is None else str(value)


_STATUS_STYLE = {"running": "yellow", "completed": "green", "failed": "red", "cancelled": "magenta",
                 "interrupted": "red", "continued": "cyan"}


def styled_status(status: str) -> str:
    """A status coloured for a rich table."""
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def describe_event(event: dict[str, Any]) -> str:
    """One history event's details as a short line (the history table's last column)."""
    etype, d = event["event_type"], event.get("details") or {}
    error = d.get("error") if isinstance(d.get("error"), dict) else None
    err = f"{error.get('type')}: {error.get('message')}" if error else ""
    if etype == "workflow_started":
        return f"{d.get('workflow_name')} on {d.get('task_queue')!r}, attempt {d.get('attempt')}"
    if etype == "activity_scheduled":
        args = json.dumps(d.get("args") or [], default=to_jsonable, ensure_ascii=False)[1:-1]
        return f"{d.get('activity_name')}({_short(args, 50)})"
    if etype == "activity_failed":
        tail = "no more attempts" if d.get("maxed") else f"retry in {d.get('retry_in_seconds')} s"
        return f"attempt {d.get('attempt')}: {err} ({tail})"
    if etype == "activity_completed":
        return f"attempt {d.get('attempt')} → {_short(d.get('result'))}"
    if etype == "timer_started":
        return f"{d.get('seconds')} s"
    if etype == "timer_fired":
        return f"due at {_time(d.get('due_at'))}" if d.get("due_at") else ""
    if etype == "signal_wait_started":
        timeout = d.get("timeout")
        return f"{d.get('signal_id')!r}" + (f", timeout {timeout} s" if timeout is not None else "")
    if etype in ("signal_received", "signal_sent"):
        return f"{d.get('signal_id')!r}: {_short(d.get('data'))}"
    if etype in ("child_started", "child_completed", "child_failed"):
        outcome = _short(d.get("result")) if etype == "child_completed" else err
        return " ".join(str(x) for x in (d.get("workflow_name") or "", d.get("workflow_id"), outcome) if x)
    if etype == "workflow_completed":
        return f"→ {_short(d.get('result'))}"
    if etype in ("workflow_failed", "workflow_task_failed", "workflow_cancelled", "workflow_interrupted"):
        return err or _short(d.get("reason") or "")
    if etype == "workflow_continued_as_new":
        return f"args {_short(d.get('args'))}"
    if etype == "patch_marker":
        return str(d.get("patch_id"))
    return _short({k: v for k, v in d.items() if k != "traceback"}) if d else ""


def history_table(events: list[dict[str, Any]], title: str | None = None, all_runs: bool = False) -> Table:
    """A workflow's history as a rich table."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    if all_runs:
        table.add_column("run", justify="right")
    table.add_column("time")
    table.add_column("event")
    table.add_column("details", overflow="fold")
    for event in events:
        cells = [str(event["event_id"])]
        if all_runs:
            cells.append(str(event.get("run_id")))
        style = "red" if event["event_type"].endswith("failed") else None
        cells += [_time(event["timestamp"]), event["event_type"], escape(describe_event(event))]
        table.add_row(*cells, style=style)
    return table


# -- db ------------------------------------------------------------------------

@db_app.command("upgrade")
@_friendly_errors
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    dsn: DsnOption = None,
) -> None:
    """Upgrade the durable schema to REVISION (default: the latest)."""
    from pgdurable._migrate import current, migrate

    with _database(dsn) as resolved:
        migrate(resolved, revision)
        console.print(f"durable schema at revision [bold]{current(resolved)}[/bold]")


@db_app.command("downgrade")
@_friendly_errors
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
    with _database(dsn) as resolved:
        downgrade(resolved, revision)
        console.print(f"durable schema at revision [bold]{current(resolved)}[/bold]")


@db_app.command("current")
@_friendly_errors
def db_current(dsn: DsnOption = None) -> None:
    """Print the revision the database is at ('none' if never migrated)."""
    from pgdurable._migrate import current

    with _database(dsn) as resolved:
        revision = current(resolved)
    console.print(revision if revision is not None else "none")


@db_app.command("prune")
@_friendly_errors
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

    from pgdurable import store
    from pgdurable.connection import Connection
    from pgdurable.durations import to_seconds

    try:
        retention = timedelta(seconds=to_seconds(older_than, what="--older-than"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None

    async def run(resolved: str) -> int:
        connection = Connection(resolved, pool_size=1)
        total = 0
        try:
            async with connection.connect() as conn:
                while True:
                    removed = await store.prune(conn, retention, namespace, batch)
                    total += removed
                    if removed < batch:
                        return total
        finally:
            await connection.close()

    with _database(dsn) as resolved:
        total = asyncio.run(run(resolved))
    if as_json:
        _print_json({"removed_runs": total, "older_than_seconds": retention.total_seconds()})
    else:
        console.print(f"removed {total} closed workflow run(s) older than {older_than}")


# -- dev and demo -------------------------------------------------------------------

@app.command("dev")
@_friendly_errors
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


@app.command("demo")
@_friendly_errors
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

    with _database(dsn) as resolved:
        with err_console.status("migrating the durable schema..."):
            migrate(resolved)
        ok = asyncio.run(demo_module.run(resolved, console=console, orders=orders))
    hint = " --dsn ..." if dsn else ""
    console.print(f"\nAll of it is in Postgres. Next: [bold]pgdurable workflow list{hint}[/bold], "
                  f"[bold]pgdurable workflow history{hint} <id>[/bold]; the code is in "
                  f"{escape(demo_module.__file__ or 'pgdurable/demo.py')}.", highlight=False)
    if not ok:
        raise typer.Exit(1)


# -- worker -----------------------------------------------------------------------

def _load_target(target: str) -> Callable[..., Any]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"expected MODULE:ATTR (e.g. myapp.workers:start), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from exc
    if not inspect.iscoroutinefunction(obj):
        raise CliError(f"{target} must be an async function (async def {attr.split('.')[-1]}"
                       "(connection): ...) that creates workers")
    return obj  # type: ignore[no-any-return]


def _takes_connection(fn: Callable[..., Any]) -> bool:
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    required = [p for p in params if p.default is p.empty and p.kind is not p.VAR_POSITIONAL]
    if len(required) > 1:
        raise CliError(f"{fn.__qualname__} must take no argument or one (the Connection)")
    return bool(params)


async def _serve(fn: Callable[..., Any], dsn: str, grace: float, early_stop: threading.Event) -> None:
    from pgdurable import Connection, Durable
    from pgdurable import worker as worker_module

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if early_stop.is_set():  # a signal that came while we were starting up
        stop.set()
    try:
        if _takes_connection(fn):
            await fn(Connection(dsn))
        else:
            await fn()
        if not worker_module._workers:
            raise CliError(f"{fn.__qualname__} created no worker: call Durable.Worker.create(...) or "
                           "Durable.register_activity_worker(...) in it")
        served = ", ".join(sorted({w.task_queue for w in worker_module._workers}))
        err_console.print(f"serving task queue(s) {escape(served)}; Ctrl-C (SIGINT) or SIGTERM stops "
                          "gracefully", highlight=False)
        await stop.wait()
        err_console.print(f"stopping: in-flight tasks get {grace:g} s to finish...", highlight=False)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)  # a second Ctrl-C stops at once
        await Durable.shutdown(grace)
    err_console.print("stopped.")


@app.command("worker")
@_friendly_errors
def worker(
    target: Annotated[str, typer.Argument(metavar="MODULE:ATTR",
                                          help="Your async function that creates workers, "
                                          "e.g. myapp.workers:start.")],
    dsn: DsnOption = None,
    grace: Annotated[float, typer.Option(help="Seconds in-flight tasks get to finish on shutdown.")] = 30.0,
) -> None:
    """Run your workers until SIGINT/SIGTERM, then shut them down gracefully.

    Imports MODULE (the current directory is on sys.path) and awaits ATTR, an
    async function that creates workers and returns:

        async def start(connection: Connection) -> None:
            await Durable.Worker.create(connection=connection, task_queue="orders",
                                        workflow=order_workflow)

    ATTR receives a Connection to the chosen database (--dsn, $PGDURABLE_DSN,
    $DATABASE_URL, else the embedded dev server), or nothing if it takes no
    argument; PGDURABLE_DSN is set to that database either way, so
    Durable.Connection() finds it. On SIGINT/SIGTERM it calls
    Durable.shutdown(): in-flight tasks get --grace seconds to finish and be
    recorded; past that their leases are released (nothing is lost).
    """
    early_stop = threading.Event()  # SIGINT/SIGTERM before the event loop's handlers are in place
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: early_stop.set())
    fn = _load_target(target)
    _takes_connection(fn)
    with _database(dsn) as resolved:
        os.environ["PGDURABLE_DSN"] = resolved
        asyncio.run(_serve(fn, resolved, grace, early_stop))


# -- workflow ------------------------------------------------------------------------

class Status(StrEnum):
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"
    continued = "continued"


def _parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON ({exc.msg} at character {exc.pos})", param_hint=what) \
            from None


@workflow_app.command("list")
@_friendly_errors
def workflow_list(
    status: Annotated[Status | None, typer.Option(help="Only workflows with this status.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only workflows of this name.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many rows.")] = 50,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """List workflow runs, most recently updated first."""
    rows = _with_client(dsn, namespace, lambda client: client.workflow.list(
        status=None if status is None else status.value, workflow_name=name, limit=limit))
    if as_json:
        _print_json(rows)
        return
    if not rows:
        console.print(f"no workflows in namespace {namespace!r}" + (" with that filter" if status or name
                                                                       else ""))
        return
    table = Table()
    for column in ("workflow id", "workflow", "task queue", "status", "run", "created", "updated"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(escape(row["workflow_id"]), escape(row["workflow_name"]), escape(row["task_queue"]),
                      styled_status(row["status"]), str(row.get("run_id", "")), _time(row["created_at"]),
                      _time(row["updated_at"]))
    console.print(table)


def _pending_text(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "activity":
        running = "running" if item.get("running") else "queued"
        return f"activity {item.get('activity_name')} ({running}, attempt {item.get('attempt')})"
    if kind == "timer":
        return f"timer due {_time(item.get('due_at'))}"
    if kind == "condition":
        return f"signal {item.get('signal_id')!r}"
    if kind == "child":
        return f"child workflow {item.get('workflow_id')}"
    if kind == "workflow_task":
        return item.get("waiting_for") or f"workflow task ({'running' if item.get('running') else 'queued'})"
    return _short(item)


@workflow_app.command("show")
@_friendly_errors
def workflow_show(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Show a workflow's state (handle.state()): status, result or error, what it waits on."""
    state = _with_client(dsn, namespace,
                         lambda client: client.workflow.get_handle("", "", workflow_id).state())
    if as_json:
        _print_json(state)
        return
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("workflow id", escape(state["workflow_id"]))
    table.add_row("workflow", escape(state["workflow_name"]))
    table.add_row("task queue", escape(state["task_queue"]))
    table.add_row("status", styled_status(state["status"])
                  + (" (cancel requested)" if state.get("cancel_requested") and state["status"] == "running"
                     else ""))
    table.add_row("run / attempt", f"{state.get('run_id')} / {state.get('attempt')}")
    if state.get("parent_workflow_id"):
        table.add_row("parent", escape(state["parent_workflow_id"]))
    table.add_row("created", _time(state.get("created_at")))
    table.add_row("updated", _time(state.get("updated_at")))
    if state.get("closed_at"):
        table.add_row("closed", _time(state.get("closed_at")))
    if state["status"] == "completed":
        table.add_row("result", escape(_short(state.get("result"), 500)))
    error = state.get("error")
    if error:
        text = f"{error.get('type')}: {error.get('message')}"
        table.add_row("error", f"[red]{escape(text)}[/red]")
    for item in state.get("pending") or []:
        table.add_row("waiting on", escape(_pending_text(item)))
    for child in state.get("children") or []:
        table.add_row("child", f"{escape(child['workflow_id'])} ({escape(child['workflow_name'])}) "
                      + styled_status(child["status"]))
    failure = state.get("last_task_failure")
    if failure:
        times = state.get("task_failures")
        table.add_row("last task failure",
                      f"[red]{escape(_short(failure, 300))}[/red] (task failed {times}×)")
    console.print(table)
    if error and error.get("traceback"):
        console.print("[bold]traceback[/bold]")
        console.print(escape(error["traceback"].rstrip()), highlight=False, soft_wrap=True)


@workflow_app.command("history")
@_friendly_errors
def workflow_history(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every run of a continued chain.")] = False,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Print a workflow's history: every durable step and its outcome, in order."""
    events = _with_client(dsn, namespace,
                          lambda client: client.workflow.get_handle("", "", workflow_id).history(all_runs))
    if as_json:
        _print_json(events)
        return
    console.print(history_table(events, all_runs=all_runs))


@workflow_app.command("start")
@_friendly_errors
def workflow_start(
    workflow_name: Annotated[str, typer.Argument(help="The workflow function's name.")],
    task_queue: Annotated[str, typer.Option("--task-queue", "-q", help="Task queue its worker serves.")],
    args: Annotated[str, typer.Option("--args", help="The arguments, a JSON array.")] = "[]",
    workflow_id: Annotated[str | None, typer.Option("--id", help="Workflow id (default: a new guid).")]
    = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result and print it.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: give up after this many seconds.")]
    = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Start a workflow (a worker serving it must be running, e.g. `pgdurable worker`)."""
    arguments = _parse_json(args, "--args")
    if not isinstance(arguments, list):
        raise typer.BadParameter("must be a JSON array, e.g. '[\"order-1\"]'", param_hint="--args")

    async def body(client: Client) -> dict[str, Any]:
        handle = await client.workflow.start(args=arguments, task_queue=task_queue,
                                             workflow_name=workflow_name, workflow_id=workflow_id)
        out: dict[str, Any] = {"workflow_id": handle.workflow_id}
        if wait:
            try:
                out["result"] = await handle.result(timeout=timeout)
                out["status"] = "completed"
            except TimeoutError:
                out["status"] = "running"
            except Exception as exc:
                from pgdurable import errors

                if not isinstance(exc, (errors.WorkflowFailedError, errors.WorkflowCancelledError,
                                        errors.WorkflowInterruptedError)):
                    raise
                out["status"] = await handle.status()
                out["error"] = str(exc)
        return out

    out = _with_client(dsn, namespace, body)
    if as_json:
        _print_json(out)
    else:
        console.print(f"started {escape(workflow_name)} as [bold]{escape(out['workflow_id'])}[/bold]",
                      highlight=False)
        if "status" in out:
            console.print(f"status: {styled_status(out['status'])}")
        if "result" in out:
            console.print(f"result: {escape(_short(out['result'], 2000))}", highlight=False)
        if "error" in out:
            console.print(f"error: {escape(out['error'])}", highlight=False)
    if wait and out.get("status") != "completed":
        raise typer.Exit(1)


@workflow_app.command("signal")
@_friendly_errors
def workflow_signal(
    signal_id: Annotated[str, typer.Argument(help="The signal id (a namespace-wide key).")],
    data: Annotated[str | None, typer.Option("--data", help="The signal's data as JSON (default null).")]
    = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Send a signal: the oldest condition waiting on SIGNAL_ID gets it, else it is buffered."""
    payload = _parse_json(data, "--data")
    _with_client(dsn, namespace, lambda client: client.workflow.signal(signal_id, payload))
    if as_json:
        _print_json({"signal_id": signal_id, "sent": True})
    else:
        console.print(f"sent signal {escape(repr(signal_id))}", highlight=False)


async def _running_handle(client: Client, workflow_id: str, action: str) -> Any:
    handle = client.workflow.get_handle("", "", workflow_id)
    status = await handle.status()  # WorkflowNotFoundError for an unknown id
    if status != "running":
        raise CliError(f"workflow {workflow_id!r} is {status}, not running: nothing to {action}")
    return handle


@workflow_app.command("cancel")
@_friendly_errors
def workflow_cancel(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Request cooperative cancellation: the workflow gets CancelledFailure at its next durable await.

    Exits 1 if the workflow is not running.
    """

    async def body(client: Client) -> None:
        handle = await _running_handle(client, workflow_id, "cancel")
        await handle.cancel()

    _with_client(dsn, namespace, body)
    if as_json:
        _print_json({"workflow_id": workflow_id, "cancel_requested": True})
    else:
        console.print(f"cancellation requested for {escape(workflow_id)}: it ends when a worker runs "
                      "its cleanup", highlight=False)


@workflow_app.command("interrupt")
@_friendly_errors
def workflow_interrupt(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID", help="The workflow id.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept as the workflow's error).")] = None,
    as_json: JsonOption = False,
    namespace: NamespaceOption = "durable",
    dsn: DsnOption = None,
) -> None:
    """Stop a workflow hard: nothing of it runs again, its pending activities are dropped.

    Exits 1 if the workflow is not running.
    """

    async def body(client: Client) -> str:
        handle = await _running_handle(client, workflow_id, "interrupt")
        await handle.interrupt(reason)
        return await handle.status()

    status = _with_client(dsn, namespace, body)
    if as_json:
        _print_json({"workflow_id": workflow_id, "status": status})
    else:
        console.print(f"{escape(workflow_id)}: {styled_status(status)}", highlight=False)


app.add_typer(roles_app, name="roles", help="Provision, list, rotate and revoke scoped worker roles.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
