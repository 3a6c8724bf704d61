"""Helpers for the end-to-end tests of the workflow runtime (not a test module).

Everything polls real Postgres state with a deadline; nothing sleeps and hopes.
Deadlines are generous (the machine may be shared); timings are only asserted
as lower bounds that the engine itself guarantees.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import psycopg

DEADLINE = 20.0

EVENT_TYPES = frozenset({
    "workflow_started", "workflow_completed", "workflow_failed", "workflow_cancelled",
    "workflow_interrupted", "workflow_continued_as_new", "workflow_task_failed", "cancel_requested",
    "activity_scheduled", "activity_failed", "activity_completed", "timer_started", "timer_fired",
    "timer_cancelled", "signal_wait_started", "signal_received", "signal_timed_out", "signal_sent",
    "child_started", "child_completed", "child_failed", "patch_marker",
})
"""The closed set of history event types of API.md."""


async def poll(predicate: Callable[[], Awaitable[Any] | Any], what: str, timeout: float = DEADLINE,
               interval: float = 0.05) -> Any:
    """Calls (and awaits, if async) ``predicate()`` until it returns a truthy value (returned),
    else fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value: {last!r})")


async def events(handle: Any, event_type: str | None = None, all_runs: bool = False) -> list[dict[str, Any]]:
    """The handle's history, optionally only the events of one type."""
    history = await handle.history(all_runs=all_runs)
    return [e for e in history if event_type is None or e["event_type"] == event_type]


async def wait_event(handle: Any, event_type: str, count: int = 1,
                     timeout: float = DEADLINE) -> list[dict[str, Any]]:
    """Waits until the history holds at least ``count`` events of ``event_type``; returns them."""
    async def seen() -> list[dict[str, Any]] | None:
        found = await events(handle, event_type)
        return found if len(found) >= count else None
    return await poll(seen, f"{count} x {event_type} in the history of {handle.workflow_id}", timeout)


async def wait_pending(handle: Any, kind: str, timeout: float = DEADLINE, **match: Any) -> dict[str, Any]:
    """Waits until ``state()["pending"]`` holds an entry of type ``kind`` matching ``match``."""
    async def pending() -> dict[str, Any] | None:
        for item in (await handle.state())["pending"]:
            if item.get("type") == kind and all(item.get(k) == v for k, v in match.items()):
                return item
        return None
    return await poll(pending, f"{handle.workflow_id} to wait on {kind} {match}", timeout)


def timestamp(event: dict[str, Any]) -> datetime:
    """An event's timestamp as a datetime."""
    return datetime.fromisoformat(event["timestamp"])


def comparable(history: list[dict[str, Any]]) -> list[tuple[str, Any, str]]:
    """A history without what legitimately differs between two executions (times, event ids)."""
    volatile = {"due_at"}
    return [(e["event_type"], e["seq"],
             json.dumps({k: v for k, v in e["details"].items() if k not in volatile}, sort_keys=True))
            for e in history]


def sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Runs one query as the database owner (the test's superuser) and returns its rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []
