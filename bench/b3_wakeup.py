"""B3: wake-up latencies, measured at light load (one thing at a time).

- signal -> resume: from ``client.workflow.signal`` to the start of the activity the
  workflow runs right after its ``condition`` returns (the workflow is known to be
  waiting: its ``signal_waits`` row is visible);
- timer lateness: ``sleep(0.5)`` then an activity records the wall clock; lateness is
  that minus the timer's ``due_at`` (database clock, same machine);
- activity -> next activity: the end of one activity's body to the start of the next.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import psycopg

from pgdurable import Durable

from .common import percentile
from .pgd_support import SPANS, WALL, Pgd, bench_chain, bench_signals, bench_timer, mark_waiter


async def signal_to_resume(pgd: Pgd, samples: int) -> dict[str, Any]:
    key = f"sig-{Durable.guid(10)}"
    handle = await pgd.start(bench_signals, key, samples)
    latencies, commits = [], []
    async with await psycopg.AsyncConnection.connect(pgd.dsn, autocommit=True) as probe:
        for i in range(samples):
            signal_id = f"{key}-{i}"
            deadline = time.perf_counter() + 30
            while True:
                cur = await probe.execute("SELECT 1 FROM durable.signal_waits WHERE signal_id = %s",
                                          [signal_id])
                if await cur.fetchone() is not None:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"workflow never waited on {signal_id}")
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.01)  # let the worker go back to waiting
            waiter = mark_waiter(signal_id)
            t0 = time.perf_counter()
            await pgd.client.workflow.signal(signal_id, i)
            t1 = time.perf_counter()
            resumed = await asyncio.wait_for(waiter, 30)
            latencies.append((resumed - t0) * 1000)
            commits.append((t1 - t0) * 1000)
    await handle.result(timeout=60)
    return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "signal_call_p50_ms": percentile(commits, 50), "samples": len(latencies)}


async def timer_lateness(pgd: Pgd, samples: int, seconds: float = 0.5,
                         spacing: float = 0.025) -> dict[str, Any]:
    keys = [f"timer-{Durable.guid(10)}" for _ in range(samples)]
    handles = []
    for key in keys:
        handles.append(await pgd.start(bench_timer, key, seconds))
        await asyncio.sleep(spacing)
    await asyncio.gather(*(h.result(timeout=60) for h in handles))
    lateness = []
    for key, handle in zip(keys, handles, strict=True):
        fired = [e for e in await handle.history() if e["event_type"] == "timer_fired"]
        due = datetime.fromisoformat(fired[0]["details"]["due_at"]).timestamp()
        lateness.append((WALL[key] - due) * 1000)
    return {"p50_ms": percentile(lateness, 50), "p99_ms": percentile(lateness, 99),
            "max_ms": max(lateness), "samples": len(lateness), "sleep_s": seconds}


async def activity_to_next(pgd: Pgd, samples: int, per_workflow: int = 101) -> dict[str, Any]:
    gaps: list[float] = []
    while len(gaps) < samples:
        key = f"chain-{Durable.guid(10)}"
        await pgd.run(bench_chain, key, per_workflow)
        spans = sorted(SPANS.pop(key))
        gaps += [(b[1] - a[2]) * 1000 for a, b in zip(spans, spans[1:], strict=False)]
    gaps = gaps[:samples]
    return {"p50_ms": percentile(gaps, 50), "p99_ms": percentile(gaps, 99), "samples": len(gaps)}


async def run(dsn: str, *, samples: int, timer_samples: int, concurrency: int) -> dict[str, Any]:
    async with Pgd(dsn, concurrency=concurrency) as pgd:
        await pgd.run(bench_chain, "warmup", 3)
        SPANS.pop("warmup", None)
        return {"signal": await signal_to_resume(pgd, samples),
                "timer": await timer_lateness(pgd, timer_samples),
                "activity": await activity_to_next(pgd, samples)}
