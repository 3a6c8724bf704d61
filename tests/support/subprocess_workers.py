"""Worker subprocesses: ``python -m workers.worker_process`` started, awaited, killed and reaped.

A test that must lose a worker mid-flight (SIGKILL, ``PGDURABLE_CRASH_AT``, a poison activity)
runs it here, never in the pytest process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]

Process = asyncio.subprocess.Process


def worker_command(dsn: str, task_queue: str, *, workflows: str = "", activities: str = "",
                   lease: float = 1.0, until: str | None = None, timeout: float = 60.0) -> list[str]:
    """The command line of ``workers.worker_process`` (see its docstring for the options)."""
    command = [sys.executable, "-m", "workers.worker_process", dsn, task_queue, "--workflows", workflows,
               "--activities", activities, "--lease", str(lease), "--timeout", str(timeout)]
    if until:
        command += ["--until", until]
    return command


async def spawn_worker(dsn: str, task_queue: str, *, env: dict[str, str] | None = None,
                       **options: Any) -> Process:
    """Starts ``workers.worker_process`` (stdout and stderr piped: it prints ``ready``).

    ``PGDURABLE_CRASH_AT`` is passed only when ``env`` sets it."""
    full_env = {k: v for k, v in os.environ.items() if k != "PGDURABLE_CRASH_AT"}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), full_env.get("PYTHONPATH")]))
    return await asyncio.create_subprocess_exec(
        *worker_command(dsn, task_queue, **options), cwd=TESTS_DIR, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def wait_ready(proc: Process, timeout: float = 30.0) -> None:
    """Waits until the worker prints ``ready`` (it consumes its task queue)."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    assert line.strip() == b"ready", f"worker subprocess did not start: {line!r}"


async def kill(proc: Process) -> None:
    """SIGKILLs the worker (no cleanup at all) and reaps it."""
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL


async def finish(proc: Process, timeout: float = 60.0) -> tuple[int, str]:
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


@contextlib.asynccontextmanager
async def ready_workers(dsn: str, task_queue: str,
                        **options: Any) -> AsyncIterator[Callable[..., Awaitable[Process]]]:
    """Yields ``start(env=None)``: a new worker subprocess with ``options``, once it is ready.
    Those still running on exit are killed."""
    procs: list[Process] = []

    async def start(env: dict[str, str] | None = None) -> Process:
        proc = await spawn_worker(dsn, task_queue, env=env, **options)
        procs.append(proc)
        await wait_ready(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
