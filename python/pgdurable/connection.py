"""Connections: a lazy pool per event loop, and one shared LISTEN connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from . import store
from ._dsn import resolve_dsn

log = logging.getLogger("pgdurable.connection")

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

    @property
    def dsn(self) -> str:
        """The resolved connection string (raises ``ValueError`` when none is configured)."""
        return resolve_dsn(self._dsn)

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every connection is opened with."""
        return {"autocommit": True, **self._kwargs}

    def with_login(self, user: str, password: str | None) -> Connection:
        """The same database, logged in as another role (used by scoped workers)."""
        kwargs = {**self._kwargs, "user": user}
        if password is not None:
            kwargs["password"] = password
        return Connection(self._dsn, pool_size=self._pool_size, **kwargs)

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
                # Fail fast, with a clear message, on a wrong DSN or schema.
                try:
                    first = await psycopg.AsyncConnection.connect(dsn, **self.connect_kwargs)
                except psycopg.OperationalError as exc:
                    raise ConnectionError(f"cannot connect to the pgdurable database: {exc}".strip()) from exc
                async with first:
                    await store.check_schema(first)
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    dsn, kwargs=self.connect_kwargs, min_size=1, max_size=self._pool_size, open=False,
                    name="pgdurable", reconnect_timeout=3600,
                )
                await pool.open()
                self._pool = pool
                _open.add(self)
        assert self._pool is not None
        return self._pool

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[store.Conn]:
        """A pooled autocommit connection, for one stored-function call or a few."""
        pool = await self._get_pool()
        async with pool.connection() as conn:
            yield conn

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

    async def _run(self) -> None:
        delay, outage = 0.1, False
        while not self._closed:
            try:
                conn = await psycopg.AsyncConnection.connect(self._connection.dsn,
                                                             **self._connection.connect_kwargs)
            except (psycopg.OperationalError, OSError) as exc:
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
