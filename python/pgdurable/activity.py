"""The in-activity API (``Durable.activity``): context and heartbeats."""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import Any

from . import errors

__all__ = ["ActivityContext", "get_context", "heartbeat"]


@dataclass
class ActivityContext:
    """What a running activity knows about its call.

    ``is_cancelled()`` turns true once a heartbeat learns that the workflow cancelled this activity
    (it stopped waiting for it: the workflow's cancellation reached the await, outside a
    non-cancellable scope, or the await was abandoned); the next :func:`heartbeat` then raises
    :class:`~pgdurable.errors.CancelledFailure`.

    ``lease_lost`` turns true when the worker finds that it lost this attempt's lease (the lease
    expired, e.g. the worker could not renew it in time, and another worker took the task over,
    or the workflow ended): the attempt's outcome will be discarded, so a long activity should
    check it and stop early.
    """

    activity_name: str
    args: list[Any]
    headers: dict[str, Any]
    workflow_id: str | None
    workflow_name: str | None
    task_queue: str | None
    attempt: int
    namespace: str
    heartbeat_details: Any = None
    _beat: Any = field(default=None, repr=False)
    lease_lost: bool = False
    _cancelled: bool = field(default=False, repr=False)

    def is_cancelled(self) -> bool:
        """Whether the workflow cancelled this activity (learnt through its heartbeats)."""
        return self._cancelled


_current: contextvars.ContextVar[ActivityContext | None] = contextvars.ContextVar(
    "pgdurable_activity", default=None)


def get_context() -> ActivityContext:
    """The running activity's context (raises outside an activity)."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("Durable.activity.get_context() can only be called inside an activity")
    return ctx


def heartbeat(details: Any = None) -> None:
    """Records progress and keeps the activity's lease; callable from sync activities' threads.
    ``details`` reach the next attempt as ``get_context().heartbeat_details``. Raises
    :class:`~pgdurable.errors.CancelledFailure` once the workflow cancelled the activity (as a
    heartbeat sent before learnt): stop, clean up, and let it escape (or return)."""
    ctx = get_context()
    if ctx._cancelled:
        raise errors.CancelledFailure(f"activity {ctx.activity_name} was cancelled by its workflow")
    beat = ctx._beat
    if beat is None:
        return
    loop, callback = beat
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback(details)
    else:
        loop.call_soon_threadsafe(callback, details)
