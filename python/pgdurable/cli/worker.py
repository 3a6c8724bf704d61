"""``pgdurable worker MODULE:ATTR`` (``worker run``): import the user's async function that creates
workers, run it, serve until SIGINT/SIGTERM, then shut down gracefully; with ``--processes N``, a
supervisor runs N such worker processes (:func:`supervise`). ``pgdurable worker list``: the workers
that registered themselves (``durable.list_workers``), live or not."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    load_attribute,
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
    obj = load_attribute(target, "myapp.workers:start")
    attr = target.partition(":")[2]
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
    orphan_watch = None
    supervisor = os.environ.get(_SUPERVISOR_ENV)
    if supervisor:  # a child of `--processes N`: a supervisor that died (SIGKILL) must not leave it behind
        orphan_watch = asyncio.create_task(_stop_when_orphaned(int(supervisor), stop))
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
        if orphan_watch is not None:
            orphan_watch.cancel()
        if exporter is not None:
            await exporter()
        await Durable.shutdown(grace)
    err_console.print("stopped.")


async def _stop_when_orphaned(supervisor_pid: int, stop: asyncio.Event) -> None:
    while os.getppid() == supervisor_pid:  # noqa: ASYNC110 - no event tells a process its parent died
        await asyncio.sleep(1.0)
    err_console.print("the supervisor is gone: stopping", highlight=False)
    stop.set()


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
    processes: Annotated[int, typer.Option("--processes", min=1,
                                           help="Worker processes to run (a supervisor starts, stops and "
                                           "restarts them); 1 runs the workers in this process.")] = 1,
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

    --processes N (N > 1) runs N worker processes, each running ATTR, to use
    more than one core: this process supervises them. SIGINT/SIGTERM stops
    every one gracefully (within --grace plus 10 s, else it is killed). A
    process that dies after it served is restarted (after 1 s, doubling up to
    30 s while restarts keep failing); one that fails before it first serves
    stops them all, with its exit status.
    """
    if processes > 1:
        if metrics_port is not None:
            raise CliError("--metrics-port serves the metrics of one process: with --processes N, run N "
                           "`pgdurable worker` commands, each with its own --metrics-port")
        with database(dsn) as resolved:
            raise typer.Exit(supervise(target, processes, dsn=resolved, grace=grace))
    early_stop = threading.Event()  # SIGINT/SIGTERM before the event loop's handlers are in place
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: early_stop.set())
    fn = _load_target(target)
    _takes_connection(fn)
    with database(dsn) as resolved:
        os.environ["PGDURABLE_DSN"] = resolved
        asyncio.run(_serve(fn, resolved, grace, early_stop, metrics_port, metrics_interval))


# -- --processes N: the supervisor -------------------------------------------------------------

