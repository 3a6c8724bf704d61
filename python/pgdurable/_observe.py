"""Observation points: where the SDK tells observers (``pgdurable.otel``, the Prometheus metrics
of ``pgdurable worker --metrics-port``) what it does. Each point is a no-op while no observer is
installed, so the SDK pays nothing for tracing or metrics it does not use, and imports neither.

An observer implements any of the methods of :class:`Observer`; the points call every installed
observer that has the method. Observers must not raise (their failures are logged and ignored).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger("pgdurable.observe")

observers: list[Any] = []


class Observer:
    """The observation points (all optional; the base does nothing)."""

    def start_workflow(self, workflow_id: str, workflow_name: str,
                       task_queue: str) -> contextlib.AbstractContextManager[dict[str, str] | None]:
        """Around a client's start: yields headers (a trace context) to store with the run."""
        return contextlib.nullcontext()

    def signal(self, signal_id: str,
               workflow_id: str | None) -> contextlib.AbstractContextManager[dict[str, str] | None]:
        """Around a client's signal (to one workflow, or to the mailbox when ``workflow_id`` is None):
        yields headers (a trace context) to send with it."""
        return contextlib.nullcontext()

    def workflow_task(self, calls: Any, namespace: str, row: dict[str, Any],
                      coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
        """Wraps one workflow task (claimed or handed over) of a worker."""
        return coro

    def workflow_task_failed(self, row: dict[str, Any], exc: BaseException) -> None:
        """A workflow task failed (it is retried)."""

    def workflow_task_continued(self, row: dict[str, Any]) -> None:
        """A workflow task goes on with the events that arrived while it ran (``row["events"]``)."""

    def workflow_closed(self, row: dict[str, Any], commands: list[dict[str, Any]]) -> None:
        """A workflow task closed its run (completed, failed, cancelled, continued)."""

    def child_headers(self, info: Any) -> dict[str, str] | None:
        """Headers for a child workflow the running workflow task starts."""
        return None

    def workflow_signal(self, info: Any, signal_id: str) -> dict[str, str] | None:
        """A signal command the running workflow task records: headers to send with the signal."""
        return None

    def activity_started(self, row: dict[str, Any], payload: dict[str, Any]) -> None:
        """An activity attempt starts on this worker (its claim row and payload)."""


def installed(observer: Any) -> bool:
    return any(o is observer for o in observers)


def install(observer: Any) -> None:
    if not installed(observer):
        observers.append(observer)


def uninstall(observer: Any) -> None:
    observers[:] = [o for o in observers if o is not observer]


def _each(method: str) -> list[Any]:
    return [getattr(o, method) for o in observers if hasattr(o, method)]


@contextlib.contextmanager
def start_workflow(workflow_id: str, workflow_name: str, task_queue: str) -> Iterator[dict[str, str] | None]:
    """Around a client's start; yields the headers to store with the run (None: none)."""
    if not observers:
        yield None
        return
    with contextlib.ExitStack() as stack:
        headers: dict[str, str] = {}
        for hook in _each("start_workflow"):
            headers.update(stack.enter_context(hook(workflow_id, workflow_name, task_queue)) or {})
        yield headers or None


@contextlib.contextmanager
def signal(signal_id: str, workflow_id: str | None) -> Iterator[dict[str, str] | None]:
    """Around a client's signal; yields the headers to send with it (None: none)."""
    if not observers:
        yield None
        return
    with contextlib.ExitStack() as stack:
        headers: dict[str, str] = {}
        for hook in _each("signal"):
            headers.update(stack.enter_context(hook(signal_id, workflow_id)) or {})
        yield headers or None


def workflow_task(calls: Any, namespace: str, row: dict[str, Any],
                  coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
    for hook in _each("workflow_task"):
        coro = hook(calls, namespace, row, coro)
    return coro


def _notify(method: str, *args: Any) -> None:
    for hook in _each(method):
        try:
            hook(*args)
        except Exception:  # an observer never breaks the worker
            log.exception("observer %s failed", method)


def workflow_task_failed(row: dict[str, Any], exc: BaseException) -> None:
    if observers:
        _notify("workflow_task_failed", row, exc)


def workflow_task_continued(row: dict[str, Any]) -> None:
    if observers:
        _notify("workflow_task_continued", row)


def workflow_closed(row: dict[str, Any], commands: list[dict[str, Any]]) -> None:
    if observers:
        _notify("workflow_closed", row, commands)


def activity_started(row: dict[str, Any], payload: dict[str, Any]) -> None:
    if observers:
        _notify("activity_started", row, payload)


def child_headers(info: Any) -> dict[str, str] | None:
    if not observers:
        return None
    headers: dict[str, str] = {}
    for hook in _each("child_headers"):
        headers.update(hook(info) or {})
    return headers or None


def workflow_signal(info: Any, signal_id: str) -> dict[str, str] | None:
    """A new signal command of the running workflow task; the headers to send with it (None: none)."""
    if not observers:
        return None
    headers: dict[str, str] = {}
    for hook in _each("workflow_signal"):
        headers.update(hook(info, signal_id) or {})
    return headers or None
