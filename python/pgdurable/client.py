"""The client: start workflows, signal them, read their results, state and history."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, overload

from . import _history, _observe, errors, payloads
from . import _store as store
from ._batching import Batcher
from ._validate import check_text
from .connection import Connection
from .durations import Duration, to_seconds
from .retry import RetryPolicy
from .schedule import ScheduleClient

log = logging.getLogger("pgdurable.client")

_CLOSED = {"completed", "failed", "cancelled", "interrupted"}

_MAX_STARTS_PER_CALL = 1000
"""durable.start_workflows_v1 takes at most this many starts."""
_MAX_ARGS_CHARS_PER_CALL = 32 * 1024 * 1024
"""A call of start_workflows_v1 carries at most this many characters of args (a start over it goes
alone): far below what one jsonb value may hold."""
_MAX_OUTCOMES_PER_CALL = 1000


@dataclass(frozen=True)
class _Start:
    """One validated start: what ``durable.start_workflows_v1`` takes for it."""

    workflow_id: str
    workflow_name: str
    task_queue: str
    args: str
    retry: dict[str, Any] | None
    id_reuse: str
    headers: dict[str, str] | None = None  # a trace context, kept in the run's workflow_started event
    # Flow control: see WorkflowClient.start.
    priority: int = 0
    partition_key: str | None = None
    dedup_id: str | None = None
    start_delay: float | None = None  # seconds

    def as_json(self) -> dict[str, Any]:
        return {"workflow_id": self.workflow_id, "workflow_name": self.workflow_name,
                "task_queue": self.task_queue, "args": self.args, "retry": self.retry,
                "id_reuse": self.id_reuse, "headers": self.headers, "priority": self.priority,
                "partition_key": self.partition_key, "dedup_id": self.dedup_id,
                "start_delay_seconds": self.start_delay}


def _prepare_start(*, args: list[Any] | tuple[Any, ...] = (), task_queue: str, workflow_name: str,
                   workflow_id: str | None = None, retry: RetryPolicy | None = None,
                   id_reuse: str = "reject", priority: int = 0, partition_key: str | None = None,
                   dedup_id: str | None = None, start_delay: Duration | None = None) -> _Start:
    """Checks one start's arguments (``WorkflowClient.start``'s) and encodes its args."""
    from .durable import guid

    if id_reuse not in ("reject", "return_existing"):
        raise ValueError(f"id_reuse must be 'reject' or 'return_existing', got {id_reuse!r}")
    if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
        raise TypeError("args must be a list of the workflow function's arguments")
    check_text("task_queue", task_queue)
    check_text("workflow_name", workflow_name)
    workflow_id = guid() if workflow_id is None else workflow_id
    check_text("workflow_id", workflow_id)
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry must be a pgdurable.RetryPolicy or None, got {type(retry).__name__}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError("priority must be an int (higher runs first; default 0), "
                        f"got {type(priority).__name__}")
    if not -32768 <= priority <= 32767:
        raise ValueError(f"priority {priority} is out of range: give an int from -32768 to 32767")
    if partition_key is not None:
        check_text("partition_key", partition_key)
    if dedup_id is not None:
        check_text("dedup_id", dedup_id)
    delay = None if start_delay is None else to_seconds(start_delay, what="start_delay")
    return _Start(workflow_id, workflow_name, task_queue, payloads.dumps(list(args)),
                  None if retry is None else retry.to_json(), id_reuse, priority=priority,
                  partition_key=partition_key, dedup_id=dedup_id, start_delay=delay)


def _calls(starts: list[_Start]) -> list[list[_Start]]:
    """``starts`` cut, in order, into calls of start_workflows_v1 (its item limit, and a bound on the
    args one call carries)."""
    calls: list[list[_Start]] = []
    size = 0
    for start in starts:
        full = len(calls[-1]) >= _MAX_STARTS_PER_CALL if calls else True
        if full or size + len(start.args) > _MAX_ARGS_CHARS_PER_CALL:
            calls.append([])
            size = 0
        calls[-1].append(start)
        size += len(start.args)
    return calls


class _Batchers:
    """A client's group commits on one event loop: starts (those that may be repeated after a lost
    connection apart from those that may not) and outcome reads."""

    def __init__(self, client: Client) -> None:
        self.start = Batcher(functools.partial(client._send_starts, repeatable=False),
                             max_items=_MAX_STARTS_PER_CALL, name="start")
        self.start_existing = Batcher(functools.partial(client._send_starts, repeatable=True),
                                      max_items=_MAX_STARTS_PER_CALL, name="start (return_existing)")
        self.outcome = Batcher(client._read_outcomes, max_items=_MAX_OUTCOMES_PER_CALL, name="outcome read")


class Client:
    """Starts workflows, sends signals and reads results in one namespace."""

    def __init__(self, *, connection: Connection, namespace: str = "durable") -> None:
        self.connection = connection
        self.namespace = namespace
        self.workflow = WorkflowClient(self)
        self.schedule = ScheduleClient(self)
        self._closed_channel: str | None = None
        self._batchers_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batchers] = (
            weakref.WeakKeyDictionary())

    def _batchers(self) -> _Batchers:
        """This event loop's batchers (a batch's calls and futures belong to one loop)."""
        loop = asyncio.get_running_loop()
        batchers = self._batchers_by_loop.get(loop)
        if batchers is None:
            batchers = self._batchers_by_loop[loop] = _Batchers(self)
        return batchers

    async def _send_starts(self, starts: list[_Start], *, repeatable: bool) -> list[Any]:
        """One group commit of starts: per start, its row (run_id, started) or its error. A start
        whose commit may have been lost is made again only when ``repeatable`` (all
        ``return_existing``): otherwise it would be refused as a duplicate of itself."""
        outcomes: list[Any] = []
        for call in _calls(starts):
            try:
                if len(call) == 1:  # a lone start: the plainer function, the same outcome
                    (one,) = call
                    outcomes.append(await self.connection.run(
                        lambda conn, one=one: store.start_workflow(
                            conn, self.namespace, one.workflow_id, one.workflow_name, one.task_queue,
                            one.args, one.retry, one.id_reuse, one.headers, priority=one.priority,
                            partition_key=one.partition_key, dedup_id=one.dedup_id,
                            start_delay=one.start_delay),
                        repeatable=repeatable))
                    continue
                items = [start.as_json() for start in call]
                outcomes += await self.connection.run(
                    lambda conn, items=items: store.start_workflows(conn, self.namespace, items),
                    repeatable=repeatable)
            except errors.DurableError as exc:
                outcomes += [exc] * len(call)
        return outcomes

    async def _read_outcomes(self, workflow_ids: list[str]) -> list[dict[str, Any] | None]:
        """One read of the outcomes of many handles (woken together): per id, in order, its row."""
        if len(workflow_ids) == 1:  # a lone read: the plainer function, the same row
            row = await self.connection.run(
                lambda conn: store.workflow_outcome(conn, self.namespace, workflow_ids[0]))
            return [row]
        rows = await self.connection.run(
            lambda conn: store.workflow_outcomes(conn, self.namespace, workflow_ids))
        return [None if row is None else dict(row) for row in map(rows.get, workflow_ids)]

    async def closed_channel(self) -> str:
        """The channel the engine NOTIFYs when a run of this namespace closes (asked once)."""
        if self._closed_channel is None:
            self._closed_channel = await self.connection.run(
                lambda conn: store.closed_channel(conn, self.namespace))
        return self._closed_channel

    async def set_stream_limits(self, stream: str, max_running: int | None = None,
                                rate_limit: int | None = None,
                                rate_period: Duration | None = None) -> None:
        """Limits a stream of this namespace, across all workers, at once (running workers read the
        limits inside every claim): at most ``max_running`` tasks leased at once (workflow tasks on
        a task queue, activity attempts on ``<task_queue>-activity``; 0 pauses the stream) and at
        most ``rate_limit`` claims started in any window of ``rate_period`` (sliding; seconds,
        ``timedelta`` or ``"1 second"``). ``None`` clears that limit; all ``None`` clears them all.
        Needs the engine's owner (a worker role is refused)."""
        check_text("stream", stream)
        limits = check_stream_limits(max_running, rate_limit, rate_period)
        await self.connection.run(lambda conn: store.set_stream_limits(conn, self.namespace, stream, *limits))

    async def stream_limits(self) -> list[dict[str, Any]]:
        """The streams of this namespace that have limits: dicts with ``stream``, ``max_running``,
        ``rate_limit`` and ``rate_period`` (seconds), ``None`` where a limit is not set."""
        rows = await self.connection.run(lambda conn: store.stream_limits(conn, self.namespace))
        return [{"stream": row["stream"], "max_running": row["max_running"], "rate_limit": row["rate_limit"],
                 "rate_period": None if row["rate_period"] is None else row["rate_period"].total_seconds()}
                for row in rows]


