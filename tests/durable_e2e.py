"""Helpers shared by the end-to-end tests of the SDK (not a test module).

``wait_for`` polls an async predicate until it holds or a generous deadline
passes (the machine is shared: deadlines are wide, timings never asserted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pgdurable import Durable

DEADLINE = 20.0


async def wait_for(predicate: Callable[[], Awaitable[Any]], what: str, timeout: float = DEADLINE,
                   interval: float = 0.05) -> Any:
    """Awaits ``predicate()`` until it returns a truthy value (returned), else fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value: {last!r})")


async def wait_status(handle: Any, status: str, timeout: float = DEADLINE) -> None:
    """Waits until the handle's workflow reaches ``status``."""
    async def reached() -> bool:
        return await handle.status() == status
    await wait_for(reached, f"workflow {handle.workflow_id} to be {status}", timeout)


async def wait_pending(handle: Any, kind: str, timeout: float = DEADLINE, **match: Any) -> dict[str, Any]:
    """Waits until the workflow waits on a durable call of ``kind`` (matching ``match``); returns it."""
    async def pending() -> dict[str, Any] | None:
        state = await handle.state()
        for item in state["pending"]:
            if item.get("type") == kind and all(item.get(k) == v for k, v in match.items()):
                return item
        return None
    return await wait_for(pending, f"workflow {handle.workflow_id} to wait on {kind} {match}", timeout)


async def event_types(handle: Any, all_runs: bool = False) -> list[str]:
    """The event types of the workflow's history, in order."""
    return [event["event_type"] for event in await handle.history(all_runs=all_runs)]


async def wait_event(handle: Any, event_type: str, timeout: float = DEADLINE) -> None:
    """Waits until the workflow's (latest run's) history holds an event of ``event_type``."""
    async def seen() -> bool:
        return event_type in await event_types(handle)
    await wait_for(seen, f"{event_type} in the history of {handle.workflow_id}", timeout)


def new_client(connection: Any) -> Any:
    """A client on ``connection``."""
    return Durable.Client(connection=connection)
