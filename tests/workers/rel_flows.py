"""Workflows and activities of the reliability tests (poison, stuck, restarted and crashing workers).

Some activities here kill their process (``rel_poison``) or hang (``rel_maybe_hang`` under
``REL_HANG=1``): they are only ever registered in subprocess workers (``workers.worker_process``),
never in the pytest process. Workflows that run in-process proxy only the harmless ones.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pgdurable import Durable, RetryPolicy, errors

# Activity retries stay short so a lost lease or a failed recording costs little time.
_RETRY = RetryPolicy(maximum_attempts=20, initial_interval=0.2, maximum_interval=1.0)


async def rel_step(n: int) -> int:
    """A short activity."""
    await asyncio.sleep(0.01)
    return n + 1


async def rel_chain(start: int) -> int:
    """A few short activities and a short sleep: the load of the fault tests."""
    acts = Durable.workflow.proxy_activities(activities=[rel_step], retry=_RETRY)
    x = await acts.rel_step(start)
    x = await acts.rel_step(x)
    await Durable.workflow.sleep("100ms")
    x = await acts.rel_step(x)
    return x


EXECUTIONS_LOG = "REL_EXECUTIONS_LOG"
"""When set, the file every execution of ``rel_crash_a``/``rel_crash_b`` (in any process)
appends ``<workflow id> <activity name>`` to."""


def _log_execution(name: str) -> None:
    path = os.environ.get(EXECUTIONS_LOG)
    if path:
        with Path(path).open("a", encoding="utf-8") as out:
            out.write(f"{Durable.activity.get_context().workflow_id} {name}\n")


async def rel_crash_a(order: str) -> str:
    _log_execution("rel_crash_a")
    return f"a({order})"


async def rel_crash_b(order: str, receipt: str) -> str:
    _log_execution("rel_crash_b")
    return f"b({order},{receipt})"


async def rel_crash_flow(order: str) -> str:
    """Two activities around a sleep: passes every fault point of ``pgdurable._faults``."""
    acts = Durable.workflow.proxy_activities(activities=[rel_crash_a, rel_crash_b], retry=_RETRY)
    receipt = await acts.rel_crash_a(order)
    await Durable.workflow.sleep("100ms")
    done = await acts.rel_crash_b(order, receipt)
    return done


def rel_poison() -> None:
    """Kills its worker process, every time (a poison task)."""
    marker = os.environ.get("REL_POISON_MARKER")
    if marker:
        with Path(marker).open("a") as out:
            out.write(f"{os.getpid()}\n")
    os._exit(13)


async def rel_poison_flow() -> dict[str, object]:
    """Calls the poison activity; reports what the workflow saw when its attempts ran out."""
    acts = Durable.workflow.proxy_activities(activities=[rel_poison],
                                             retry=RetryPolicy(maximum_attempts=3, initial_interval=0.1))
    try:
        await acts.rel_poison()
    except errors.DurableMaxedError as exc:
        return {"caught": type(exc).__name__, "error_type": exc.error_type, "attempts": exc.attempts}
    return {"caught": None}


async def rel_maybe_hang(x: int) -> int:
    """Hangs (in a subprocess started with ``REL_HANG=1``), else doubles ``x``."""
    if os.environ.get("REL_HANG"):
        marker = os.environ.get("REL_HANG_MARKER")
        if marker:
            Path(marker).write_text(str(os.getpid()))  # noqa: ASYNC240 - once, before it hangs
        await asyncio.sleep(3600)
    return 2 * x


async def rel_hang_flow(x: int) -> int:
    acts = Durable.workflow.proxy_activities(activities=[rel_maybe_hang],
                                             retry=RetryPolicy(maximum_attempts=5, initial_interval=0.1))
    return await acts.rel_maybe_hang(x)


WORKFLOWS = {fn.__name__: fn for fn in (rel_chain, rel_crash_flow, rel_poison_flow, rel_hang_flow)}
"""What ``workers.worker_process`` can serve, by name."""

ACTIVITIES = {fn.__name__: fn for fn in (rel_step, rel_crash_a, rel_crash_b, rel_poison, rel_maybe_hang)}
"""Activities ``workers.worker_process`` can register up front (``--activities``)."""
