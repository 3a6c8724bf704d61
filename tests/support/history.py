"""A workflow as its handle shows it: history events, pending durable calls, and waits on them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pgdurable import Durable

from .polling import DEADLINE, wait_for

EVENT_TYPES = frozenset({
    "workflow_started", "workflow_completed", "workflow_failed", "workflow_cancelled",
    "workflow_interrupted", "workflow_continued_as_new", "workflow_task_failed", "cancel_requested",
    "activity_scheduled", "activity_failed", "activity_completed", "timer_started", "timer_fired",
    "timer_cancelled", "signal_wait_started", "signal_received", "signal_timed_out", "signal_sent",
    "child_started", "child_completed", "child_failed", "patch_marker", "workflow_reset",
    "external_signal_sent", "external_cancel_sent", "external_interrupt_sent",
})
"""The closed set of history event types of API.md."""


def new_client(connection: Any) -> Any:
    """A client on ``connection``."""
    return Durable.Client(connection=connection)


async def events(handle: Any, event_type: str | None = None, all_runs: bool = False) -> list[dict[str, Any]]:
    """The handle's history, optionally only the events of one type."""
    history = await handle.history(all_runs=all_runs)
    return [e for e in history if event_type is None or e["event_type"] == event_type]


async def event_types(handle: Any, all_runs: bool = False) -> list[str]:
    """The event types of the workflow's history, in order."""
    return [event["event_type"] for event in await events(handle, all_runs=all_runs)]


async def wait_event(handle: Any, event_type: str, count: int = 1,
                     timeout: float = DEADLINE) -> list[dict[str, Any]]:
    """Waits until the history holds at least ``count`` events of ``event_type``; returns them."""
    async def seen() -> list[dict[str, Any]] | None:
        found = await events(handle, event_type)
        return found if len(found) >= count else None
    return await wait_for(seen, f"{count} x {event_type} in the history of {handle.workflow_id}", timeout)


async def wait_pending(handle: Any, kind: str, timeout: float = DEADLINE, **match: Any) -> dict[str, Any]:
    """Waits until ``state()["pending"]`` holds an entry of type ``kind`` matching ``match``; returns it."""
    async def pending() -> dict[str, Any] | None:
        for item in (await handle.state())["pending"]:
            if item.get("type") == kind and all(item.get(k) == v for k, v in match.items()):
                return item
        return None
    return await wait_for(pending, f"{handle.workflow_id} to wait on {kind} {match}", timeout)


async def wait_status(handle: Any, status: str, timeout: float = DEADLINE) -> None:
    """Waits until the handle's workflow reaches ``status``."""
    async def reached() -> bool:
        return await handle.status() == status
    await wait_for(reached, f"workflow {handle.workflow_id} to be {status}", timeout)


def timestamp(event: dict[str, Any]) -> datetime:
    """An event's timestamp as a datetime."""
    return datetime.fromisoformat(event["timestamp"])


def comparable(history: list[dict[str, Any]]) -> list[tuple[str, Any, str]]:
    """A history without what legitimately differs between two executions (times, event ids)."""
    volatile = {"due_at"}
    return [(e["event_type"], e["seq"],
             json.dumps({k: v for k, v in e["details"].items() if k not in volatile}, sort_keys=True))
            for e in history]
