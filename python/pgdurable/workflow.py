"""The in-workflow API (``Durable.workflow``). Every call is durable: its
outcome is persisted and replayed. Call these only inside workflow code."""

from __future__ import annotations

import contextlib
import inspect
import json
import types
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from . import _observe, errors, interceptors, payloads
from . import _registry as registry
from ._runtime import WorkflowInfo, _shielded, current, random_uuid
from ._validate import check_text
from .durations import Duration, to_seconds
from .errors import did_interrupt, is_cancellation
from .retry import RetryPolicy

__all__ = [
    "CancellationScope", "ExternalWorkflowHandle", "WorkflowInfo", "condition", "continue_as_new",
    "deprecate_patch", "did_interrupt", "execute_child", "get_context", "get_external_handle", "info",
    "is_cancellation", "now", "patched", "proxy_activities",
    "random", "signal", "sleep", "start_child", "uuid4",
]


class ActivityProxy:
    """Awaitable activity stubs: ``await proxy.charge(order_id)``."""

    def __init__(self, names: Iterable[str] | None, task_queue: str | None, retry: RetryPolicy,
                 start_to_close_timeout: Duration | None, headers: Mapping[str, Any] | None,
                 heartbeat_timeout: Duration | None = None, activities: Any = None) -> None:
        self._names = None if names is None else set(names)
        self._activities = activities
        self._options = {
            "task_queue": task_queue,
            "retry": retry.to_json(),
            "start_to_close_timeout": None if start_to_close_timeout is None
            else to_seconds(start_to_close_timeout, what="start_to_close_timeout"),
            "heartbeat_timeout": None if heartbeat_timeout is None
            else to_seconds(heartbeat_timeout, what="heartbeat_timeout"),
            "headers": dict(headers or {}),
        }
        if self._options["heartbeat_timeout"] is not None and self._options["heartbeat_timeout"] <= 0:
            raise ValueError(f"heartbeat_timeout must be positive, got {heartbeat_timeout!r}")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._names is not None and name not in self._names:
            raise AttributeError(f"no activity named {name!r} among the proxied activities")

        async def stub(*args: Any) -> Any:
            check_text("activity name", name)
            if self._activities is not None and registry.get(name) is None:
                # Registered again: Durable.shutdown() ended the process's registrations, and a
                # proxy made once (at import) still serves the workers created after it.
                registry.register_activities(self._activities)
            return await _call_activity(name, list(args), self._options)

        stub.__name__ = name
        return stub


async def _call_activity(name: str, args: list[Any], options: dict[str, Any]) -> Any:
    run = current()
    activity_ctx = {"activity_name": name, "args": args, "options": dict(options)}
    workflow_ctx = {"workflow_id": run.info.workflow_id, "workflow_name": run.info.workflow_name,
                    "namespace": run.info.namespace, "task_queue": run.info.task_queue,
                    "run_id": run.info.run_id, "attempt": run.info.attempt}

    async def schedule() -> Any:
        opts = activity_ctx["options"]
        call_args = list(activity_ctx["args"])
        seq = run.next_seq()
        queue = opts.get("task_queue") or run.info.task_queue
        run.record(seq, "activity", activity_ctx["activity_name"], lambda: {
            "type": "activity", "seq": seq, "name": activity_ctx["activity_name"], "task_queue": queue,
            "args": payloads.dumps(call_args), "retry": opts["retry"], "headers": opts.get("headers") or {},
            "start_to_close_timeout": opts.get("start_to_close_timeout"),
            **({"heartbeat_timeout": opts["heartbeat_timeout"]} if opts.get("heartbeat_timeout") else {}),
        })
        # The result comes back as the activity function's annotated return type, when this process
        # knows the function (dataclasses, Pydantic models, enums).
        fn = registry.get(activity_ctx["activity_name"])
        return await run.wait_activity(seq, name=activity_ctx["activity_name"],
                                       result_type=payloads.return_type(fn))

    return await interceptors.chain(interceptors.outbound, schedule, activity_ctx, workflow_ctx)()


