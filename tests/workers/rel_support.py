"""Helpers of the reliability tests (not a test module): subprocess workers, a private
Postgres server, and the exactly-once checks every fault test ends with."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

TESTS_DIR = Path(__file__).resolve().parents[1]
PORTS = range(55700, 55800)
"""Ports the reliability tests may give their own servers."""


def sql(dsn: str, query: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
    """Runs one statement as the database owner; returns its rows (if any)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def try_sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
    """Like :func:`sql`, but ``None`` while the server is unreachable."""
    try:
        return sql(dsn, query, params)
    except psycopg.OperationalError:
        return None


async def wait_until(predicate: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0,
                     interval: float = 0.1) -> Any:
    """Awaits ``predicate()`` until truthy (returned), else fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value: {last!r})")


async def closed_count(dsn: str, workflow_ids: list[str]) -> int | None:
    """How many of these workflows are closed (None while the server is down)."""
    rows = await asyncio.to_thread(
        try_sql, dsn,
        "SELECT count(*) FROM durable.workflows WHERE workflow_id = ANY(%s) AND status <> 'running'",
        (workflow_ids,))
    return None if rows is None else int(rows[0][0])


def assert_each_ran_exactly_once(dsn: str, workflow_ids: list[str]) -> None:
    """No workflow lost (each completed), none completed twice, every activity recorded once."""
    rows = sql(dsn, """
        SELECT w.workflow_id, w.status,
               (SELECT count(*) FROM durable.history h
                 WHERE h.namespace = w.namespace AND h.workflow_id = w.workflow_id
                   AND h.event_type = 'workflow_completed')
        FROM durable.workflows w WHERE w.workflow_id = ANY(%s)""", (workflow_ids,))
    by_id = {r[0]: (r[1], r[2]) for r in rows}
    missing = set(workflow_ids) - set(by_id)
    assert not missing, f"{len(missing)} workflows lost, e.g. {sorted(missing)[:3]}"
    not_done = {k: v for k, v in by_id.items() if v[0] != "completed"}
    assert not not_done, f"{len(not_done)} workflows not completed: {list(not_done.items())[:3]}"
    twice = {k: v[1] for k, v in by_id.items() if v[1] != 1}
    assert not twice, f"workflow_completed recorded more than once: {list(twice.items())[:3]}"
    dup = sql(dsn, """
        SELECT workflow_id, run_id, seq, count(*) FROM durable.history
        WHERE event_type = 'activity_completed' AND workflow_id = ANY(%s)
        GROUP BY 1, 2, 3 HAVING count(*) > 1""", (workflow_ids,))
    assert not dup, f"activity results recorded twice: {dup[:3]}"
    scheduled_unresolved = sql(dsn, """
        SELECT s.workflow_id, s.seq FROM durable.history s
        WHERE s.event_type = 'activity_scheduled' AND s.workflow_id = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM durable.history r
                          WHERE r.workflow_id = s.workflow_id AND r.run_id = s.run_id
                            AND r.seq = s.seq AND r.event_type = 'activity_completed')""", (workflow_ids,))
    assert not scheduled_unresolved, f"scheduled activities never completed: {scheduled_unresolved[:3]}"


def worker_command(dsn: str, task_queue: str, *, workflows: str = "", activities: str = "",
                   lease: float = 1.0, until: str | None = None, timeout: float = 60.0) -> list[str]:
    command = [sys.executable, "-m", "workers.rel_worker", dsn, task_queue, "--workflows", workflows,
               "--activities", activities, "--lease", str(lease), "--timeout", str(timeout)]
    if until:
        command += ["--until", until]
    return command


async def spawn_worker(dsn: str, task_queue: str, *, env: dict[str, str] | None = None,
                       **options: Any) -> asyncio.subprocess.Process:
    """Starts ``workers.rel_worker`` in a subprocess (stdout piped: it prints ``ready``)."""
    full_env = {k: v for k, v in os.environ.items() if k != "PGDURABLE_CRASH_AT"}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), full_env.get("PYTHONPATH")]))
    return await asyncio.create_subprocess_exec(
        *worker_command(dsn, task_queue, **options), cwd=TESTS_DIR, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> tuple[int, str]:
    """Waits for a worker process to exit; returns its exit code and stderr (killed on timeout)."""
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        _, err = await proc.communicate()
        raise AssertionError(f"worker {proc.pid} did not exit within {timeout} s; stderr:\n"
                             f"{err.decode(errors='replace')[-3000:]}") from None
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


def free_port() -> int:
    """A free port among :data:`PORTS`."""
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@contextlib.contextmanager
def own_server(name: str) -> Iterator[Any]:
    """A private embedded Postgres in ``/tmp/rel-<name>-*`` on a port of :data:`PORTS`,
    stopped and deleted afterwards (only this one: it is ours)."""
    from pgdurable.embedded import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix=f"rel-{name}-", dir="/tmp"))
    server = EmbeddedPostgres(data_dir / "data", free_port(), settings={"fsync": "off"})
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
