"""A session idle in a transaction pins the xmin horizon (no dead tuple can be vacuumed) while
workflows run: progress does not stop. Throughput before, during and after is printed, not
asserted (timings are the machine's, not the engine's)."""

from __future__ import annotations

import asyncio
import time

import psycopg

from pgdurable import Durable
from support.db import sql
from workers.rel_flows import rel_chain

QUEUE = "rel-xmin"


async def test_workflows_keep_progressing_while_a_long_transaction_pins_xmin(dsn):
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=rel_chain,
                                    concurrency=20)
        client = Durable.Client(connection=connection)
        started: list[str] = []

        async def start(n: int) -> None:
            for _ in range(n):
                handle = await client.workflow.start(args=[len(started)], task_queue=QUEUE,
                                                     workflow_name="rel_chain")
                started.append(handle.workflow_id)

        async def completed() -> int:
            rows = await asyncio.to_thread(
                sql, dsn, "SELECT count(*) FROM durable.workflows WHERE status = 'completed'")
            return int(rows[0][0])

        async def run_for(seconds: float, label: str) -> list[int]:
            """Keeps 40 workflows in flight for ``seconds``; returns completions per second."""
            per_second, before = [], await completed()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                tick = time.monotonic()
                await start(max(0, 40 - (len(started) - before)))
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
                now = await completed()
                per_second.append(now - before)
                before = now
            print(f"{label}: {sum(per_second) / seconds:.1f} workflows/s ({per_second})")
            return per_second

        await run_for(3, "before")
        pin = await asyncio.to_thread(psycopg.connect, dsn)
        try:
            xid = await asyncio.to_thread(lambda: pin.execute("SELECT txid_current()").fetchone()[0])
            during = await run_for(10, "while xmin is pinned")
            state = await asyncio.to_thread(sql, dsn, """
                SELECT state, backend_xmin IS NOT NULL OR backend_xid IS NOT NULL
                FROM pg_stat_activity WHERE backend_xid = %s::text::xid""", (xid,))
            assert state == [("idle in transaction", True)], state
        finally:
            await asyncio.to_thread(pin.close)
        # Progress never stopped: every stretch of 3 seconds completed workflows.
        stalls = [i for i in range(len(during) - 2) if sum(during[i:i + 3]) == 0]
        assert not stalls, f"no workflow completed for 3 s from second {stalls[0]} of the pinned window"
        await run_for(3, "after the long transaction ended")
        dead = await asyncio.to_thread(sql, dsn, """
            SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE schemaname = 'durable'
            ORDER BY relname""")
        print("dead tuples:", dict(dead))
    finally:
        await Durable.shutdown(grace=5)