def proxy_activities(activities: Any = None, *, task_queue: str | None = None,
                     retry: RetryPolicy | None = None, start_to_close_timeout: Duration | None = None,
                     headers: Mapping[str, Any] | None = None,
                     heartbeat_timeout: Duration | None = None) -> ActivityProxy:
    """Awaitable stubs for activities. ``activities`` (a module, dict or list of functions) are
    also registered for this process, so its worker serves them. With ``task_queue``, calls go
    to ``<task_queue>-activity`` (served by ``register_activity_worker``). With
    ``heartbeat_timeout``, an attempt that sends no ``Durable.activity.heartbeat()`` for that long
    is failed as a ``DurableTimeoutError`` and retried per ``retry``, whatever its
    ``start_to_close_timeout``."""
    if task_queue is not None:
        check_text("task_queue", task_queue)
    if headers is not None:
        json.dumps(dict(headers), allow_nan=False)  # plain JSON, else TypeError/ValueError here
    names = None
    if activities is not None:
        names = list(registry.register_activities(activities))
    return ActivityProxy(names, task_queue, retry or RetryPolicy(), start_to_close_timeout, headers,
                         heartbeat_timeout, activities)


async def sleep(duration: Duration) -> float:
    """A durable timer: returns the requested seconds (the same on every replay)."""
    seconds = to_seconds(duration)
    return await current().sleep(seconds)


async def condition(signal_id: str, timeout: Duration | None = None) -> Any:
    """Waits for the signal ``signal_id``: its data, or ``False`` when ``timeout`` passes first."""
    check_text("signal_id", signal_id)
    seconds = None if timeout is None else to_seconds(timeout, what="timeout")
    run = current()
    seq = run.next_seq()
    run.record(seq, "condition", signal_id, lambda: {
        "type": "condition", "seq": seq, "signal_id": signal_id, "timeout": seconds})
    return await run.wait_condition(seq, signal_id)


async def signal(signal_id: str, data: Any = None) -> None:
    """Sends a signal (namespace-wide id) to the oldest waiting condition, or buffers it."""
    check_text("signal_id", signal_id)
    run = current()
    seq = run.next_seq()

    def command() -> dict[str, Any]:  # a new command only (never on replay)
        headers = _observe.workflow_signal(run.info, signal_id)  # a trace context, when traced
        return {"type": "signal", "seq": seq, "signal_id": signal_id, "data": payloads.dumps(data),
                **({"headers": headers} if headers else {})}

    run.record(seq, "signal", signal_id, command)


def _child_command(run: Any, seq: int, workflow_name: str, args: list[Any], task_queue: str | None,
                   workflow_id: str | None, awaited: bool) -> str:
    child_id = workflow_id or f"{run.info.workflow_id}-{run.info.run_id}.{seq}"
    headers = _observe.child_headers(run.info)  # a trace context, when traced
    run.record(seq, "child", workflow_name, lambda: {
        "type": "child", "seq": seq, "workflow_name": workflow_name, "workflow_id": child_id,
        "task_queue": task_queue or run.info.task_queue, "args": payloads.dumps(list(args)),
        "awaited": awaited, **({"headers": headers} if headers else {})})
    return child_id


async def execute_child(*, workflow_name: str, args: list[Any] | tuple[Any, ...] = (),
                        task_queue: str | None = None, workflow_id: str | None = None) -> Any:
    """Starts a child workflow and returns its result (``DurableChildError`` if it fails)."""
    _check_child(workflow_name, task_queue, workflow_id)
    run = current()
    seq = run.next_seq()
    _child_command(run, seq, _name_of(workflow_name), list(args), task_queue, workflow_id, True)
    # Given the child's function (not its name), its result comes back as its annotated return type.
    return await run.wait(seq, result_type=payloads.return_type(workflow_name))


async def start_child(*, workflow_name: str, args: list[Any] | tuple[Any, ...] = (),
                      task_queue: str | None = None, workflow_id: str | None = None) -> str:
    """Starts a child workflow without waiting; returns its workflow id."""
    _check_child(workflow_name, task_queue, workflow_id)
    run = current()
    seq = run.next_seq()
    return _child_command(run, seq, _name_of(workflow_name), list(args), task_queue, workflow_id, False)


