"""``WorkflowEnvironment``: an isolated, migrated database, a client and workers for one test.

Each environment gets a database of its own (the engine clock is per database, so skipping time
in one test never moves another's): a fresh one on the server of ``PGDURABLE_TEST_DSN`` or, when
that is unset, on an embedded Postgres this process starts once (in a temporary directory,
stopped at exit). It is dropped when the environment closes. ``dsn=`` uses an existing database
instead (migrated if needed, never dropped).

With ``time_skipping=True`` a background task asks the engine, again and again, to move its clock
to the next timer whenever nothing is runnable (``durable.skip_to_next_timer_v1``: the check and
the jump are one transaction, so no task can become runnable in between); the stored function
wakes the timer's task queue itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from . import _registry, _store, errors
from ._migrate import migrate
from .client import Client
from .connection import Connection
from .durations import Duration, to_seconds
from .worker import Worker

__all__ = ["WorkflowEnvironment"]

log = logging.getLogger("pgdurable.testing")

NAMESPACE = "durable"
SKIP_POLL = 0.02
"""Seconds between two looks for a timer to skip to while something still runs."""
SHUTDOWN_GRACE = 5.0

_server: Any = None
_server_lock = threading.Lock()


def _port() -> int | None:
    """A port in ``PGDURABLE_TEST_PORT_RANGE`` (``low-high``) when set, else any free one."""
    from .embedded import free_port_in

    value = os.environ.get("PGDURABLE_TEST_PORT_RANGE", "").strip()
    if not value:
        return None
    low, _, high = value.partition("-")
    if not (low.isdigit() and high.isdigit()):
        raise errors.TestEnvironmentError(
            f"PGDURABLE_TEST_PORT_RANGE={value!r} is not a port range: give it as LOW-HIGH, e.g. 56900-56949")
    return free_port_in(range(int(low), int(high) + 1))


def _stop_server(server: Any, directory: Path) -> None:
    with contextlib.suppress(Exception):
        server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _admin_dsn() -> str:
    """The server environments make their databases on (started on first use)."""
    external = os.environ.get("PGDURABLE_TEST_DSN")
    if external:
        return external
    global _server
    with _server_lock:
        if _server is None:
            from .embedded import EmbeddedPostgres

            directory = Path(tempfile.mkdtemp(prefix="pgdurable-env-"))
            server = EmbeddedPostgres(directory / "data", _port(), settings={"fsync": "off"})
            try:
                server.start()
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            atexit.register(_stop_server, server, directory)
            _server = server
        return str(_server.dsn())


class WorkflowEnvironment:
    """A database, a client and workers for a test: ``async with WorkflowEnvironment(...) as env``.

    ``workflows`` are served on ``env.task_queue`` (a fresh name unless ``task_queue`` is given).
    ``activities`` (a list of functions, a dict name→function or a module) run instead of the
    same-named activities the workflows register: test doubles. ``time_skipping=True`` moves
    the engine clock to the next timer whenever nothing is runnable, so durable sleeps and
    timeouts of days pass at once. ``dsn``: an existing database (migrated if needed) instead
    of a fresh one.
    """

    def __init__(self, workflows: Iterable[Callable[..., Any]] = (), activities: Any = None,
                 task_queue: str | None = None, time_skipping: bool = False, dsn: str | None = None) -> None:
        self.workflows = list(workflows)
        self.activities = activities
        self.task_queue = task_queue or f"test-{uuid.uuid4().hex[:12]}"
        self.time_skipping = time_skipping
        self.dsn = dsn
        self._given_dsn = dsn
        self._client: Client | None = None
        self._connection: Connection | None = None
        self._created: tuple[str, str] | None = None  # (admin DSN, database name) to drop at close
        self._workers: list[Worker] = []
        self._overrides: list[dict[str, Callable[..., Any] | None]] = []
        self._skipper: asyncio.Task[None] | None = None
        self._closed = False

    # -- what a test uses ---------------------------------------------------------------
    @property
    def client(self) -> Client:
        """A client of the environment's database."""
        if self._client is None:
            raise self._not_started("client")
        return self._client

    @property
    def connection(self) -> Connection:
        """The environment's connection (the engine owner's), for ``Durable.Worker.create`` and
        the like."""
        if self._connection is None:
            raise self._not_started("connection")
        return self._connection

    async def add_worker(self, workflows: Iterable[Callable[..., Any]] = (),
                         activities: Any = None) -> Worker:
        """Starts a worker serving ``workflows`` on ``env.task_queue``; ``activities`` become test
        doubles as the constructor's do. The environment stops it when it closes."""
        connection = self.connection
        if self._closed:
            raise errors.TestEnvironmentError("add_worker: this environment is closed; make a new one")
        if activities is not None:
            self._overrides.append(_registry.override(activities))
        worker = await Worker.create(connection=connection, task_queue=self.task_queue,
                                     workflows=list(workflows), namespace=NAMESPACE)
        self._workers.append(worker)
        return worker

    async def sleep(self, duration: Duration) -> None:
        """Lets whatever is runnable run (tasks, activities, due timers), then moves the engine clock
        forward by ``duration`` (``"1 day"``, seconds, a timedelta) at once and wakes the workers:
        every timer due by then fires, whether time skipping is on or not."""
        by = timedelta(seconds=to_seconds(duration))
        while True:
            async with self.connection.connect() as conn:
                if await _store.advance_clock_when_idle(conn, NAMESPACE, by) is not None:
                    return
            await asyncio.sleep(SKIP_POLL)

    async def now(self) -> datetime:
        """The engine clock (what workflow code's ``now()`` follows), UTC."""
        async with self.connection.connect() as conn:
            return await _store.engine_now(conn)

    # -- life cycle -----------------------------------------------------------------
    async def __aenter__(self) -> WorkflowEnvironment:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Gets the database, migrates it, starts the workers (``async with`` calls it)."""
        if self._connection is not None or self._closed:
            raise errors.TestEnvironmentError("this environment was started already: make a new one per test")
        try:
            if self._given_dsn is None:
                admin = await asyncio.to_thread(_admin_dsn)
                name = f"pgdurable_env_{uuid.uuid4().hex}"
                async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
                    await _store.create_database(conn, name)
                self._created = (admin, name)
                self.dsn = make_conninfo(admin, dbname=name)
            assert self.dsn is not None
            await asyncio.to_thread(migrate, self.dsn)
            self._connection = Connection(self.dsn)
            self._client = Client(connection=self._connection, namespace=NAMESPACE)
            if self.workflows or self.activities is not None:
                await self.add_worker(self.workflows, self.activities)
            if self.time_skipping:
                self._skipper = asyncio.create_task(self._skip_time(), name="pgdurable-time-skipping")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stops the workers, closes the connections, drops the database it made, takes its
        test doubles back (``async with`` calls it)."""
        if self._closed:
            return
        self._closed = True
        if self._skipper is not None:
            self._skipper.cancel()
            await asyncio.gather(self._skipper, return_exceptions=True)
        await asyncio.gather(*(worker.shutdown(SHUTDOWN_GRACE) for worker in self._workers),
                             return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()
        for before in reversed(self._overrides):
            _registry.restore_overrides(before)
        self._overrides.clear()
        if self._created is not None:
            admin, name = self._created
            async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
                await _store.drop_database(conn, name)

    # -- internals ------------------------------------------------------------------
    async def _skip_time(self) -> None:
        while True:
            try:
                async with self.connection.connect() as conn:
                    moved = await _store.skip_to_next_timer(conn, NAMESPACE)
            except errors.DurableError as exc:
                log.warning("time skipping: %s (trying again)", exc)
                moved = None
            if moved is not None:
                log.debug("time skipping: the engine clock is now %s", moved)
            await asyncio.sleep(0 if moved is not None else SKIP_POLL)

    def _not_started(self, what: str) -> errors.TestEnvironmentError:
        return errors.TestEnvironmentError(
            f"env.{what} is there once the environment is started: use `async with "
            "WorkflowEnvironment(...) as env:` (or `await env.start()` first)")
