"""``pgdurable worker MODULE:ATTR`` (``worker run``): import the user's async function that creates
workers, run it, serve until SIGINT/SIGTERM, then shut down gracefully. ``pgdurable worker list``:
the workers that registered themselves (``durable.list_workers``), live or not."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from pgdurable.cli._common import (
    CliError,
    DsnOption,
    JsonOption,
    console,
    database,
    err_console,
    friendly_errors,
    print_json,
    run_with_connection,
)
from pgdurable.cli.tables import format_time

if TYPE_CHECKING:
    from pgdurable.connection import Connection


class _RunByDefault(TyperGroup):
    """``pgdurable worker MODULE:ATTR`` stays the way to run workers: anything but a subcommand's
    name (or --help) is ``worker run``'s."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


worker_app = typer.Typer(
    cls=_RunByDefault,
    help="Run your workers (`pgdurable worker MODULE:ATTR`, i.e. `worker run`) or list the workers "
    "that registered themselves (`pgdurable worker list`).",
    no_args_is_help=True,
)


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


async def _serve(fn: Callable[..., Any], dsn: str, grace: float, early_stop: threading.Event,
                 metrics_port: int | None = None, metrics_interval: float = 10.0) -> None:
    from pgdurable import Connection, Durable
    from pgdurable import worker as worker_module

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if early_stop.is_set():  # a signal that came while we were starting up
        stop.set()
    exporter = None if metrics_port is None else await _serve_metrics(dsn, metrics_port, metrics_interval)
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
        if exporter is not None:
            await exporter()
        await Durable.shutdown(grace)
    err_console.print("stopped.")


async def _serve_metrics(dsn: str, port: int, interval: float) -> Callable[[], Any]:
    """Serves Prometheus text on :port/metrics: this process's measurements and the stream
    statistics read every ``interval`` seconds. Returns the coroutine function that stops it."""
    try:
        from pgdurable import metrics
        from pgdurable.connection import Connection

        prometheus = metrics.PrometheusMetrics()
    except ImportError as exc:
        raise CliError(f"--metrics-port needs prometheus-client ({exc}): pip install 'pgdurable[metrics]'") \
            from None
    try:
        prometheus.serve(port)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on port {port}: {exc}; pick another --metrics-port") from None
    prometheus.install()
    poller = metrics.StreamStatsPoller(Connection(dsn), interval=interval)
    metrics.watch_streams(poller)
    poller.start()
    err_console.print(f"metrics on http://0.0.0.0:{port}/metrics", highlight=False)

    async def stop() -> None:
        await poller.stop()
        await poller.connection.close()
        metrics.unwatch_streams(poller)
        prometheus.uninstall()
        prometheus.close()

    return stop


@worker_app.command("run")
@friendly_errors
def worker(
    target: Annotated[str, typer.Argument(metavar="MODULE:ATTR",
                                          help="Your async function that creates workers, "
                                          "e.g. myapp.workers:start.")],
    dsn: DsnOption = None,
    grace: Annotated[float, typer.Option(help="Seconds in-flight tasks get to finish on shutdown.")] = 30.0,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", help="Serve Prometheus metrics on this port (/metrics); needs pgdurable[metrics].")]
    = None,
    metrics_interval: Annotated[float, typer.Option(
        "--metrics-interval", help="Seconds between two reads of durable.stream_stats for /metrics.")] = 10.0,
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
    with database(dsn) as resolved:
        os.environ["PGDURABLE_DSN"] = resolved
        asyncio.run(_serve(fn, resolved, grace, early_stop, metrics_port, metrics_interval))


@worker_app.command("list")
@friendly_errors
def worker_list(
    namespace: Annotated[str | None, typer.Option("--namespace", "-n",
                                                  help="Only this namespace's workers (default: all).")]
    = None,
    live_only: Annotated[bool, typer.Option("--live", help="Only the live workers.")] = False,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """List the workers that registered themselves, live or not.

    Shows what each serves, where it runs and whether it is live: a worker heartbeats every 10 s;
    one not seen for 3 heartbeats, or stopped, is not live.

    Run it as the engine's owner (worker roles may not read the registry).
    """
    from pgdurable import _store as store

    async def body(connection: Connection) -> list[dict[str, Any]]:
        return await connection.run(lambda conn: store.list_workers(conn, namespace))

    rows = [row for row in run_with_connection(dsn, body) if row["live"] or not live_only]
    if as_json:
        print_json(rows)
        return
    if not rows:
        where = "" if namespace is None else f" in namespace {namespace!r}"
        console.print(f"no {'live ' if live_only else ''}workers{where}", highlight=False)
        return
    table = Table()
    for column in ("worker", "namespace", "task queue", "workflows", "activities", "host / pid", "role",
                   "started", "last seen", "live"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(escape(row["worker_id"]), escape(row["namespace"]), escape(row["task_queue"]),
                      escape(", ".join(row["workflow_names"])), escape(", ".join(row["activity_names"])),
                      escape(f"{row['host']} / {row['pid']}"), escape(row["role_name"]),
                      format_time(row["started_at"]), format_time(row["last_seen_at"]),
                      "[green]live[/green]" if row["live"]
                      else "[dim]stopped[/dim]" if row["stopped_at"] else "[red]not seen[/red]")
    console.print(table)
