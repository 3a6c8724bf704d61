"""Soak test (not in CI): hours of steady load, to see what time does to the engine.

    python bench/soak.py [--minutes 30] [--dsn DSN] [--peak-seconds 20] [--load 0.7]

Without ``--dsn`` it starts its own embedded Postgres in ``/tmp/rel-soak-*`` (port 55700-55799)
and removes it afterwards. A worker runs in its own process (``soak.py serve``) so its memory
is its own. The run first measures the peak throughput (``--peak-seconds`` with a deep
backlog), then starts workflows at ``--load`` x peak for ``--minutes`` and reports, per minute,
how many workflows completed; then dead tuples (``pg_stat_user_tables.n_dead_tup``) and sizes
(``pg_total_relation_size``) of the durable tables, and the worker's RSS, at start and end.

Each workflow: three short activities around a short durable sleep.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg

from pgdurable import Durable, RetryPolicy

QUEUE = "soak"


async def soak_step(n: int) -> int:
    await asyncio.sleep(0.005)
    return n + 1


async def soak_flow(n: int) -> int:
    acts = Durable.workflow.proxy_activities(activities=[soak_step], retry=RetryPolicy(maximum_attempts=10))
    n = await acts.soak_step(n)
    n = await acts.soak_step(n)
    await Durable.workflow.sleep("200ms")
    return await acts.soak_step(n)


# -- the worker process ----------------------------------------------------------------------

async def serve(dsn: str, workers: int, concurrency: int) -> None:
    connection = Durable.Connection(dsn, pool_size=max(16, concurrency))
    for _ in range(workers):
        await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=soak_flow,
                                    activities=[soak_step], concurrency=concurrency)
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await Durable.shutdown(grace=10)


# -- measuring ----------------------------------------------------------------------------------

def completed(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM durable.workflows WHERE status = 'completed'").fetchone()[0]


def table_stats(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    rows = conn.execute("""
        SELECT relname, n_live_tup, n_dead_tup, pg_total_relation_size(relid)
        FROM pg_stat_user_tables WHERE schemaname = 'durable' ORDER BY relname""").fetchall()
    return {r[0]: {"live": r[1], "dead": r[2], "bytes": r[3]} for r in rows}


class Load:
    """Starts workflows and counts completions."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.client = Durable.Client(connection=Durable.Connection(dsn))
        self.started = 0
        self.monitor = psycopg.connect(dsn, autocommit=True)

    async def start(self, n: int) -> None:
        async def one(i: int) -> None:
            await self.client.workflow.start(args=[i], task_queue=QUEUE, workflow_name="soak_flow")

        base = self.started
        self.started += n
        for chunk in range(0, n, 50):
            await asyncio.gather(*(one(base + i) for i in range(chunk, min(n, chunk + 50))))

    async def completed(self) -> int:
        return await asyncio.to_thread(completed, self.monitor)

    async def peak(self, seconds: float, backlog: int = 400) -> float:
        """Completions per second with a backlog that never runs dry."""
        await self.start(backlog)
        await asyncio.sleep(2)  # warm up
        first, began = await self.completed(), time.monotonic()
        while time.monotonic() - began < seconds:
            await asyncio.sleep(1)
            done = await self.completed()
            if self.started - done < backlog // 2:
                await self.start(backlog // 2)
        rate = (await self.completed() - first) / (time.monotonic() - began)
        # Drain the backlog before the steady phase.
        await self.drain()
        return rate

    async def drain(self) -> None:
        """Waits until every workflow started so far has completed."""
        done = await self.completed()
        while done < self.started:
            await asyncio.sleep(0.5)
            done = await self.completed()

    async def steady(self, rate: float, minutes: float) -> list[dict[str, Any]]:
        """Starts ``rate`` workflows per second; reports each minute."""
        per_minute: list[dict[str, Any]] = []
        began = time.monotonic()
        minute_start, minute_done, minute_started = began, await self.completed(), self.started
        due = 0.0

        async def close_minute() -> None:
            nonlocal minute_start, minute_done, minute_started
            done = await self.completed()
            rate_seen = (done - minute_done) / (time.monotonic() - minute_start)
            per_minute.append({"minute": len(per_minute) + 1, "completed": done - minute_done,
                               "per_second": round(rate_seen, 1),
                               "started": self.started - minute_started, "backlog": self.started - done})
            print(f"  minute {len(per_minute)}: {per_minute[-1]}", flush=True)
            minute_start, minute_done, minute_started = time.monotonic(), done, self.started

        while time.monotonic() - began < minutes * 60:
            tick = time.monotonic()
            due += rate * 0.2
            if due >= 1:
                await self.start(int(due))
                due -= int(due)
            if time.monotonic() - minute_start >= 60:
                await close_minute()
            await asyncio.sleep(max(0.0, 0.2 - (time.monotonic() - tick)))
        if time.monotonic() - minute_start >= 30 or not per_minute:
            await close_minute()
        return per_minute


# -- the server -----------------------------------------------------------------------------------

@contextlib.contextmanager
def own_server() -> Iterator[str]:
    from pgdurable.embedded import EmbeddedPostgres

    port = next(p for p in range(55700, 55800) if _free(p))
    data_dir = Path(tempfile.mkdtemp(prefix="rel-soak-", dir="/tmp"))
    server = EmbeddedPostgres(data_dir / "data", port)
    try:
        server.start()
        yield server.dsn()
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def soak(dsn: str, opts: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "serve", "--dsn", dsn, "--workers", str(opts.workers),
               "--concurrency", str(opts.concurrency)]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 - once, at start
    try:
        assert worker.stdout is not None
        line = await asyncio.to_thread(worker.stdout.readline)
        if line.strip() != "ready":
            raise RuntimeError(f"the worker process did not start (said {line!r})")
        proc = psutil.Process(worker.pid)
        load = Load(dsn)
        report: dict[str, Any] = {"rss_ready_mb": proc.memory_info().rss // 2**20}
        print(f"measuring peak throughput for {opts.peak_seconds} s ...", flush=True)
        peak = await load.peak(opts.peak_seconds)
        target = peak * opts.load
        report.update(peak_per_second=round(peak, 1), target_per_second=round(target, 1))
        print(f"peak {peak:.1f} workflows/s; soaking at {target:.1f}/s for {opts.minutes} min", flush=True)
        report["tables_start"] = await asyncio.to_thread(table_stats, load.monitor)
        report["rss_start_mb"] = proc.memory_info().rss // 2**20
        report["minutes"] = await load.steady(target, opts.minutes)
        report["rss_end_mb"] = proc.memory_info().rss // 2**20
        report["tables_end"] = await asyncio.to_thread(table_stats, load.monitor)
        load.monitor.close()
        return report
    finally:
        worker.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(30)
        if worker.poll() is None:
            worker.kill()
        await Durable.shutdown(grace=5)


def summary(report: dict[str, Any]) -> str:
    minutes = report["minutes"]
    lines = [f"peak: {report['peak_per_second']} workflows/s; target (load): {report['target_per_second']}/s"]
    if minutes:
        first, last = minutes[0], minutes[-1]
        lines.append(f"throughput: minute 1 {first['per_second']}/s, last (minute {last['minute']}) "
                     f"{last['per_second']}/s; backlog at the end {last['backlog']}")
    lines.append(f"worker RSS: {report['rss_ready_mb']} MiB when ready, {report['rss_start_mb']} MiB at the "
                 f"start of the soak, {report['rss_end_mb']} MiB at the end")
    lines.append(f"{'table':<20}{'dead start':>12}{'dead end':>12}{'size start':>14}{'size end':>14}"
                 f"{'live end':>10}")
    for name, end in report["tables_end"].items():
        start = report["tables_start"].get(name, {"dead": 0, "bytes": 0})
        lines.append(f"{name:<20}{start['dead']:>12}{end['dead']:>12}{start['bytes'] // 1024:>11} kB"
                     f"{end['bytes'] // 1024:>11} kB{end['live']:>10}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="soak", choices=["soak", "serve"])
    parser.add_argument("--dsn", help="a migrated database (default: a private embedded server)")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--peak-seconds", type=float, default=20)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of the peak to run at")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--json", help="also write the report to this file")
    opts = parser.parse_args()
    if opts.mode == "serve":
        asyncio.run(serve(opts.dsn, opts.workers, opts.concurrency))
        return

    def run(dsn: str) -> dict[str, Any]:
        return asyncio.run(soak(dsn, opts))

    if opts.dsn:
        report = run(opts.dsn)
    else:
        with own_server() as dsn:
            Durable.migrate(dsn)
            report = run(dsn)
    print(summary(report))
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
