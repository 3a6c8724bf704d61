"""pgdurable's side of the benchmarks: the workflows, the probe activities, a worker+client harness.

The probe activities run in this process (the worker serves them), so they
can record ``time.perf_counter()`` into module-level tables the benchmark
reads: a latency is measured from a client call to the next activity's start.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from pgdurable import Durable

from .common import CpuMeter, lanes, measure, settle_stats, xact_count

TASK_QUEUE = "bench"

# -- probe activities ---------------------------------------------------------------

MARKS: dict[str, float] = {}
"""key -> perf_counter() at the start of a bench_mark activity."""
WALL: dict[str, float] = {}
"""key -> time.time() at the start of a bench_wall activity (compared with the database clock)."""
SPANS: defaultdict[str, list[tuple[int, float, float]]] = defaultdict(list)
"""key -> (index, start, end) perf_counter() of each bench_span activity."""
_WAITERS: dict[str, asyncio.Future[float]] = {}


async def bench_noop(i: int) -> int:
    return i


async def bench_mark(key: str) -> None:
    now = time.perf_counter()
    MARKS[key] = now
    waiter = _WAITERS.pop(key, None)
    if waiter is not None and not waiter.done():
        waiter.set_result(now)


async def bench_wall(key: str) -> None:
    WALL[key] = time.time()
    await bench_mark(key)


async def bench_span(key: str, i: int) -> None:
    start = time.perf_counter()
    SPANS[key].append((i, start, time.perf_counter()))


def mark_waiter(key: str) -> asyncio.Future[float]:
    """A future resolved with the perf_counter() at which bench_mark(key) starts."""
    if key in MARKS:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        future.set_result(MARKS[key])
        return future
    return _WAITERS.setdefault(key, asyncio.get_running_loop().create_future())


acts = Durable.workflow.proxy_activities(activities=[bench_noop, bench_mark, bench_wall, bench_span])


# -- workflows ------------------------------------------------------------------------------

async def bench_empty() -> None:
    """B1: starts and completes, nothing else."""
    return None


async def bench_steps(n: int) -> int:
    """B2 (n = 10): n sequential no-op activities."""
    for i in range(n):
        await acts.bench_noop(i)
    return n


async def bench_signals(key: str, n: int) -> int:
    """B3: waits for signal ``<key>-<i>``, then an activity marks the resume; n times."""
    for i in range(n):
        await Durable.workflow.condition(f"{key}-{i}")
        await acts.bench_mark(f"{key}-{i}")
    return n


async def bench_timer(key: str, seconds: float) -> None:
    """B3: sleeps, then an activity records the wall clock (lateness = that - the timer's due_at)."""
    await Durable.workflow.sleep(seconds)
    await acts.bench_wall(key)


async def bench_chain(key: str, n: int) -> int:
    """B3: n sequential activities, each recording its start and end."""
    for i in range(n):
        await acts.bench_span(key, i)
    return n


async def bench_sleeper(seconds: float) -> None:
    """B6: one pending timer."""
    await Durable.workflow.sleep(seconds)


WORKFLOWS = [bench_empty, bench_steps, bench_signals, bench_timer, bench_chain, bench_sleeper]


# -- harness -------------------------------------------------------------------------------------

class Pgd:
    """A worker and a client (each with its own connection pool) on one database, in this process."""

    def __init__(self, dsn: str, *, concurrency: int, task_queue: str = TASK_QUEUE) -> None:
        self.dsn = dsn
        self.concurrency = concurrency
        self.task_queue = task_queue
        self.worker: Any = None
        self.client: Any = None

    async def __aenter__(self) -> Pgd:
        self._worker_conn = Durable.Connection(self.dsn)
        self._client_conn = Durable.Connection(self.dsn)
        self.worker = await Durable.Worker.create(connection=self._worker_conn, task_queue=self.task_queue,
                                                  workflows=WORKFLOWS, concurrency=self.concurrency)
        self.client = Durable.Client(connection=self._client_conn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.shutdown(grace=5)
        await self._worker_conn.close()
        await self._client_conn.close()

    async def run(self, workflow: Callable[..., Any], *args: Any) -> Any:
        """Starts a workflow and waits for its result."""
        handle = await self.client.workflow.start(args=list(args), task_queue=self.task_queue,
                                                  workflow_name=workflow.__name__)
        return await handle.result(timeout=120)

    async def start(self, workflow: Callable[..., Any], *args: Any, workflow_id: str | None = None) -> Any:
        return await self.client.workflow.start(args=list(args), task_queue=self.task_queue,
                                                workflow_name=workflow.__name__, workflow_id=workflow_id)


async def throughput(pgd: Pgd, meter: CpuMeter, *, duration: float, in_flight: int,
                     one: Callable[[], Awaitable[Any]], warmup: int) -> dict[str, Any]:
    """Completions per second of ``one`` with ``in_flight`` at a time, with the CPU split and the
    transactions the database committed per completion."""
    await asyncio.gather(*(one() for _ in range(warmup)))
    await asyncio.to_thread(settle_stats)
    x0 = await asyncio.to_thread(xact_count, pgd.dsn)
    with measure(meter) as cpu:
        done, elapsed = await lanes(duration, in_flight, one)
    await asyncio.to_thread(settle_stats)
    x1 = await asyncio.to_thread(xact_count, pgd.dsn)
    return {"completed": done, "elapsed_s": elapsed, "per_s": done / elapsed, "cpu": cpu,
            "xacts": x1 - x0, "xacts_per": (x1 - x0) / max(done, 1), "in_flight": in_flight}
