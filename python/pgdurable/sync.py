"""A synchronous client, for code that has no event loop: Django and Flask views, scripts, shells.

``pgdurable.sync.Client`` is the async :class:`pgdurable.Client` run on one private event loop,
in one background thread the sync client owns. Every method hands its coroutine to that loop
(``asyncio.run_coroutine_threadsafe``) and blocks the calling thread until it is done: the logic,
the validation, the retries and the errors are those of the async client, not a second copy.

- **Threads.** One sync client may be shared by any number of threads (a WSGI server's request
  threads): their calls run concurrently on the private loop, over one connection pool.
- **Errors.** The same typed :mod:`pgdurable.errors` (and ``TypeError``, ``ValueError``,
  ``TimeoutError``) as the async client, raised in the calling thread.
- **A caller with a running loop.** Works and never deadlocks: the call runs on the private loop,
  not the caller's, so the caller's loop simply stalls until the call returns. Do not wait there
  for a workflow whose worker runs on that same stalled loop (it cannot progress until
  ``result(timeout=...)`` gives up): async code should use the async :class:`pgdurable.Client`.
- **Close.** ``close()`` (or leaving ``with``) cancels calls still waiting, closes the pools and
  stops the thread; it is idempotent. The thread is a daemon, so a forgotten close does not keep
  the process alive. Create clients after a server forks its workers (a thread does not survive
  ``fork``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from . import client as _client
from . import errors
from .connection import Connection
from .durations import Duration
from .retry import RetryPolicy

__all__ = ["Client", "WorkflowHandle"]

log = logging.getLogger("pgdurable.sync")
T = TypeVar("T")


class _LoopConnection(Connection):
    """The sync client's own :class:`Connection`: its pools live on the private loop.

    ``Durable.shutdown()`` closes every open Connection of the process from the caller's loop;
    this one's close then runs on its own loop (pools reopen on next use, as for any Connection).
    """

    def __init__(self, like: Connection | str | None, loop: asyncio.AbstractEventLoop) -> None:
        if isinstance(like, Connection):
            # A Connection's pool belongs to one event loop: sharing the caller's object between its
            # loop and ours would swap its pool back and forth. The same database, pools of our own.
            super().__init__(like._dsn, pool_size=like._pool_size, **like._kwargs)
        else:
            super().__init__(like)
        self._home = loop

    async def close(self) -> None:
        """Closes the pools, on the private loop whichever loop asks."""
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self._home:
            await super().close()
        elif self._home.is_running():
            done = asyncio.run_coroutine_threadsafe(super().close(), self._home)
            await asyncio.wrap_future(done)


class Client:
    """Starts workflows, sends signals and reads results from synchronous code.

    ``connection_or_dsn``: a :class:`pgdurable.Connection` (its database and login are used, with
    pools of the sync client's own), a libpq DSN, or ``None`` for ``PGDURABLE_DSN`` then
    ``DATABASE_URL``. Lazy: nothing connects until the first call. Thread-safe; a context manager.
    """

    def __init__(self, connection_or_dsn: Connection | str | None = None, *,
                 namespace: str = "durable") -> None:
        if connection_or_dsn is not None and not isinstance(connection_or_dsn, (Connection, str)):
            raise TypeError("connection_or_dsn must be a pgdurable Connection, a DSN string or None, "
                            f"got {type(connection_or_dsn).__name__}")
        self.namespace = namespace
        self._lock = threading.Lock()
        self._closed = False
        self._calls: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._connection = _LoopConnection(connection_or_dsn, self._loop)
        self._async = _client.Client(connection=self._connection, namespace=namespace)
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True,
                                        name=f"pgdurable-sync-{namespace}")
        self._thread.start()
        started.wait()

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(started.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"pgdurable.sync.Client(namespace={self.namespace!r}, {state})"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs ``coro`` on the private loop and returns its result in the calling thread."""
        with self._lock:
            if self._closed:
                coro.close()
                raise RuntimeError("this pgdurable.sync.Client is closed: create a new one")
            if threading.current_thread() is self._thread:
                coro.close()
                raise RuntimeError("a pgdurable.sync.Client cannot be called from its own event loop "
                                   "(it would wait for itself): await the async client there")
            future = asyncio.run_coroutine_threadsafe(self._tracked(coro), self._loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise RuntimeError("the pgdurable.sync.Client was closed while this call waited") from None
        except BaseException:
            future.cancel()  # KeyboardInterrupt in the caller: stop the call too
            raise

    def start(self, *, args: list[Any] | tuple[Any, ...] = (), task_queue: str, workflow_name: str,
              workflow_id: str | None = None, retry: RetryPolicy | None = None,
              id_reuse: str = "reject", priority: int = 0, partition_key: str | None = None,
              dedup_id: str | None = None, start_delay: Duration | None = None) -> WorkflowHandle:
        """Starts a workflow and returns its handle, as :meth:`pgdurable.WorkflowClient.start`
        (:class:`~pgdurable.errors.DuplicateWorkflowError` for a running id, unless
        ``id_reuse="return_existing"``; the same flow control options)."""
        handle = self._run(self._async.workflow.start(
            args=args, task_queue=task_queue, workflow_name=workflow_name, workflow_id=workflow_id,
            retry=retry, id_reuse=id_reuse, priority=priority, partition_key=partition_key,
            dedup_id=dedup_id, start_delay=start_delay))
        return WorkflowHandle(self, handle)

    def set_stream_limits(self, stream: str, max_running: int | None = None, rate_limit: int | None = None,
                          rate_period: Duration | None = None) -> None:
        """Limits a stream, as :meth:`pgdurable.Client.set_stream_limits`."""
        self._run(self._async.set_stream_limits(stream, max_running=max_running, rate_limit=rate_limit,
                                                rate_period=rate_period))

    def stream_limits(self) -> list[dict[str, Any]]:
        """The streams with limits, as :meth:`pgdurable.Client.stream_limits`."""
        return self._run(self._async.stream_limits())

    def start_many(self, starts: Iterable[Mapping[str, Any]]) -> list[WorkflowHandle]:
        """Starts many workflows in one transaction and returns their handles in order, as
        :meth:`pgdurable.WorkflowClient.start_many` (:class:`~pgdurable.errors.StartManyError`
        when some failed: the others are started, and its ``handles`` are sync handles)."""
        try:
            handles = self._run(self._async.workflow.start_many(list(starts)))
        except errors.StartManyError as exc:
            exc.handles = [None if h is None else WorkflowHandle(self, h) for h in exc.handles]
            raise
        return [WorkflowHandle(self, handle) for handle in handles]

    def get_handle(self, *ids: str) -> WorkflowHandle:
        """A handle to a workflow (no I/O): ``get_handle(workflow_id)``, or the seed's
        ``get_handle(task_queue, workflow_name, workflow_id)``."""
        if len(ids) not in (1, 3):
            raise TypeError("get_handle takes (workflow_id) or (task_queue, workflow_name, workflow_id), "
                            f"got {len(ids)} arguments")
        handle = self._async.workflow.get_handle(*ids)
        return WorkflowHandle(self, handle)

    def signal(self, signal_id: str, data: Any = None) -> None:
        """Sends a signal (namespace-wide id): the oldest waiting condition takes it, else it is
        buffered. Never repeated by the SDK (a signal sent twice is delivered twice)."""
        self._run(self._async.workflow.signal(signal_id, data))

    def fork(self, workflow_id: str, *, from_event_id: int,
             new_workflow_id: str | None = None) -> WorkflowHandle:
        """Starts a copy of a workflow from one of its events, as :meth:`pgdurable.WorkflowClient.fork`."""
        handle = self._run(self._async.workflow.fork(workflow_id, from_event_id=from_event_id,
                                                     new_workflow_id=new_workflow_id))
        return WorkflowHandle(self, handle)

    def list(self, status: str | None = None, workflow_name: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        """Workflow runs, newest first: workflow_id, workflow_name, task_queue, status, created_at,
        updated_at, run_id."""
        return self._run(self._async.workflow.list(status, workflow_name, limit))

    def close(self) -> None:
        """Cancels the calls still waiting (they raise ``RuntimeError``), closes the connection
        pools and stops the background thread. Idempotent; safe from any thread but the client's own."""
        with self._lock:
            if self._closed:
                return
            if threading.current_thread() is self._thread:
                raise RuntimeError("a pgdurable.sync.Client cannot be closed from its own event loop")
            self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await coro
        finally:
            self._calls.discard(task)

    async def _shutdown(self) -> None:
        calls = list(self._calls)
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await self._connection.close()
        await self._loop.shutdown_asyncgens()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class WorkflowHandle:
    """A synchronous handle to a workflow: its result, status, state, history; signal, cancel,
    interrupt. Each method is that of :class:`pgdurable.WorkflowHandle`, run by its sync client."""

    def __init__(self, client: Client, handle: _client.WorkflowHandle) -> None:
        self._client = client
        self._handle = handle

    def __repr__(self) -> str:
        return (f"pgdurable.sync.WorkflowHandle(workflow_id={self.workflow_id!r}, "
                f"workflow_name={self.workflow_name!r})")

    @property
    def workflow_id(self) -> str:
        """The workflow's id."""
        return self._handle.workflow_id

    @property
    def task_queue(self) -> str | None:
        """The task queue it was started on (None when the handle was made from its id alone)."""
        return self._handle.task_queue

    @property
    def workflow_name(self) -> str | None:
        """The workflow's name (None when the handle was made from its id alone)."""
        return self._handle.workflow_name

    def result(self, timeout: float | None = None) -> Any:
        """Blocks until the workflow (following continue-as-new) closes and returns its result, or
        raises WorkflowFailedError / WorkflowCancelledError / WorkflowInterruptedError /
        TimeoutError (after ``timeout`` seconds)."""
        return self._client._run(self._handle.result(timeout))

    def status(self) -> str:
        """running, completed, failed, cancelled or interrupted (of the latest run)."""
        return self._client._run(self._handle.status())

    def state(self) -> dict[str, Any]:
        """Status, result, error, lineage, what the workflow waits on, and its last task failure."""
        return self._client._run(self._handle.state())

    def signal(self, signal_id: str, data: Any = None) -> None:
        """Sends a signal, as :meth:`pgdurable.WorkflowHandle.signal`."""
        self._client._run(self._handle.signal(signal_id, data))

    def cancel(self) -> bool:
        """Requests cooperative cancellation; False when the workflow was not running or is
        already being cancelled."""
        return self._client._run(self._handle.cancel())

    def interrupt(self, reason: str | None = None) -> bool:
        """Stops the workflow hard: nothing of it runs again. False when it was not running."""
        return self._client._run(self._handle.interrupt(reason))

    def reset(self, event_id: int, reason: str | None = None) -> int:
        """Restarts the workflow from one of its events, as :meth:`pgdurable.WorkflowHandle.reset`;
        returns the new run id."""
        return self._client._run(self._handle.reset(event_id, reason))

    def history(self, all_runs: bool = False) -> list[dict[str, Any]]:
        """The history as JSON-serialisable dicts (see :meth:`pgdurable.WorkflowHandle.history`)."""
        return self._client._run(self._handle.history(all_runs))