def check_stream_limits(max_running: int | None, rate_limit: int | None,
                        rate_period: Duration | None) -> tuple[int | None, int | None, float | None]:
    """Checks stream limits (``Client.set_stream_limits``'s) before anything is sent: the limits,
    the period in seconds. ``TypeError`` for a wrong type, ``ValueError`` for a bad value."""
    for what, value in (("max_running", max_running), ("rate_limit", rate_limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{what} must be an int or None, got {type(value).__name__}")
    if max_running is not None and max_running < 0:
        raise ValueError(f"max_running {max_running} is negative: give 0 (pause the stream) or more, "
                         "or None for no limit")
    if (rate_limit is None) != (rate_period is None):
        raise ValueError("a rate limit needs both rate_limit and rate_period (e.g. rate_limit=10, "
                         "rate_period='1 second'), or neither")
    if rate_limit is not None and not 1 <= rate_limit <= 100000:
        raise ValueError(f"rate_limit {rate_limit} is out of range: give 1 to 100000 claims per period")
    period = None if rate_period is None else to_seconds(rate_period, what="rate_period")
    if period is not None and period <= 0:
        raise ValueError(f"rate_period {rate_period!r} must be longer than zero (e.g. '1 second')")
    return max_running, rate_limit, period


class WorkflowClient:
    """``client.workflow``: the workflow operations of a :class:`Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def start(self, *, args: list[Any] | tuple[Any, ...] = (), task_queue: str, workflow_name: str,
                    workflow_id: str | None = None, retry: RetryPolicy | None = None,
                    id_reuse: str = "reject", priority: int = 0, partition_key: str | None = None,
                    dedup_id: str | None = None, start_delay: Duration | None = None) -> WorkflowHandle:
        """Starts a workflow and returns its handle. A running workflow with the same id raises
        :class:`DuplicateWorkflowError`, unless ``id_reuse="return_existing"``.

        Flow control: ``priority`` (an int; higher runs first, FIFO within a priority) orders the
        run's workflow tasks and activities in the claims; runs with the same ``partition_key`` run
        one at a time (whole runs, start to close), in start order; while a run started with
        ``dedup_id`` is running, another start with it raises :class:`DuplicateWorkflowError` (or,
        with ``id_reuse="return_existing"``, returns that run's handle); ``start_delay`` (seconds,
        ``timedelta`` or ``"5 minutes"``) makes its first workflow task due that much later.

        Starts made at the same time on one client share a transaction (a group commit: a lone
        start goes at once; those arriving while one commits go together in the next); each still
        gets its own outcome, and returns only once its start has committed."""
        start = _prepare_start(args=args, task_queue=task_queue, workflow_name=workflow_name,
                               workflow_id=workflow_id, retry=retry, id_reuse=id_reuse, priority=priority,
                               partition_key=partition_key, dedup_id=dedup_id, start_delay=start_delay)
        batchers = self._client._batchers()
        # A start whose commit was lost would be refused as a duplicate if made again.
        batcher = batchers.start_existing if start.id_reuse == "return_existing" else batchers.start
        with _observe.start_workflow(start.workflow_id, start.workflow_name, start.task_queue) as headers:
            if headers is not None:
                start = replace(start, headers=headers)
            row = await batcher.submit(start)
        return self._started(start, row)

    def _started(self, start: _Start, row: dict[str, Any]) -> WorkflowHandle:
        log.info("workflow %s (%s) started on task queue %r", start.workflow_id, start.workflow_name,
                 start.task_queue)
        # A dedup id held by another running workflow returns that one (id_reuse="return_existing").
        workflow_id = row.get("workflow_id") or start.workflow_id
        if workflow_id != start.workflow_id:
            return self.get_handle(workflow_id)
        handle = self.get_handle(start.task_queue, start.workflow_name, workflow_id)
        # A run this call started has these names; an existing one returned is checked on first use.
        handle._names_checked = bool(row["started"])
        return handle

    async def start_many(self, starts: Iterable[Mapping[str, Any]]) -> list[WorkflowHandle]:
        """Starts many workflows in one transaction (one per 1000 starts, or per 32 Mi characters
        of args) and returns their handles, in order.

        Each of ``starts`` is a dict of :meth:`start`'s keyword arguments (``args``, ``task_queue``,
        ``workflow_name``, ``workflow_id``, ``retry``, ``id_reuse``, ``priority``, ``partition_key``,
        ``dedup_id``, ``start_delay``). All are checked first: a bad
        one raises what :meth:`start` raises for it, its message naming ``starts[<index>]``, and
        nothing is started. In the database each start succeeds or fails alone: when some fail
        (a running id, ...), every other one is still started and
        :class:`~pgdurable.errors.StartManyError` is raised; its ``errors`` maps each failed index to
        the error :meth:`start` would have raised for it, its ``handles`` holds the handles of the
        started ones (``None`` at a failed index)."""
        prepared: list[_Start] = []
        for index, item in enumerate(starts):
            if not isinstance(item, Mapping):
                raise TypeError(f"starts[{index}] must be a dict of start()'s keyword arguments, "
                                f"got {type(item).__name__}")
            try:
                prepared.append(_prepare_start(**item))
            except (TypeError, ValueError) as exc:
                raise _at_index(exc, index) from exc
        if not prepared:
            return []
        repeatable = all(start.id_reuse == "return_existing" for start in prepared)
        outcomes = await self._client._send_starts(prepared, repeatable=repeatable)
        handles: list[WorkflowHandle | None] = []
        failed: dict[int, errors.DurableError] = {}
        for index, (start, outcome) in enumerate(zip(prepared, outcomes, strict=True)):
            if isinstance(outcome, errors.DurableError):
                failed[index] = outcome
                handles.append(None)
            else:
                handles.append(self._started(start, outcome))
        if failed:
            shown = "; ".join(f"starts[{index}] ({type(exc).__name__}): {exc}"
                              for index, exc in list(failed.items())[:5])
            more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
            raise errors.StartManyError(
                f"{len(failed)} of {len(prepared)} starts failed, every other one started (their handles "
                f"are in the error's .handles, each failure in its .errors by index): {shown}{more}",
                errors=failed, handles=handles)
        return [handle for handle in handles if handle is not None]

    @overload
    def get_handle(self, workflow_id: str, /) -> WorkflowHandle: ...

    @overload
    def get_handle(self, task_queue: str, workflow_name: str, workflow_id: str, /) -> WorkflowHandle: ...

    @overload
    def get_handle(self, *, workflow_id: str, task_queue: str | None = None,
                   workflow_name: str | None = None) -> WorkflowHandle: ...

    def get_handle(self, *args: str, workflow_id: str | None = None, task_queue: str | None = None,
                   workflow_name: str | None = None) -> WorkflowHandle:
        """A handle to a workflow by id (no I/O): ``get_handle(workflow_id)``, or the seed's
        ``get_handle(task_queue, workflow_name, workflow_id)``. Names given (not empty) are checked
        against the workflow on the handle's first use: a mismatch raises
        :class:`~pgdurable.errors.InvalidArgumentError` naming both values."""
        if len(args) == 1 and workflow_id is None:
            (workflow_id,) = args
        elif len(args) == 3 and workflow_id is None and task_queue is None and workflow_name is None:
            task_queue, workflow_name, workflow_id = args
        elif args or workflow_id is None:
            raise TypeError("get_handle takes get_handle(workflow_id) or "
                            "get_handle(task_queue, workflow_name, workflow_id)")
        check_text("workflow_id", workflow_id)
        # An empty name is "not given" (the seed's callers passed "" for a name they did not know).
        if task_queue:
            check_text("task_queue", task_queue)
        if workflow_name:
            check_text("workflow_name", workflow_name)
        return WorkflowHandle(self._client, workflow_id, task_queue=task_queue or None,
                              workflow_name=workflow_name or None)

    async def signal(self, signal_id: str, data: Any = None) -> None:
        """Sends a signal to the namespace-wide mailbox of ``signal_id``: the oldest waiting condition
        on that id, of any workflow, takes it, else it is buffered. To signal one workflow, use
        ``handle.signal``."""
        check_text("signal_id", signal_id)
        encoded = payloads.dumps(data)
        # A signal sent twice would be delivered twice: never repeated.
        with _observe.signal(signal_id, None) as headers:
            await self._client.connection.run(
                lambda conn: store.send_signal(conn, self._client.namespace, signal_id, encoded,
                                               headers=headers),
                repeatable=False)

    async def fork(self, workflow_id: str, *, from_event_id: int,
                   new_workflow_id: str | None = None) -> WorkflowHandle:
        """Starts a copy of workflow ``workflow_id`` (its latest run's history below
        ``from_event_id``, the same points as :meth:`WorkflowHandle.reset`) under
        ``new_workflow_id`` (default a new uuid), leaving the original alone."""
        if new_workflow_id is not None:
            check_text("new_workflow_id", new_workflow_id)
        new_id = await self._client.connection.run(
            lambda conn: store.fork_workflow(conn, self._client.namespace, workflow_id, from_event_id,
                                             new_workflow_id),
            repeatable=False)
        return WorkflowHandle(self._client, new_id)

    async def list(self, status: str | None = None, workflow_name: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
        """Workflow runs, newest first: workflow_id, workflow_name, task_queue, status,
        created_at, updated_at."""
        rows = await self._client.connection.run(
            lambda conn: store.list_workflows(conn, self._client.namespace, status, workflow_name, limit))
        return [{k: row[k] for k in ("workflow_id", "workflow_name", "task_queue", "status",
                                     "created_at", "updated_at", "run_id")} for row in rows]


class WorkflowHandle:
    """A handle to a workflow: its result, status, state, history; signal, cancel, interrupt."""

    def __init__(self, client: Client, workflow_id: str, *, task_queue: str | None = None,
                 workflow_name: str | None = None) -> None:
        self._client = client
        self.workflow_id = workflow_id
        self.task_queue = task_queue
        self.workflow_name = workflow_name
        # The names the handle was given are checked against the workflow once.
        self._names_checked = task_queue is None and workflow_name is None

    def __repr__(self) -> str:
        return f"WorkflowHandle(workflow_id={self.workflow_id!r}, workflow_name={self.workflow_name!r})"

    def _check_names(self, workflow: dict[str, Any]) -> None:
        """Raises InvalidArgumentError when the workflow is not the one the handle names."""
        for key, given in (("workflow_name", self.workflow_name), ("task_queue", self.task_queue)):
            actual = workflow.get(key)
            if given is not None and actual != given:
                raise errors.InvalidArgumentError(
                    f"workflow {self.workflow_id!r} has {key} {actual!r}, not {given!r} as its handle "
                    f"says: get the handle with the right names, or with get_handle({self.workflow_id!r})")
        self._names_checked = True

    async def _outcome(self) -> dict[str, Any]:
        # Handles reading at the same time (woken together by closes) share one query.
        row = await self._client._batchers().outcome.submit(self.workflow_id)
        if row is None:
            raise errors.WorkflowNotFoundError(
                f"workflow {self.workflow_id!r} not found in namespace {self._client.namespace!r}")
        if not self._names_checked:
            self._check_names(row)
        return row

    async def _verify_names(self) -> None:
        """Checks the names the handle was given, on its first use (nothing to do without names)."""
        if not self._names_checked:
            await self._outcome()

    async def result(self, timeout: float | None = None) -> Any:
        """Waits for the workflow (following continue-as-new) and returns its result, or raises
        WorkflowFailedError / WorkflowCancelledError / WorkflowInterruptedError / TimeoutError."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__}")
        if timeout is not None and math.isnan(timeout):
            raise ValueError("timeout must be a number of seconds or None, got NaN")
        listener = await self._client.connection.listener()
        wakeup = asyncio.Event()
        channel: str | None = None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                wakeup.clear()
                try:
                    if channel is None:
                        channel = await self._client.closed_channel()
                        await listener.subscribe(channel, wakeup, payload=self.workflow_id)
                    outcome = await self._outcome()
                except errors.DatabaseUnavailableError as exc:
                    # The database is away for a moment (restart, failover, killed
                    # connection): the workflow goes on, so keep waiting for it.
                    log.debug("workflow %s: result() polls again after: %s", self.workflow_id, exc)
                    outcome = None
                if outcome is not None and outcome["status"] in _CLOSED:
                    return _result_of(self.workflow_id, outcome)
                remaining = 2.0 if deadline is None else min(2.0, deadline - loop.time())
                if remaining <= 0:
                    raise TimeoutError(f"workflow {self.workflow_id!r} did not finish within {timeout} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), remaining)
        finally:
            if channel is not None:
                listener.unsubscribe(channel, wakeup, payload=self.workflow_id)

    async def status(self) -> str:
        """running, completed, failed, cancelled or interrupted (of the latest run)."""
        return (await self._outcome())["status"]

    async def state(self) -> dict[str, Any]:
        """Status, result, error, lineage, what the workflow waits on, and its last task failure."""
        state = await self._client.connection.run(
            lambda conn: store.describe_workflow(conn, self._client.namespace, self.workflow_id))
        if state is None:
            raise errors.WorkflowNotFoundError(
                f"workflow {self.workflow_id!r} not found in namespace {self._client.namespace!r}")
        if not self._names_checked:
            self._check_names(state)
        if state.get("result") is not None:
            try:
                state["result"] = payloads.loads(state["result"])
            except errors.PayloadError:
                # A member of an enum this process does not import (the CLI's): shown as its tagged
                # JSON ({"$pd": "enum", "t": type, "v": value}); a codec failure raises again here.
                state["result"] = payloads.to_json_value(state["result"])
        if state.get("error"):
            error_type, message, tb = payloads.error_from_json(state["error"])
            state["error"] = {"type": error_type, "message": message, "traceback": tb}
        for key in ("created_at", "updated_at", "closed_at"):
            if isinstance(state.get(key), str):
                state[key] = datetime.fromisoformat(state[key])
        return state

    async def signal(self, signal_id: str, data: Any = None) -> None:
        """Sends a signal to this workflow only: its oldest condition waiting on ``signal_id`` takes
        it, else it is buffered for this workflow (no other workflow's condition can take it).
        Raises :class:`~pgdurable.errors.WorkflowNotFoundError` when the workflow does not exist or
        is closed (nothing is buffered then)."""
        check_text("signal_id", signal_id)
        encoded = payloads.dumps(data)
        await self._verify_names()
        # A signal sent twice would be delivered twice: never repeated.
        with _observe.signal(signal_id, self.workflow_id) as headers:
            await self._client.connection.run(
                lambda conn: store.signal_workflow(conn, self._client.namespace, self.workflow_id, signal_id,
                                                   encoded, headers=headers),
                repeatable=False)

    async def cancel(self) -> bool:
        """Requests cooperative cancellation (wakes the workflow now). False when the workflow
        was not running or is already being cancelled."""
        await self._verify_names()
        return await self._client.connection.run(
            lambda conn: store.cancel_workflow(conn, self._client.namespace, self.workflow_id),
            repeatable=False)

    async def interrupt(self, reason: str | None = None) -> bool:
        """Stops the workflow hard: nothing of it runs again. False when it was not running."""
        await self._verify_names()
        return await self._client.connection.run(
            lambda conn: store.interrupt_workflow(conn, self._client.namespace, self.workflow_id, reason),
            repeatable=False)

    async def reset(self, event_id: int, reason: str | None = None) -> int:
        """Ends the latest run (if it is running) and starts the next one from a copy of its history
        below ``event_id`` (an ``activity_scheduled``, ``timer_started``, ``child_started`` or
        ``signal_wait_started`` event of :meth:`history`): the code runs again from that durable call,
        and calls resolved before it are not made again. Returns the new run id. Raises
        :class:`~pgdurable.errors.InvalidArgumentError` for any other event."""
        await self._verify_names()
        return await self._client.connection.run(
            lambda conn: store.reset_workflow(conn, self._client.namespace, self.workflow_id, event_id,
                                              reason),
            repeatable=False)

    async def history(self, all_runs: bool = False) -> list[dict[str, Any]]:
        """The history as JSON-serialisable dicts: event_id, event_type, timestamp, run_id, details
        (payloads decoded: :class:`~pgdurable.errors.PayloadError` when one cannot be, e.g. without
        the codec it was written with)."""
        await self._verify_names()
        rows = await self._client.connection.run(
            lambda conn: store.workflow_history(conn, self._client.namespace, self.workflow_id, all_runs))
        if not rows:
            await self._outcome()  # raises for an unknown id
        return [history_event(index, row) for index, row in enumerate(rows, start=1)]


    async def export_history(self, all_runs: bool = False) -> dict[str, Any]:
        """The latest run's history (every run's with ``all_runs``) as a versioned JSON document
        (``pgdurable-history``, version 1) that :class:`pgdurable.testing.Replayer` replays against new code
        without a database. Payloads stay as stored (encoded by your codec, if any)."""
        await self._verify_names()
        namespace = self._client.namespace

        async def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            runs = await store.workflow_runs(conn, namespace, self.workflow_id, all_runs)
            return runs, await store.workflow_history(conn, namespace, self.workflow_id, True)

        runs, rows = await self._client.connection.run(read)
        if not runs:
            await self._outcome()  # raises for an unknown id
        return _history.document(namespace, self.workflow_id, runs, rows)


def _at_index(exc: TypeError | ValueError, index: int) -> TypeError | ValueError:
    """``exc`` with ``starts[<index>]: `` before its message (same type)."""
    try:
        return type(exc)(f"starts[{index}]: {exc}")
    except TypeError:
        exc.add_note(f"(in starts[{index}])")
        return exc


def history_event(event_id: int, row: dict[str, Any]) -> dict[str, Any]:
    """One history row as a JSON-serialisable dict, payloads decoded."""
    details = dict(row["data"])
    for key in ("args", "result", "data"):
        if isinstance(details.get(key), str):
            details[key] = payloads.to_json_value(details[key])
    if isinstance(details.get("error"), dict):
        error_type, message, tb = payloads.error_from_json(details["error"])
        details["error"] = {"type": error_type, "message": message, "traceback": tb}
    return {"event_id": event_id, "run_id": row["run_id"], "event_type": row["event_type"],
            "timestamp": row["created_at"].isoformat(), "seq": row["seq"], "details": details}


def _result_of(workflow_id: str, outcome: dict[str, Any]) -> Any:
    status = outcome["status"]
    if status == "completed":
        return payloads.loads(outcome["result"])
    error_type, message, tb = payloads.error_from_json(outcome.get("error"))
    if status == "cancelled":
        raise errors.WorkflowCancelledError(f"workflow {workflow_id!r} was cancelled")
    if status == "interrupted":
        raise errors.WorkflowInterruptedError(f"workflow {workflow_id!r} was interrupted: {message}")
    cause, exhausted = payloads.error_cause(outcome.get("error"))
    raise errors.WorkflowFailedError(message, error_type=error_type, traceback=tb,
                                     details={"workflow_id": workflow_id}, cause=cause,
                                     retries_exhausted=exhausted)