class ExternalWorkflowHandle:
    """Another workflow, as workflow code steers it (:func:`get_external_handle`). Each method is a
    durable call: recorded in the history (``external_signal_sent``, ``external_cancel_sent``,
    ``external_interrupt_sent``, with the outcome) and replayed from it, never sent twice.

    Run by a scoped worker role, it reaches only workflows on the task queues the role may produce
    to; any other id raises :class:`~pgdurable.errors.WorkerRoleError` (known or not, alike)."""

    def __init__(self, workflow_id: str) -> None:
        check_text("workflow_id", workflow_id)
        self.workflow_id = workflow_id

    async def _steer(self, command: str, make: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
        run = current()
        seq = run.next_seq()
        run.record(seq, f"external_{command}", self.workflow_id, lambda: make(seq))
        outcome: dict[str, Any] = await run.wait(seq, kind="external")
        if outcome.get("outcome") == "refused":
            raise errors.WorkerRoleError(outcome.get("message") or f"steering {self.workflow_id!r} refused")
        if outcome.get("outcome") == "not_found":
            raise errors.WorkflowNotFoundError(
                f"workflow {self.workflow_id!r} not found in namespace {run.info.namespace!r}"
                + (" (or not running): the signal was not sent" if command == "signal" else ""))
        return outcome

    async def signal(self, signal_id: str, data: Any = None) -> None:
        """Sends a signal to that workflow only (as its client handle's ``signal``): its oldest
        condition on ``signal_id`` takes it, else it is buffered for it. Raises
        :class:`~pgdurable.errors.WorkflowNotFoundError` when it is unknown or closed."""
        check_text("signal_id", signal_id)
        encoded = payloads.dumps(data)
        await self._steer("signal", lambda seq: {"type": "signal_external", "seq": seq,
                                                 "workflow_id": self.workflow_id, "signal_id": signal_id,
                                                 "data": encoded})

    async def cancel(self) -> bool:
        """Requests that workflow's cooperative cancellation (as its client handle's ``cancel``);
        False when it is not running or already cancelling."""
        self._not_self("cancel")
        outcome = await self._steer("cancel", lambda seq: {"type": "cancel_external", "seq": seq,
                                                           "workflow_id": self.workflow_id})
        return outcome.get("outcome") == "requested"

    async def interrupt(self, reason: str | None = None) -> bool:
        """Stops that workflow hard (as its client handle's ``interrupt``); False when it was not
        running."""
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"reason must be a string or None, got {type(reason).__name__}")
        self._not_self("interrupt")
        outcome = await self._steer("interrupt", lambda seq: {"type": "interrupt_external", "seq": seq,
                                                              "workflow_id": self.workflow_id,
                                                              "reason": reason})
        return outcome.get("outcome") == "interrupted"

    def _not_self(self, what: str) -> None:
        if self.workflow_id == current().info.workflow_id:
            raise ValueError(f"a workflow cannot {what} itself through an external handle: "
                             "raise or return instead")


def get_external_handle(workflow_id: str) -> ExternalWorkflowHandle:
    """A handle on another workflow, to signal, cancel or interrupt it from workflow code (each a
    durable call). Plain function: no I/O until a method is awaited."""
    current()
    return ExternalWorkflowHandle(workflow_id)


def continue_as_new(*args: Any) -> Any:
    """Ends this run and starts the workflow again with ``args`` and a fresh history. Never returns."""
    current()
    raise errors.DurableContinueAsNewError(args)


def patched(patch_id: str) -> bool:
    """True on executions that reach this point with the patch deployed; False when
    replaying an execution recorded before it."""
    return current().patched(patch_id)


def deprecate_patch(patch_id: str) -> None:
    """Marks a patch whose old path no execution needs any more."""
    current().patched(patch_id, deprecated=True)


def now() -> datetime:
    """The workflow's time (aware UTC): the time of the event being replayed."""
    return current().now


def random() -> float:
    """A deterministic random float in [0, 1)."""
    return current().rng.random()


def uuid4() -> Any:
    """A deterministic random UUID."""
    return random_uuid(current().rng)


def info() -> WorkflowInfo:
    """This workflow's id, name, namespace, task queue, attempt and parent."""
    return current().info


get_context = info


class CancellationScope:
    """Scopes that shield cleanup code from cancellation."""

    @staticmethod
    @contextlib.asynccontextmanager
    async def non_cancellable() -> AsyncIterator[None]:
        """Inside, cancellation is not raised; it is raised at the next await outside."""
        token = _shielded.set(True)
        try:
            yield
        finally:
            _shielded.reset(token)


def _check_child(workflow_name: Any, task_queue: Any, workflow_id: Any) -> None:
    """Bad child arguments raise at the call, as the engine would refuse the command for good."""
    check_text("workflow_name", _name_of(workflow_name))
    if task_queue is not None:
        check_text("task_queue", task_queue)
    if workflow_id is not None:
        check_text("workflow_id", workflow_id)


def _name_of(workflow: Any) -> str:
    if isinstance(workflow, str):
        return workflow
    if inspect.isfunction(workflow) or isinstance(workflow, types.FunctionType):
        return workflow.__name__
    raise TypeError("workflow_name must be a workflow function's name")
