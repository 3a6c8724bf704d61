"""B2: activities/s — workflows of 10 sequential no-op activities, 200 in flight."""

from __future__ import annotations

from typing import Any

from .common import CpuMeter
from .pgd_support import TASK_QUEUE, Pgd, bench_steps, throughput

STEPS = 10


async def run(dsn: str, meter: CpuMeter, *, duration: float, in_flight: int, concurrency: int,
              task_queue: str = TASK_QUEUE) -> dict[str, Any]:
    async with Pgd(dsn, concurrency=concurrency, task_queue=task_queue) as pgd:
        async def one() -> None:
            await pgd.run(bench_steps, STEPS)

        out = await throughput(pgd, meter, duration=duration, in_flight=in_flight, one=one,
                               warmup=min(in_flight, 20))
    out["activities_per_s"] = out["per_s"] * STEPS
    out["xacts_per_activity"] = out["xacts_per"] / STEPS
    return out
