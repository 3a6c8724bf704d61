"""Workflows and activities of the flow control tests (stream limits, priorities, partitions),
served by ``workers.worker_process`` in several processes at once.

The probing activities write what they see to tables of the test's database (``FLOW_PROBE_DSN``,
created by the test): ``flow_marks`` (what ran when) and ``flow_running`` (how many of them run
at once, counted by the activities themselves). While one holds its slot it runs a marker query
(``pg_sleep`` under ``application_name`` ``flow-probe``) that the test samples in
``pg_stat_activity``.
"""

from __future__ import annotations

import asyncio
import os

import psycopg

from pgdurable import Durable, RetryPolicy

_RETRY = RetryPolicy(maximum_attempts=20, initial_interval=0.2, maximum_interval=1.0)
PROBE_DSN = "FLOW_PROBE_DSN"
MARKER = "flow-probe"


async def _probe() -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(os.environ[PROBE_DSN], autocommit=True,
                                                 application_name=MARKER)


async def flow_hold(n: int, seconds: float) -> int:
    """Counts itself in while it runs (the peak each one saw is recorded), and holds a marker
    query for ``seconds``."""
    async with await _probe() as conn:
        cur = await conn.execute("UPDATE flow_running SET n = n + 1 RETURNING n")
        (now_running,) = await cur.fetchone()  # type: ignore[misc]
        await conn.execute("INSERT INTO flow_marks (what, key, n, seen) VALUES ('hold', '', %s, %s)",
                           (n, now_running))
        try:
            await conn.execute("SELECT pg_sleep(%s)", (seconds,))
        finally:
            await conn.execute("UPDATE flow_running SET n = n - 1")
    return n


async def flow_tick(n: int) -> int:
    """Does nothing (the rate test counts claims)."""
    return n


async def flow_mark(what: str, key: str, n: int) -> None:
    """Records ``what`` (start, end) of run ``n`` of partition ``key``, with the time."""
    async with await _probe() as conn:
        await conn.execute("INSERT INTO flow_marks (what, key, n) VALUES (%s, %s, %s)", (what, key, n))


async def flow_fan(count: int, seconds: float) -> int:
    """``count`` holding activities at once."""
    acts = Durable.workflow.proxy_activities(activities=[flow_hold], retry=_RETRY)
    done = await asyncio.gather(*(acts.flow_hold(i, seconds) for i in range(count)))
    return len(done)


async def flow_ticks(count: int) -> int:
    """``count`` empty activities at once."""
    acts = Durable.workflow.proxy_activities(activities=[flow_tick], retry=_RETRY)
    done = await asyncio.gather(*(acts.flow_tick(i) for i in range(count)))
    return len(done)


async def flow_partitioned(key: str, n: int) -> int:
    """Marks its start and its end around a short pause: runs of one partition must not overlap."""
    acts = Durable.workflow.proxy_activities(activities=[flow_mark], retry=_RETRY)
    await acts.flow_mark("start", key, n)
    await Durable.workflow.sleep(0.2)
    await acts.flow_mark("end", key, n)
    return n


async def flow_ordered(n: int) -> int:
    """Marks that it ran (the priority test reads the order)."""
    acts = Durable.workflow.proxy_activities(activities=[flow_mark], retry=_RETRY)
    await acts.flow_mark("ran", "", n)
    return n


WORKFLOWS = {fn.__name__: fn for fn in (flow_fan, flow_ticks, flow_partitioned, flow_ordered)}
ACTIVITIES = {fn.__name__: fn for fn in (flow_hold, flow_tick, flow_mark)}
