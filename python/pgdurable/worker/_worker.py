"""The worker as a whole: :class:`Worker` composes a workflow-task worker (``_workflow``) and an
activity worker (``_activity``) over one connection and one :class:`~._calls.Calls`, the way
Temporal's SDK composes its workers.

It owns creation (the login of scoped workers, the role's scope, the channel names), what the
worker can take at once from a completing call (eager dispatch), and shutdown; plus
:func:`register_activity_worker` and :func:`shutdown_all`.

A worker consumes ``<task_queue>`` (workflow tasks of the workflows it was
given) and ``<task_queue>-activity`` (the activities registered in this
process). It sleeps until a NOTIFY, the next timer, or a poll interval,
whichever comes first; a lost notification costs latency, never work.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from .. import _registry as registry
from .. import _store as store
from .. import errors
from ..connection import Connection
from ._activity import ActivityWorker
from ._calls import Calls
from ._completer import Completer
from ._workflow import WorkflowWorker

log = logging.getLogger("pgdurable.worker")

_workers: set[Worker] = set()

DEFAULT_LEASE = 30.0
HEARTBEAT_INTERVAL = 10.0
"""Seconds between two registrations of a worker in ``durable.workers`` (it is live until it misses 3)."""


class Worker:
    """Hosts workflow and activity functions for one task queue. Create with :meth:`create`."""

    def __init__(self, *, connection: Connection, task_queue: str,
                 workflows: dict[str, Callable[..., Any]], namespace: str, concurrency: int,
                 activity_queue: str | None, owns_connection: bool,
                 lease_seconds: float = DEFAULT_LEASE, max_cached_workflows: int = 1000) -> None:
        if not task_queue or not isinstance(task_queue, str):
            raise ValueError("task_queue must be a non-empty string")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.task_queue = task_queue
        self.namespace = namespace
        self.concurrency = concurrency
        self.workflows = workflows
        self.activity_stream = f"{activity_queue}-activity" if activity_queue else None
        self._conn = connection
        self._owns_connection = owns_connection
        self._lease = timedelta(seconds=lease_seconds)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._calls = Calls(connection, self._owner, self._lease)
        self._completer = Completer(self._calls)
        self._max_cached = max_cached_workflows
        self._stopping = False
        self._listener: Any = None
        self._channels: dict[str, str] = {}
        # Made by _start, once the role's scope has said what this worker serves.
        self._workflow_worker: WorkflowWorker | None = None
        self._activity_worker: ActivityWorker | None = None
        self._heartbeat_interval = HEARTBEAT_INTERVAL
        self._heartbeat_wakeup = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None

    # -- creation --------------------------------------------------------------
    @classmethod
    async def create(cls, *, connection: Connection, task_queue: str,
                     workflow: Callable[..., Any] | None = None,
                     workflows: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]] = (),
                     activities: Any = None,
                     namespace: str = "durable", concurrency: int = 10,
                     worker_credentials: Any = None, lease_seconds: float = DEFAULT_LEASE,
                     max_cached_workflows: int = 1000) -> Worker:
        """Starts a worker in the background of the running event loop and returns it.

        A workflow's name is its function's ``__name__``; ``workflows={"name": fn, ...}`` names them
        explicitly (as a dict of ``activities`` names activities). Two different functions under one
        name raise ``ValueError`` naming both."""
        named = list(workflows.items()) if isinstance(workflows, Mapping) else [
            (getattr(fn, "__name__", None), fn) for fn in workflows]
        pairs = ([(getattr(workflow, "__name__", None), workflow)] if workflow is not None else []) + named
        table: dict[str, Callable[..., Any]] = {}
        for name, fn in pairs:
            if not inspect.iscoroutinefunction(fn):
                raise TypeError(f"workflow {getattr(fn, '__name__', fn)!r} must be an async def function")
            if not isinstance(name, str) or not name:
                raise TypeError(f"a workflow name must be a non-empty string, got {name!r}")
            registry.check_conflict("workflow", name, table.get(name), fn)
            table[name] = fn
        if activities is not None:
            registry.register_activities(activities)
        conn, owns = _login(connection, worker_credentials)
        worker = cls(connection=conn, task_queue=task_queue, workflows=table, namespace=namespace,
                     concurrency=concurrency, activity_queue=task_queue, owns_connection=owns,
                     lease_seconds=lease_seconds, max_cached_workflows=max_cached_workflows)
        await worker._start()
        return worker

    async def _start(self) -> None:
        if self._owns_connection:
            try:
                await self._apply_role_scope()
            except BaseException:
                await self._conn.close()  # a refused worker keeps no connection open
                raise
        streams = ([self.task_queue] if self.workflows else []) + (
            [self.activity_stream] if self.activity_stream else [])
        async with self._conn.connect() as conn:
            # Channel names are salted in the database: only it can tell a worker its own.
            self._channels = dict(zip(streams, await store.stream_channels(conn, self.namespace, streams),
                                      strict=True))
        self._listener = await self._conn.listener()
        if self.workflows:
            self._workflow_worker = WorkflowWorker(
                calls=self._calls, completer=self._completer, namespace=self.namespace,
                task_queue=self.task_queue,
                workflows=self.workflows, concurrency=self.concurrency, max_cached=self._max_cached,
                eager=self._eager)
        if self.activity_stream:
            self._activity_worker = ActivityWorker(
                calls=self._calls, completer=self._completer, namespace=self.namespace,
                stream=self.activity_stream,
                concurrency=self.concurrency, eager=self._eager)
        wf, act = self._workflow_worker, self._activity_worker
        if wf is not None:
            wf.activities = act
            await wf.start(self._listener, self._channels[self.task_queue])
        if act is not None:
            assert self.activity_stream is not None
            act.workflows = wf
            await act.start(self._listener, self._channels[self.activity_stream])
        await self._register()
        if wf is not None:
            await self._listen_for_runs(wf)
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="pgdurable-worker-heartbeat")
        _workers.add(self)
        log.info("worker %s serving task queue %r (workflows: %s; activities on %r)", self._owner,
                 self.task_queue, ", ".join(self.workflows) or "none", self.activity_stream)

    async def _listen_for_runs(self, wf: WorkflowWorker) -> None:
        """This worker's own channel (the runs it caches get their events there first). Only a
        registered, live worker gets it; without it the stream's NOTIFY and the claim loop do."""
        try:
            async with self._conn.connect() as conn:
                channel = await store.worker_channel(conn, self.namespace, self._owner)
        except errors.DurableError as exc:
            log.info("worker %s: no channel of its own (%s); runs it caches wake through the claim loop",
                     self._owner, exc)
            return
        await wf.listen_for_runs(self._listener, channel)

    async def _apply_role_scope(self) -> None:
        """A scoped role serves only the streams it covers: none → WorkerRoleError, some → a warning."""
        async with self._conn.connect() as conn:
            scope = await store.worker_scope(conn)
        if scope is None:
            return  # logged in as a role that is not a provisioned worker role: not scoped
        wanted = ([self.task_queue] if self.workflows else []) + (
            [self.activity_stream] if self.activity_stream else [])
        if scope["revoked"]:
            raise errors.WorkerRoleError(f"worker role {scope['role_name']} is revoked: provision a new one")
        allowed = set(scope["stream_names"]) if scope["namespace"] == self.namespace else set()
        covered = [s for s in wanted if s in allowed]
        if not covered:
            raise errors.WorkerRoleError(
                f"worker role {scope['role_name']} covers none of the streams this worker serves "
                f"({', '.join(wanted)} in namespace {self.namespace!r}); it may consume "
                f"{', '.join(scope['stream_names'])} in namespace {scope['namespace']!r}")
        left = [s for s in wanted if s not in allowed]
        if left:
            log.warning("worker role %s does not cover %s: this worker leaves %s to other workers",
                        scope["role_name"], ", ".join(left), "them" if len(left) > 1 else "it")
        if self.task_queue not in allowed:
            self.workflows = {}
        if self.activity_stream not in allowed:
            self.activity_stream = None

    # -- the registry of workers ---------------------------------------------------------
    async def _register(self, stopped: bool = False) -> None:
        """Registers (or refreshes) this worker in ``durable.workers``: what it serves, where it runs.
        A failed heartbeat is logged once per outage; the next one tries again."""
        workflow_names = sorted(self.workflows) if self._workflow_worker is not None else []
        activity_names = sorted(registry.names()) if self._activity_worker is not None else []
        call = (self.namespace, self._owner, socket.gethostname(), os.getpid(), self.task_queue,
                workflow_names, activity_names, timedelta(seconds=self._heartbeat_interval), stopped)
        if stopped:
            with contextlib.suppress(errors.DurableError):  # leaving anyway: it stops being live by itself
                await self._calls.once(lambda c: store.heartbeat_worker(c, *call))
            return
        await self._calls.poll(lambda c: store.heartbeat_worker(c, *call))

    async def _heartbeat_loop(self) -> None:
        """Every ``HEARTBEAT_INTERVAL`` seconds, one cheap upsert: the worker stays live."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._heartbeat_wakeup.wait(), self._heartbeat_interval)
            if not self._stopping:
                await self._register()

    async def __aenter__(self) -> Worker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- eager dispatch ---------------------------------------------------------------
    def _eager(self, capacity: int = 0) -> dict[str, Any] | None:
        """What this worker can take at once from a completing call (eager dispatch): the workflow
        task it wakes, and up to ``capacity`` activities (slots reserved by the caller)."""
        eager: dict[str, Any] = {"owner": self._owner, "lease_seconds": self._lease.total_seconds()}
        if self.workflows and not self._stopping:
            eager.update(task_queue=self.task_queue, workflow_names=list(self.workflows))
        if capacity > 0 and self.activity_stream:
            eager.update(activity_stream=self.activity_stream, activity_names=registry.names(),
                         capacity=capacity)
        return eager if len(eager) > 2 else None

    # -- shutdown -------------------------------------------------------------------
    async def shutdown(self, grace: float = 30) -> None:
        """Stops claiming; lets in-flight tasks finish and be recorded within ``grace`` seconds;
        past it, releases the leases of what still runs (nothing is lost)."""
        if self._stopping:
            return
        self._stopping = True
        parts = [p for p in (self._workflow_worker, self._activity_worker) if p is not None]
        for part in parts:
            part.stop()
        if self._heartbeat is not None:
            self._heartbeat_wakeup.set()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            await self._register(stopped=True)  # it takes no new work from here on
        # The claim loops see they are stopped at their next turn (stop() wakes them); cancelling
        # one mid-claim would lose the rows it leased until their leases expire.
        claimers = [p.claimer for p in parts if p.claimer is not None]
        if claimers:
            _, stuck = await asyncio.wait(claimers, timeout=5)
            for loop_task in stuck:
                loop_task.cancel()
        inflight = [task for part in parts for task in part.in_flight()]
        if inflight:
            _, late = await asyncio.wait(inflight, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=10)
        for part in parts:
            await part.close()
        if self._owns_connection:
            await self._conn.close()
        _workers.discard(self)
        log.info("worker %s stopped", self._owner)


def _login(connection: Connection, credentials: Any) -> tuple[Connection, bool]:
    if credentials is None:
        return connection, False
    if isinstance(credentials, dict):
        user, password = credentials.get("user"), credentials.get("password")
    else:
        user = getattr(credentials, "role_name", None) or getattr(credentials, "user", None)
        password = getattr(credentials, "password", None)
    if not user:
        raise ValueError("worker_credentials needs a user (role name) and a password")
    return connection.with_login(user, password), True


async def register_activity_worker(config: dict[str, Any], activities: Any,
                                   activity_task_queue: str | None = None) -> Worker:
    """Serves ``activities`` on ``<activity_task_queue or config["task_queue"]>-activity``,
    possibly in another process or on another machine."""
    queue = activity_task_queue or config.get("task_queue")
    if not queue:
        raise ValueError("register_activity_worker needs activity_task_queue or config['task_queue']")
    if "connection" not in config:
        raise ValueError("register_activity_worker needs config['connection']")
    registry.register_activities(activities)
    conn, owns = _login(config["connection"], config.get("worker_credentials"))
    worker = Worker(connection=conn, task_queue=queue, workflows={},
                    namespace=config.get("namespace", "durable"), concurrency=config.get("concurrency", 10),
                    activity_queue=queue, owns_connection=owns,
                    lease_seconds=config.get("lease_seconds", DEFAULT_LEASE))
    await worker._start()
    return worker


async def shutdown_all(grace: float = 30) -> None:
    """Shuts down every worker of this process."""
    await asyncio.gather(*(w.shutdown(grace) for w in list(_workers)))
