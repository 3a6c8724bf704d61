"""B2: activities/s — workflows of 10 sequential no-op activities, 200 in flight. B2L (``--limits``):
the same with limits set on the activity stream that never bind (max_running far above the
activities in flight, a rate far above the throughput): what checking and counting them costs."""

from __future__ import annotations

from typing import Any

from .common import CpuMeter
from .pgd_support import TASK_QUEUE, Pgd, bench_steps, throughput

STEPS = 10
LIMITS = {"max_running": 10_000, "rate_limit": 100_000, "rate_period": 1.0}
"""B2L's limits: set on the activity stream, never binding (at most ~200 activities run at once)."""


async def run(dsn: str, meter: CpuMeter, *, duration: float, in_flight: int, concurrency: int,
              task_queue: str = TASK_QUEUE, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    async with Pgd(dsn, concurrency=concurrency, task_queue=task_queue) as pgd:
        if limits:
            await pgd.client.set_stream_limits(f"{task_queue}-activity", **limits)
        async def one() -> None:
            await pgd.run(bench_steps, STEPS)

        out = await throughput(pgd, meter, duration=duration, in_flight=in_flight, one=one,
                               warmup=min(in_flight, 20))
        if limits:
            await pgd.client.set_stream_limits(f"{task_queue}-activity")
            out["limits"] = limits
    out["activities_per_s"] = out["per_s"] * STEPS
    out["xacts_per_activity"] = out["xacts_per"] / STEPS
    return out
