"""The client: start workflows, signal them, read their results, state and history."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import datetime
from typing import Any, overload

from . import _observe, errors, payloads
from . import _store as store
from ._validate import check_text
from .connection import Connection
from .retry import RetryPolicy

log = logging.getLogger("pgdurable.client")

_CLOSED = {"completed", "failed", "cancelled", "interrupted"}


class Client:
    """Starts workflows, sends signals and reads results in one namespace."""

    def __init__(self, *, connection: Connection, namespace: str = "durable") -> None:
        self.connection = connection
        self.namespace = namespace
        self.workflow = WorkflowClient(self)
        self._closed_channel: str | None = None

    async def closed_channel(self) -> str:
        """The channel the engine NOTIFYs when a run of this namespace closes (asked once)."""
        if self._closed_channel is None:
            self._closed_channel = await self.connection.run(
                lambda conn: store.closed_channel(conn, self.namespace))
        return self._closed_channel


class WorkflowClient:
    """``client.workflow``: the workflow operations of a :class:`Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def start(self, *, args: list[Any] | tuple[Any, ...] = (), task_queue: str, workflow_name: str,
                    workflow_id: str | None = None, retry: RetryPolicy | None = None,
                    id_reuse: str = "reject") -> WorkflowHandle:
        """Starts a workflow and returns its handle. A running workflow with the same id raises
        :class:`DuplicateWorkflowError`, unless ``id_reuse="return_existing"``."""
        from .durable import guid

        if id_reuse not in ("reject", "return_existing"):
            raise ValueError(f"id_reuse must be 'reject' or 'return_existing', got {id_reuse!r}")
        if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
            raise TypeError("args must be a list of the workflow function's arguments")
        check_text("task_queue", task_queue)
        check_text("workflow_name", workflow_name)
        workflow_id = guid() if workflow_id is None else workflow_id
        check_text("workflow_id", workflow_id)
        encoded = payloads.dumps(list(args))
        policy = None if retry is None else retry.to_json()
        # A start whose commit was lost would be refused as a duplicate if made again.
        with _observe.start_workflow(workflow_id, workflow_name, task_queue) as headers:
            row = await self._client.connection.run(
                lambda conn: store.start_workflow(conn, self._client.namespace, workflow_id, workflow_name,
                                                  task_queue, encoded, policy, id_reuse, headers),
                repeatable=id_reuse == "return_existing")
        log.info("workflow %s (%s) started on task queue %r", workflow_id, workflow_name, task_queue)
        handle = self.get_handle(task_queue, workflow_name, workflow_id)
        # A run this call started has these names; an existing one returned is checked on first use.
        handle._names_checked = bool(row["started"])
        return handle

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
        with _observe.signal(signal_id, None):
            await self._client.connection.run(
                lambda conn: store.send_signal(conn, self._client.namespace, signal_id, encoded),
                repeatable=False)

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
        row = await self._client.connection.run(
            lambda conn: store.workflow_outcome(conn, self._client.namespace, self.workflow_id))
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
            state["result"] = payloads.loads(state["result"])
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
        with _observe.signal(signal_id, self.workflow_id):
            await self._client.connection.run(
                lambda conn: store.signal_workflow(conn, self._client.namespace, self.workflow_id, signal_id,
                                                   encoded),
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
    raise errors.WorkflowFailedError(message, error_type=error_type, traceback=tb,
                                     details={"workflow_id": workflow_id})