_SUPERVISOR_ENV = "PGDURABLE_WORKER_SUPERVISOR"
"""Set in the children of :func:`supervise` to the supervisor's pid: they stop if it disappears."""
_SERVING = "serving task queue(s)"
"""How a child says it serves (the first line of ``_serve``'s after the user's function returned)."""
STOP_MARGIN = 10.0
"""Seconds past ``grace`` the supervisor waits for its children to stop before it kills them."""
RESTART_BACKOFF = (1.0, 30.0)
"""First and longest wait before a child that died is restarted (doubling while restarts fail)."""
HEALTHY_AFTER = 60.0
"""A child that served this long resets the restart backoff."""


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[str]
    started_at: float
    served: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def supervise(target: str, processes: int, *, dsn: str, grace: float = 30.0) -> int:
    """Runs ``processes`` worker processes (``pgdurable worker TARGET --dsn DSN``), each serving what
    ``TARGET`` creates, until SIGINT/SIGTERM; returns the exit status (0 after a graceful stop).

    What ``pgdurable worker --processes N`` runs. Each child is the CLI itself in a session of its
    own (a terminal's Ctrl-C reaches only the supervisor, which forwards SIGTERM once; a second
    signal forwards it again, which stops the children at once). Children's stderr lines are
    prefixed with ``[worker I pid P]``. A child that dies after it served is logged and restarted
    with a backoff (:data:`RESTART_BACKOFF`, reset after :data:`HEALTHY_AFTER` s of serving); a
    child that exits before it ever served (a bad target, no database, no schema) stops the others
    and its exit status is returned (1 if it exited 0): restarting it would fail the same way.
    Must run in the main thread (it installs signal handlers)."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    stops: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, _frame: stops.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    env = dict(os.environ, PGDURABLE_DSN=dsn, **{_SUPERVISOR_ENV: str(os.getpid())})
    verbosity = {logging.INFO: ["-v"], logging.DEBUG: ["-vv"]}.get(logging.getLogger("pgdurable").level, [])
    command = [sys.executable, "-m", "pgdurable.cli", *verbosity, "worker", "run", target, "--dsn", dsn,
               "--grace", repr(grace)]

    def spawn(index: int) -> _Child:
        proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, bufsize=1,
                                start_new_session=True)
        child = _Child(index, proc, time.monotonic())

        def forward() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith(_SERVING):
                    child.served.set()
                sys.stderr.write(f"[worker {index} pid {proc.pid}] {line}")
                sys.stderr.flush()

        child.reader = threading.Thread(target=forward, name=f"pgdurable-worker-{index}-stderr", daemon=True)
        child.reader.start()
        return child

    children = [spawn(i) for i in range(processes)]
    err_console.print(f"supervising {processes} worker processes (pids "
                      f"{', '.join(str(c.proc.pid) for c in children)})", highlight=False)
    ever_served = [False] * processes
    backoff = [RESTART_BACKOFF[0]] * processes
    restart_at: dict[int, float] = {}
    status = 0
    forwarded = 0
    try:
        while not stops:
            time.sleep(0.1)
            now = time.monotonic()
            for i, child in enumerate(children):
                if child.served.is_set():
                    if not ever_served[i]:
                        ever_served[i] = True
                        if all(ever_served):
                            err_console.print(f"all {processes} worker processes serve", highlight=False)
                    if now - child.started_at >= HEALTHY_AFTER:
                        backoff[i] = RESTART_BACKOFF[0]
                code = child.proc.poll()
                if code is None or i in restart_at or stops:
                    continue
                if child.reader is not None:
                    child.reader.join(2)
                if not ever_served[i]:
                    err_console.print(f"worker process {i} (pid {child.proc.pid}) exited before it served "
                                      f"({_exit_text(code)}): stopping the others", highlight=False)
                    status = code if code > 0 else 1
                    stops.append(0)
                    break
                wait = backoff[i]
                backoff[i] = min(wait * 2, RESTART_BACKOFF[1])
                restart_at[i] = now + wait
                err_console.print(f"worker process {i} (pid {child.proc.pid}) died ({_exit_text(code)}); "
                                  f"restarting it in {wait:g} s", highlight=False)
            for i, when in list(restart_at.items()):
                if not stops and time.monotonic() >= when:
                    del restart_at[i]
                    children[i] = spawn(i)
                    err_console.print(f"worker process {i} restarted (pid {children[i].proc.pid})",
                                      highlight=False)
        err_console.print(f"stopping {processes} worker processes: in-flight tasks get {grace:g} s to "
                          "finish...", highlight=False)
        deadline = time.monotonic() + grace + STOP_MARGIN
        while any(c.proc.poll() is None for c in children) and time.monotonic() < deadline:
            if forwarded < len(stops):  # the first signal, then each further one (stops at once)
                forwarded = len(stops)
                for child in children:
                    if child.proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            child.proc.send_signal(signal.SIGTERM)
            time.sleep(0.05)
        for child in children:
            if child.proc.poll() is None:
                err_console.print(f"worker process {child.index} (pid {child.proc.pid}) did not stop "
                                  f"within {grace + STOP_MARGIN:g} s: killing it", highlight=False)
                child.proc.kill()
                child.proc.wait()
                status = status or 1
            elif child.index not in restart_at and child.proc.returncode != 0 and status == 0:
                status = 1
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
            if child.reader is not None:
                child.reader.join(2)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    err_console.print("stopped." if status == 0 else f"stopped (exit status {status}).", highlight=False)
    return status


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
