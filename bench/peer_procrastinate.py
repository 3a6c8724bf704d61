"""Peer: procrastinate, in its own process and its own database, at its defaults.

``python -m bench.peer_procrastinate --dsn DSN --params JSON --out PATH [--postmaster PID]``
(``python -m bench`` runs it). One worker (``run_worker_async``, the same concurrency as
pgdurable's worker) runs in the background of this process while:

- no-op jobs/s: N lanes each ``defer_async`` a job and wait until its body has run;
- defer -> done latency: one job at a time, from ``defer_async`` to the job's status
  ``succeeded`` (polled every millisecond).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from typing import Any

import procrastinate
import psycopg

from .common import CpuMeter, lanes, measure, peer_main, percentile, settle_stats, xact_count

_WAITERS: dict[str, asyncio.Future[None]] = {}


def make_app(dsn: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="bench_noop")
    async def bench_noop(key: str) -> None:
        waiter = _WAITERS.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    return app


async def main_async(dsn: str, params: dict[str, Any], postmaster: int | None) -> dict[str, Any]:
    meter = CpuMeter(postmaster)
    app = make_app(dsn)
    task = app.tasks["bench_noop"]
    runs: list[dict[str, Any]] = []
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = asyncio.create_task(app.run_worker_async(concurrency=params["concurrency"], wait=True))
        try:
            async def one() -> None:
                key = uuid.uuid4().hex
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                _WAITERS[key] = waiter
                await task.defer_async(key=key)
                await asyncio.wait_for(waiter, 60)

            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as probe:
                for _ in range(params["runs"]):
                    await asyncio.gather(*(one() for _ in range(20)))
                    await asyncio.to_thread(settle_stats)
                    x0 = await asyncio.to_thread(xact_count, dsn)
                    with measure(meter) as cpu:
                        done, elapsed = await lanes(params["b1_duration"], params["b1_in_flight"], one)
                    await asyncio.to_thread(settle_stats)
                    x1 = await asyncio.to_thread(xact_count, dsn)
                    latencies = []
                    for _ in range(params["b3_samples"]):
                        t0 = time.perf_counter()
                        job_id = await task.defer_async(key="latency")
                        while True:
                            cur = await probe.execute("SELECT status FROM procrastinate_jobs WHERE id = %s",
                                                      [job_id])
                            row = await cur.fetchone()
                            if row is not None and row[0] in ("succeeded", "failed"):
                                break
                            await asyncio.sleep(0.001)
                        latencies.append((time.perf_counter() - t0) * 1000)
                    runs.append({"jobs": {"completed": done, "elapsed_s": elapsed, "per_s": done / elapsed,
                                          "cpu": cpu, "xacts_per": (x1 - x0) / max(done, 1),
                                          "in_flight": params["b1_in_flight"],
                                          "concurrency": params["concurrency"]},
                                 "defer_done": {"p50_ms": percentile(latencies, 50),
                                                "p99_ms": percentile(latencies, 99),
                                                "samples": len(latencies)}})
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
    from importlib.metadata import version

    return {"peer": "procrastinate", "version": version("procrastinate"), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    return peer_main("python -m bench.peer_procrastinate", main_async, argv)


if __name__ == "__main__":
    sys.exit(main())
