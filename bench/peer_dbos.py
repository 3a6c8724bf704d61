"""Peer: DBOS Transact (3.4), in its own process and its own database, at its defaults.

``python -m bench.peer_dbos --dsn DSN --params JSON --out PATH [--postmaster PID]``
(``python -m bench`` runs it). Measures, like B1/B2/B3 of pgdurable:

- throughput of async workflows with no step, one step, ten steps
  (``DBOS.start_workflow_async`` then ``handle.get_result()``, N in flight);
- send -> recv latency: from ``DBOS.send_async`` to the start of the step the workflow
  runs after ``DBOS.recv_async`` returns (the workflow is known to wait: its recv has
  recorded its timeout sleep);
- sleep lateness: ``DBOS.sleep_async(1)`` then a step records the wall clock; lateness is
  that minus the wake time DBOS recorded for the sleep.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from dbos import DBOS, DBOSConfig

from .common import CpuMeter, as_url, lanes, measure, peer_main, percentile, settle_stats, xact_count

MARKS: dict[str, float] = {}
WALL: dict[str, float] = {}
_WAITERS: dict[str, asyncio.Future[float]] = {}


@DBOS.step()
async def noop_step(i: int) -> int:
    return i


@DBOS.step()
async def mark_step(key: str) -> None:
    now = time.perf_counter()
    MARKS[key] = now
    WALL[key] = time.time()
    waiter = _WAITERS.pop(key, None)
    if waiter is not None and not waiter.done():
        waiter.set_result(now)


@DBOS.workflow()
async def empty_wf() -> None:
    return None


@DBOS.workflow()
async def steps_wf(n: int) -> int:
    for i in range(n):
        await noop_step(i)
    return n


@DBOS.workflow()
async def recv_wf(key: str, n: int) -> int:
    for i in range(n):
        await DBOS.recv_async(f"{key}-{i}", timeout_seconds=60)
        await mark_step(f"{key}-{i}")
    return n


@DBOS.workflow()
async def sleep_wf(key: str, seconds: float) -> None:
    await DBOS.sleep_async(seconds)
    await mark_step(key)


def _waiter(key: str) -> asyncio.Future[float]:
    if key in MARKS:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        future.set_result(MARKS[key])
        return future
    return _WAITERS.setdefault(key, asyncio.get_running_loop().create_future())


async def throughput(dsn: str, meter: CpuMeter, duration: float, in_flight: int, steps: int | None,
                     ) -> dict[str, Any]:
    async def one() -> None:
        if steps is None:
            handle = await DBOS.start_workflow_async(empty_wf)
        else:
            handle = await DBOS.start_workflow_async(steps_wf, steps)
        await handle.get_result()

    await asyncio.gather(*(one() for _ in range(min(in_flight, 20))))
    await asyncio.to_thread(settle_stats)
    x0 = await asyncio.to_thread(xact_count, dsn)
    with measure(meter) as cpu:
        done, elapsed = await lanes(duration, in_flight, one)
    await asyncio.to_thread(settle_stats)
    x1 = await asyncio.to_thread(xact_count, dsn)
    return {"completed": done, "elapsed_s": elapsed, "per_s": done / elapsed, "cpu": cpu,
            "xacts_per": (x1 - x0) / max(done, 1), "in_flight": in_flight, "steps": steps or 0,
            "steps_per_s": done * (steps or 0) / elapsed}


def _scalar(dsn: str, query: str, params: list[Any]) -> Any:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


async def send_to_recv(dsn: str, samples: int) -> dict[str, Any]:
    key = f"recv-{uuid.uuid4().hex[:10]}"
    handle = await DBOS.start_workflow_async(recv_wf, key, samples)
    wfid = handle.get_workflow_id()
    waiting = ("SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = %s "
               "AND function_name = 'DBOS.sleep'")
    latencies, calls = [], []
    for i in range(samples):
        deadline = time.perf_counter() + 30
        # recv records its timeout as a sleep after registering its waiter: then it waits.
        while (await asyncio.to_thread(_scalar, dsn, waiting, [wfid])) < i + 1:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"DBOS workflow never reached recv #{i}")
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.01)
        waiter = _waiter(f"{key}-{i}")
        t0 = time.perf_counter()
        await DBOS.send_async(wfid, i, f"{key}-{i}")
        t1 = time.perf_counter()
        resumed = await asyncio.wait_for(waiter, 30)
        latencies.append((resumed - t0) * 1000)
        calls.append((t1 - t0) * 1000)
    await handle.get_result()
    return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "send_call_p50_ms": percentile(calls, 50), "samples": len(latencies)}


async def sleep_lateness(dsn: str, samples: int, seconds: float = 1.0,
                         spacing: float = 0.025) -> dict[str, Any]:
    handles = []
    keys = [f"sleep-{uuid.uuid4().hex[:10]}" for _ in range(samples)]
    for key in keys:
        handles.append(await DBOS.start_workflow_async(sleep_wf, key, seconds))
        await asyncio.sleep(spacing)
    for handle in handles:
        await handle.get_result()
    lateness = []
    for key, handle in zip(keys, handles, strict=True):
        output = await asyncio.to_thread(
            _scalar, dsn, "SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = %s "
                          "AND function_name = 'DBOS.sleep'", [handle.get_workflow_id()])
        due = float(json.loads(output))
        lateness.append((WALL[key] - due) * 1000)
    return {"p50_ms": percentile(lateness, 50), "p99_ms": percentile(lateness, 99),
            "samples": len(lateness), "sleep_s": seconds}


async def main_async(dsn: str, params: dict[str, Any], postmaster: int | None) -> dict[str, Any]:
    meter = CpuMeter(postmaster)
    config: DBOSConfig = {"name": "pgdurable-bench", "system_database_url": as_url(dsn),
                          "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()
    runs: list[dict[str, Any]] = []
    try:
        for _ in range(params["runs"]):
            run: dict[str, Any] = {}
            run["empty"] = await throughput(dsn, meter, params["b1_duration"], params["b1_in_flight"], None)
            run["one_step"] = await throughput(dsn, meter, params["b1_duration"], params["b1_in_flight"], 1)
            run["ten_steps"] = await throughput(dsn, meter, params["b2_duration"], params["b2_in_flight"], 10)
            run["send_recv"] = await send_to_recv(dsn, params["b3_samples"])
            run["sleep"] = await sleep_lateness(dsn, params["timer_samples"])
            runs.append(run)
    finally:
        DBOS.destroy()
    import dbos

    return {"peer": "dbos", "version": getattr(dbos, "__version__", None) or _version("dbos"), "runs": runs}


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    return peer_main("python -m bench.peer_dbos", main_async, argv)


if __name__ == "__main__":
    sys.exit(main())
