"""Waiting for a state with a deadline, never ``sleep(n)`` and hope.

Deadlines are generous (the machine may be shared); a test that needs longer says so.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

DEADLINE = 30.0


def _timed_out(what: str, timeout: float, last: Any) -> AssertionError:
    return AssertionError(f"timed out after {timeout} s waiting for {what} (last value: {last!r})")


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE,
               interval: float = 0.05) -> Any:
    """Calls ``predicate()`` until it returns a truthy value (returned), else fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise _timed_out(what, timeout, last)


async def wait_for(predicate: Callable[[], Awaitable[Any] | Any], what: str, timeout: float = DEADLINE,
                   interval: float = 0.05) -> Any:
    """:func:`wait_until` on the event loop (workers keep running): ``predicate`` may be sync or async."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise _timed_out(what, timeout, last)
