"""B7: throughput with 1 and 2 worker processes, and B8: the memory of a worker holding parked workflows.

B7 runs B1 (empty workflows) and B2 (10-step activity workflows) against workers in subprocesses:
``pgdurable worker bench.b7_scale:start --processes N`` (the supervisor of the CLI), N = 1 and 2,
with the client in the bench process driving the same in-flight lanes as B1/B2. The CPU split's
Python side is the client plus every worker process. On a 2-core box shared by the client, the
workers and Postgres the gain of a second process is bounded: the figure is there for bigger machines.

B8 starts N workflows that each sleep an hour (a pending timer: the run stays parked in the worker's
cache, ``max_cached_workflows`` = N) against one worker process (``--processes 1``: the CLI process is
the worker, so its RSS is the worker's alone), waits until every first workflow task completed (N
timers are stored), and reads the worker's RSS (psutil) before and after.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg

from pgdurable import Durable

from .common import CpuMeter
from .pgd_support import WORKFLOWS, bench_empty, bench_sleeper, bench_steps, throughput

REPO = Path(__file__).resolve().parents[1]
TASK_QUEUE = "bench-b7"
PARK_QUEUE = "bench-parked"
STEPS = 10
RSS_TARGET_MIB = 300.0
_ENV_QUEUE, _ENV_CONCURRENCY, _ENV_CACHE = ("PGDURABLE_BENCH_QUEUE", "PGDURABLE_BENCH_CONCURRENCY",
                                            "PGDURABLE_BENCH_MAX_CACHED")


async def start(connection: Any) -> None:
    """The worker processes' target (``pgdurable worker bench.b7_scale:start``): the bench's workflows
    (and, through ``proxy_activities``, its activities), configured by the environment."""
    await Durable.Worker.create(connection=connection, task_queue=os.environ.get(_ENV_QUEUE, TASK_QUEUE),
                                workflows=WORKFLOWS, concurrency=int(os.environ.get(_ENV_CONCURRENCY, "10")),
                                max_cached_workflows=int(os.environ.get(_ENV_CACHE, "1000")))


async def _live_worker_pids(dsn: str, task_queue: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT pid FROM durable.list_workers() WHERE live AND task_queue = %s",
                                 (task_queue,))
        return [int(row[0]) for row in await cur.fetchall()]


class WorkerProcesses:
    """``pgdurable worker bench.b7_scale:start --processes N`` in a subprocess, until every worker
    process registered itself live; stopped with SIGTERM (graceful) on exit."""

    def __init__(self, dsn: str, processes: int, *, task_queue: str, concurrency: int,
                 max_cached: int = 1000) -> None:
        self.dsn, self.processes, self.task_queue = dsn, processes, task_queue
        self.env = dict(os.environ, **{_ENV_QUEUE: task_queue, _ENV_CONCURRENCY: str(concurrency),
                                       _ENV_CACHE: str(max_cached)})
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.pids: list[int] = []
        self.lines: list[str] = []

    async def __aenter__(self) -> WorkerProcesses:
        before = set(await _live_worker_pids(self.dsn, self.task_queue))
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - started once, outside any measured interval
            [sys.executable, "-m", "pgdurable.cli", "worker", "bench.b7_scale:start", "--processes",
             str(self.processes), "--dsn", self.dsn, "--grace", "5"],
            cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        stderr = self.proc.stderr
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(stderr.readline, "")),
                                        daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 60
        while True:
            pids = set(await _live_worker_pids(self.dsn, self.task_queue)) - before
            if len(pids) >= self.processes:
                self.pids = sorted(pids)
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                await self.__aexit__()
                raise RuntimeError(f"the worker processes did not start:\n{''.join(self.lines)[-3000:]}")
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


async def scaling(dsn: str, postmaster_pid: int | None, *, processes: tuple[int, ...] = (1, 2),
                  b1_duration: float, b1_in_flight: int, b2_duration: float, b2_in_flight: int,
                  concurrency: int) -> dict[str, Any]:
    """B1 and B2 throughput with each number of worker processes, and the speed-ups over one."""
    connection = Durable.Connection(dsn)
    client = Durable.Client(connection=connection)
    target: Any = SimpleNamespace(dsn=dsn)  # what throughput() reads: the database whose xacts it counts

    async def run(workflow: Any, *args: Any) -> None:
        handle = await client.workflow.start(args=list(args), task_queue=TASK_QUEUE,
                                             workflow_name=workflow.__name__)
        await handle.result(timeout=120)

    out: dict[str, Any] = {"processes": list(processes), "cores": os.cpu_count()}
    try:
        for n in processes:
            async with WorkerProcesses(dsn, n, task_queue=TASK_QUEUE, concurrency=concurrency) as workers:
                meter = CpuMeter(postmaster_pid, extra_python_pids=workers.pids)
                b1 = await throughput(target, meter, duration=b1_duration, in_flight=b1_in_flight,
                                      one=lambda: run(bench_empty), warmup=min(b1_in_flight, 32))
                b2 = await throughput(target, meter, duration=b2_duration, in_flight=b2_in_flight,
                                      one=lambda: run(bench_steps, STEPS), warmup=min(b2_in_flight, 20))
                b2["activities_per_s"] = b2["per_s"] * STEPS
                out[f"p{n}"] = {"worker_pids": workers.pids, "B1": b1, "B2": b2}
    finally:
        await connection.close()
    first, last = f"p{min(processes)}", f"p{max(processes)}"
    if first in out and last in out and len(processes) > 1:
        out["b1_speedup"] = out[last]["B1"]["per_s"] / max(out[first]["B1"]["per_s"], 1e-9)
        out["b2_speedup"] = (out[last]["B2"]["activities_per_s"]
                             / max(out[first]["B2"]["activities_per_s"], 1e-9))
    return out


async def parked_rss(dsn: str, *, n: int, batch: int, concurrency: int,
                     progress: Any = None) -> dict[str, Any]:
    """B8: the RSS of one worker process holding ``n`` parked workflows in its cache."""
    import psutil

    connection = Durable.Connection(dsn)
    client = Durable.Client(connection=connection)
    try:
        async with WorkerProcesses(dsn, 1, task_queue=PARK_QUEUE, concurrency=concurrency,
                                   max_cached=n) as workers:
            [pid] = workers.pids
            assert pid == workers.proc.pid, "with --processes 1 the CLI process is the worker"
            worker = psutil.Process(pid)
            rss_before = worker.memory_info().rss
            t0 = time.perf_counter()
            for first in range(0, n, batch):
                await asyncio.gather(*(client.workflow.start(args=[3600.0], task_queue=PARK_QUEUE,
                                                             workflow_name=bench_sleeper.__name__)
                                       for _ in range(min(batch, n - first))))
                if progress is not None and first % max(batch, n // 10 // batch * batch or batch) == 0:
                    progress(f"B8: {first + batch:,} of {n:,} parked workflows started")
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                while True:  # each first task completed <=> its timer is stored
                    cur = await conn.execute("SELECT count(*) FROM durable.messages WHERE kind = 'timer'")
                    row = await cur.fetchone()
                    if row is not None and row[0] >= n:
                        break
                    await asyncio.sleep(0.2)
            parked_s = time.perf_counter() - t0
            await asyncio.sleep(0.5)  # the last completions' bookkeeping
            rss_after = worker.memory_info().rss
    finally:
        await connection.close()
    mib = rss_after / 2**20
    return {"workflows": n, "parked_s": parked_s, "rss_before_mib": rss_before / 2**20, "rss_mib": mib,
"kib_per_workflow": (rss_after - rss_before) / 1024 / n,
            "target_mib": RSS_TARGET_MIB, "met": mib < RSS_TARGET_MIB,
            "measured": "RSS of the worker process alone (psutil), before the starts and once all are parked"}
