"""Connections: a lazy pool per event loop, and one shared LISTEN connection.

Every failure of the database reaches callers as a :mod:`pgdurable.errors`
error (``store.database_error``), and :meth:`Connection.run` is the one place
that retries a call the database failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import _store as store
from . import errors
from ._dsn import resolve_dsn

log = logging.getLogger("pgdurable.connection")
T = TypeVar("T")

LOGIN_RETRY = 2.0
"""While the server refuses this login, one new attempt at most every this many seconds: the
calls in between fail with the refusal at once (the server logs every attempt)."""

_open: set[Connection] = set()


class _QuietReconnects(logging.Filter):
    """psycopg_pool warns on every failed reconnection attempt of its pools; for pgdurable's pools
    the workers log an outage once themselves, so these repeats are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error connecting in 'pgdurable'")


logging.getLogger("psycopg.pool").addFilter(_QuietReconnects())


class Connection:
    """Where pgdurable's database is. Lazy: nothing connects until first use.

    ``dsn`` is any libpq connection string; ``None`` reads ``PGDURABLE_DSN``,
    then ``DATABASE_URL``. Extra keyword arguments go to ``psycopg.connect``
    (``user``, ``password``, ``sslmode``...). ``pool_size`` bounds the pool.
    """

    def __init__(self, dsn: str | None = None, *, pool_size: int = 16, **psycopg_kwargs: Any) -> None:
        self._dsn = dsn
        self._kwargs = psycopg_kwargs
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._opening: asyncio.Lock | None = None
        # Why the last attempt to open a connection failed (None after one succeeds), and the
        # refusal of the login while it lasts: connect() then decides at once instead of waiting.
        self._last_failure: errors.DatabaseError | None = None
        self._refusal: errors.AuthorizationError | None = None
        self._refused_at = 0.0

    @property
    def dsn(self) -> str:
        """The resolved connection string (raises ``ValueError`` when none is configured)."""
        return resolve_dsn(self._dsn)

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every connection is opened with."""
        return {"autocommit": True, **self._kwargs}

    @property
    def role(self) -> str | None:
        """The role this Connection logs in as, when the DSN or ``user=`` names it."""
        user = self._kwargs.get("user")
        if user is None:
            with contextlib.suppress(ValueError, psycopg.ProgrammingError):
                user = conninfo_to_dict(self.dsn).get("user")
        return None if user is None else str(user)

    def with_login(self, user: str, password: str | None) -> Connection:
        """The same database, logged in as another role (used by scoped workers)."""
        kwargs = {**self._kwargs, "user": user}
        if password is not None:
            kwargs["password"] = password
        return Connection(self._dsn, pool_size=self._pool_size, **kwargs)

    def _failed(self, exc: BaseException) -> errors.DurableError:
        """Records why a connection could not be opened; returns it as a pgdurable error."""
        failure = store.database_error(exc, role=self.role, connecting=True)
        if isinstance(failure, errors.DatabaseError):
            self._last_failure = failure
        if isinstance(failure, errors.AuthorizationError):
            self._refusal, self._refused_at = failure, time.monotonic()
        return failure

    def _opened(self) -> None:
        self._last_failure = self._refusal = None

    async def _open(self) -> store.Conn:
        """A new connection of its own (not pooled), or the pgdurable error of why not."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.dsn, **self.connect_kwargs)
        except (psycopg.Error, OSError) as exc:
            raise self._failed(exc) from exc
        self._opened()
        return conn

    def _pool_connection_class(self) -> type[psycopg.AsyncConnection[Any]]:
        """The pool's connections, opened in the background: their failures are recorded, so a
        caller waiting for one learns why none comes (a refused login above all)."""
        owner = self

        class PoolConnection(psycopg.AsyncConnection[Any]):
            @classmethod
            async def connect(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
                try:
                    conn = await super().connect(*args, **kwargs)
                except (psycopg.Error, OSError) as exc:
                    owner._failed(exc)
                    raise
                owner._opened()
                return conn

        return PoolConnection

    async def _get_pool(self) -> AsyncConnectionPool[Any]:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop is loop:
            return self._pool
        if self._opening is None or self._pool_loop is not loop:
            self._opening = asyncio.Lock()
            self._pool, self._pool_loop, self._listener = None, loop, None
        async with self._opening:
            if self._pool is None:
                dsn = self.dsn
                # Fail fast, with a clear message, on a wrong DSN, login or schema.
                first = await self._open()
                async with first:
                    await store.check_schema(first)
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    dsn, kwargs=self.connect_kwargs, min_size=1, max_size=self._pool_size, open=False,
                    name="pgdurable", reconnect_timeout=3600,
                    connection_class=self._pool_connection_class(),
                )
                await pool.open()
                self._pool = pool
                _open.add(self)
        assert self._pool is not None
        return self._pool

    async def _acquire(self, pool: AsyncConnectionPool[Any]) -> store.Conn:
        """A pooled connection, waiting at most the pool's timeout; while the server refuses this
        login, a fresh attempt decides at once (AuthorizationError, or on with the pool)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pool.timeout
        while True:
            refusal = self._refusal
            if refusal is not None:
                if time.monotonic() - self._refused_at < LOGIN_RETRY:
                    raise errors.AuthorizationError(str(refusal), sqlstate=refusal.sqlstate,
                                                    condition=refusal.condition)
                probe = await self._open()
                await probe.close()
            try:
                return await pool.getconn(timeout=max(min(deadline - loop.time(), 1.0), 0.001))
            except PoolTimeout as exc:
                if loop.time() < deadline:
                    continue  # look at the login again, then wait on
                last = self._last_failure
                if isinstance(last, errors.AuthorizationError):
                    raise last from exc
                why = f" (the last attempt failed: {last})" if last is not None else ""
                raise errors.DatabaseUnavailableError(
                    f"no connection to the database within {pool.timeout:g} s{why}: check that the "
                    "server is up, reachable from this machine and accepts more connections") from exc
            except psycopg.Error as exc:
                raise store.database_error(exc, role=self.role) from exc

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[store.Conn]:
        """A pooled autocommit connection, for one stored-function call or a few. A failure of
        the database, here or in the body, is raised as a :mod:`pgdurable.errors` error."""
        pool = await self._get_pool()
        conn = await self._acquire(pool)
        try:
            async with conn:
                yield conn
        except psycopg.Error as exc:
            raise store.database_error(exc, role=self.role) from exc
        finally:
            await pool.putconn(conn)

    async def run(self, call: Callable[[store.Conn], Awaitable[T]], *, repeatable: bool = True,
                  until: float | None = None) -> T:
        """Runs one store call on a pooled connection: the one place pgdurable retries a call
        the database failed.

        A call the database rolled back (:class:`~pgdurable.errors.TransientDatabaseError`)
        runs again; so does one whose connection was lost
        (:class:`~pgdurable.errors.DatabaseUnavailableError`) when it is ``repeatable`` (it
        may have been applied before the connection dropped). Once; or, with ``until`` (an
        event-loop time), until then: a worker records a result through an outage that way.
        """
        loop = asyncio.get_running_loop()
        tries = 0
        while True:
            tries += 1
            started = False
            try:
                async with self.connect() as conn:
                    started = True
                    return await call(conn)
            except errors.DatabaseError as exc:
                lost = isinstance(exc, errors.DatabaseUnavailableError)
                rolled_back = isinstance(exc, errors.TransientDatabaseError)
                again = rolled_back or (lost and (repeatable or not started))
                if until is None:
                    again = again and started and tries == 1  # no connection came: the pool waited
                else:
                    again = again and loop.time() < until
                if not again:
                    if lost and started and not repeatable:
                        raise errors.DatabaseUnavailableError(
                            f"{exc}; the call was not retried: it may have been applied before the "
                            "connection was lost, so check before making it again",
                            sqlstate=exc.sqlstate, condition=exc.condition) from exc.__cause__
                    raise
                log.debug("running a database call again after: %s", exc)
                if lost and started:
                    await self._check_pool()
                await asyncio.sleep(0 if tries == 1 else 0.5 if lost else 0.01)

    async def _check_pool(self) -> None:
        """After a lost connection, the pool's idle ones may be dead too (a restart, a failover):
        test them, so the next call gets a live one."""
        pool = self._pool
        if pool is not None and self._pool_loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await pool.check()

    async def listener(self) -> Listener:
        """The one LISTEN connection this Connection shares between its workers and handles."""
        await self._get_pool()
        if self._listener is None:
            self._listener = Listener(self)
        return self._listener

    async def close(self) -> None:
        """Closes the pool and the LISTEN connection (a later use opens new ones)."""
        listener, pool = self._listener, self._pool
        self._listener, self._pool, self._pool_loop, self._opening = None, None, None, None
        _open.discard(self)
        if listener is not None:
            await listener.close()
        if pool is not None:
            await pool.close()


class Listener:
    """One LISTEN connection; subscribers get an ``asyncio.Event`` set on each NOTIFY.

    When the connection drops, every event is set (so waiters poll), the outage
    is logged once, and the connection comes back with its channels. A channel
    once listened stays listened until close: the set is small (a closing
    channel per namespace, a channel per served stream), and UNLISTEN churn
    would open windows where a NOTIFY is missed.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._subscribers: dict[str, set[asyncio.Event]] = {}
        self._by_payload: dict[tuple[str, str], set[asyncio.Event]] = {}
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._refs: dict[str, int] = {}
        self._listening: set[str] = set()
        self._changed = asyncio.Event()
        self._synced: list[tuple[str, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def subscribe(self, channel: str, event: asyncio.Event | None = None,
                        payload: str | None = None) -> asyncio.Event:
        """Sets the returned event on every NOTIFY of ``channel`` (only those carrying ``payload``,
        when given); returns once LISTEN is active."""
        event = event or asyncio.Event()
        if payload is None:
            self._subscribers.setdefault(channel, set()).add(event)
        else:
            self._by_payload.setdefault((channel, payload), set()).add(event)
        self._refs[channel] = self._refs.get(channel, 0) + 1
        if channel not in self._listening:
            await self._sync(channel)
        return event

    async def subscribe_payloads(self, channel: str, callback: Callable[[str], None]) -> None:
        """Calls ``callback(payload)`` on every NOTIFY of ``channel``, and ``callback("")`` when
        the connection comes back (what was missed is not replayed); returns once LISTEN is
        active. A callback must not block."""
        self._callbacks.setdefault(channel, []).append(callback)
        self._refs[channel] = self._refs.get(channel, 0) + 1
        if channel not in self._listening:
            await self._sync(channel)

    def unsubscribe_payloads(self, channel: str, callback: Callable[[str], None]) -> None:
        """Stops calling ``callback`` for ``channel``."""
        callbacks = self._callbacks.get(channel)
        if not callbacks or callback not in callbacks:
            return
        callbacks.remove(callback)
        if not callbacks:
            del self._callbacks[channel]
        self._refs[channel] -= 1
        if not self._refs[channel]:
            del self._refs[channel]

    def unsubscribe(self, channel: str, event: asyncio.Event, payload: str | None = None) -> None:
        """Stops delivering ``channel`` to ``event``."""
        key: Any = channel if payload is None else (channel, payload)
        table: dict[Any, set[asyncio.Event]] = self._subscribers if payload is None else self._by_payload
        events = table.get(key)
        if events is None or event not in events:
            return
        events.discard(event)
        if not events:
            del table[key]
        self._refs[channel] -= 1
        if not self._refs[channel]:
            del self._refs[channel]

    async def _sync(self, channel: str) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="pgdurable-listener")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._synced.append((channel, waiter))
        self._changed.set()
        await waiter

    def _wake_all(self) -> None:
        for events in [*self._subscribers.values(), *self._by_payload.values()]:
            for event in events:
                event.set()
        for callbacks in list(self._callbacks.values()):
            for callback in list(callbacks):
                callback("")  # an empty payload: something may have been missed

    async def _run(self) -> None:
        delay, outage = 0.1, False
        while not self._closed:
            try:
                conn = await self._connection._open()
            except errors.DatabaseError as exc:
                if not outage:
                    log.warning("LISTEN connection lost (%s); reconnecting, polling meanwhile", exc)
                    outage = True
                self._release_waiters(everything=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if outage:
                log.warning("LISTEN connection back")
            delay, outage = 0.1, False
            self._listening = set()
            try:
                async with conn:
                    await self._serve(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                if not self._closed:
                    log.warning("LISTEN connection lost (%s); reconnecting, polling meanwhile", exc)
                    outage = True
            finally:
                self._wake_all()

    def _release_waiters(self, everything: bool = False) -> None:
        """Resolves the subscribers whose channel is listened now (all of them when the
        connection is down: they poll meanwhile)."""
        waiting, self._synced = self._synced, []
        for channel, waiter in waiting:
            if waiter.done():
                continue
            if everything or channel in self._listening:
                waiter.set_result(None)
            else:
                self._synced.append((channel, waiter))

    async def _serve(self, conn: store.Conn) -> None:
        first = True
        while not self._closed:
            self._changed.clear()
            for channel in set(self._refs) - self._listening:
                await store.listen(conn, channel)
                self._listening.add(channel)
            self._release_waiters()
            if first:
                self._wake_all()  # whatever happened while we were away
                first = False
            reader = asyncio.ensure_future(self._read(conn))
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                done, _ = await asyncio.wait({reader, changed}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                # Closing: the reader holds the connection's lock, and leaving
                # ``async with conn`` (rollback) would wait for it forever.
                reader.cancel()
                changed.cancel()
                with contextlib.suppress(BaseException):
                    await reader
                raise
            if reader in done:
                changed.cancel()
                reader.result()
                continue
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, conn: store.Conn) -> None:
        async for notify in conn.notifies():
            for callback in list(self._callbacks.get(notify.channel, ())):
                try:
                    callback(notify.payload)
                except Exception:  # a hint's handler must never stop the LISTEN connection
                    log.exception("NOTIFY handler of channel %s failed", notify.channel)
            for event in self._subscribers.get(notify.channel, ()):
                event.set()
            for event in self._by_payload.get((notify.channel, notify.payload), ()):
                event.set()

    async def close(self) -> None:
        """Stops listening and closes the connection."""
        self._closed = True
        self._changed.set()
        self._release_waiters(everything=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def _close_all() -> None:
    """Closes every Connection of this process that has open pools."""
    for connection in list(_open):
        await connection.close()
