"""B6: a backlog of pending timers (10,000; 1,000,000 with ``--million-timers``).

Workflows that each sleep one hour are started in batches of concurrent starts;
the scheduling rate is N / (time from the first start until N timers are in
durable.messages). Bytes per timer: the growth of pg_total_relation_size of
durable.messages + durable.history + durable.workflows, / N. Then B2 runs again on
the same task queue with the backlog present.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from . import b2_activities
from .common import CpuMeter, measure
from .pgd_support import Pgd, bench_sleeper

TIMER_QUEUE = "bench-timers"
_SIZE = ("SELECT sum(pg_total_relation_size(c))::bigint FROM unnest("
         "ARRAY['durable.messages', 'durable.history', 'durable.workflows']::regclass[]) c")


async def _scalar(dsn: str, query: str) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(query)
        row = await cur.fetchone()
        return None if row is None else row[0]


async def schedule(dsn: str, meter: CpuMeter, n: int, *, batch: int, concurrency: int,
                   progress: Any = None) -> dict[str, Any]:
    before = await _scalar(dsn, _SIZE)
    async with Pgd(dsn, concurrency=concurrency, task_queue=TIMER_QUEUE) as pgd:
        with measure(meter) as cpu:
            t0 = time.perf_counter()
            for start in range(0, n, batch):
                await asyncio.gather(*(pgd.start(bench_sleeper, 3600.0)
                                       for _ in range(min(batch, n - start))))
                if progress is not None and start % (batch * max(50, n // batch // 20)) == 0:
                    progress(f"B6: {start + batch:,} of {n:,} timer workflows started")
            started = time.perf_counter() - t0
            count_query = "SELECT count(*) FROM durable.messages WHERE kind = 'timer'"
            interval = 0.05 if n <= 20_000 else 1.0  # count(*) of a million rows is not free
            while (await _scalar(dsn, count_query)) < n:  # noqa: ASYNC110 - polling the database
                await asyncio.sleep(interval)
            scheduled = time.perf_counter() - t0
    after = await _scalar(dsn, _SIZE)
    return {"timers": n, "start_s": starts_rate(n, started), "scheduled_s": scheduled,
            "timers_per_s": n / scheduled, "bytes_per_timer": (after - before) / n, "cpu": cpu}


def starts_rate(n: int, seconds: float) -> dict[str, float]:
    return {"seconds": seconds, "starts_per_s": n / seconds}


async def run(dsn: str, meter: CpuMeter, *, n: int, batch: int, concurrency: int, b2_duration: float,
              b2_in_flight: int, progress: Any = None) -> dict[str, Any]:
    out = await schedule(dsn, meter, n, batch=batch, concurrency=concurrency, progress=progress)
    out["b2_with_backlog"] = await b2_activities.run(dsn, meter, duration=b2_duration,
                                                     in_flight=b2_in_flight, concurrency=concurrency,
                                                     task_queue=TIMER_QUEUE)
    return out
