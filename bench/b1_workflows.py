"""B1: empty workflows, start -> complete.

Throughput: completions/s with 64 in flight (each lane: ``client.workflow.start`` then
``handle.result()``). Latency: p50/p99 of start -> result, one workflow at a time.
"""

from __future__ import annotations

import time
from typing import Any

from .common import CpuMeter, percentile
from .pgd_support import Pgd, bench_empty, throughput


async def run(dsn: str, meter: CpuMeter, *, duration: float, in_flight: int, samples: int,
              concurrency: int) -> dict[str, Any]:
    async with Pgd(dsn, concurrency=concurrency) as pgd:
        async def one() -> None:
            await pgd.run(bench_empty)

        out = await throughput(pgd, meter, duration=duration, in_flight=in_flight, one=one,
                               warmup=min(in_flight, 32))
        latencies = []
        for _ in range(samples):
            t0 = time.perf_counter()
            await pgd.run(bench_empty)
            latencies.append((time.perf_counter() - t0) * 1000)
    out["latency_p50_ms"] = percentile(latencies, 50)
    out["latency_p99_ms"] = percentile(latencies, 99)
    out["latency_samples"] = len(latencies)
    return out
