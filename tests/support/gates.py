"""Activities that wait at a gate the test opens: a connection whose workers all stop after it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pgdurable import Durable


@contextlib.asynccontextmanager
async def gated_connection(dsn: str, gates: dict[str, asyncio.Event]) -> AsyncIterator[Durable.Connection]:
    """Fresh ``entered`` and ``release`` gates, and a connection; at the end the release gate
    opens (no activity outlives the test) and every worker of the process shuts down."""
    gates.clear()
    gates.update(entered=asyncio.Event(), release=asyncio.Event())
    try:
        yield Durable.Connection(dsn)
    finally:
        gates["release"].set()
        await Durable.shutdown(grace=5)
