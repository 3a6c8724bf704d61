"""``except Exception`` (or a bare ``except BaseException`` that re-raises engine signals) in
workflow code cannot swallow suspension: such workflows still complete correctly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pgdurable import Durable


async def guarded_step(x: int) -> int:
    return x + 1


async def guarded_workflow(signal_id: str) -> list[Any]:
    acts = Durable.workflow.proxy_activities(activities=[guarded_step])
    out: list[Any] = []
    try:
        out.append(await acts.guarded_step(1))
    except Exception as exc:  # noqa: BLE001 - the point of the test
        out.append(f"swallowed {type(exc).__name__}")
    try:
        out.append(await Durable.workflow.sleep(0.1))
    except Exception as exc:  # noqa: BLE001
        out.append(f"swallowed {type(exc).__name__}")
    try:
        out.append(await Durable.workflow.condition(signal_id))
    except Exception as exc:  # noqa: BLE001
        out.append(f"swallowed {type(exc).__name__}")
    try:
        out.append(await acts.guarded_step(10))
    except BaseException as exc:
        if Durable.did_interrupt(exc):
            raise
        out.append(f"swallowed {type(exc).__name__}")
    return out


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


@pytest.mark.parametrize("cache", [1000, 0], ids=["cached", "replayed"])
async def test_except_exception_in_a_workflow_does_not_swallow_suspension(connection, cache):
    await Durable.Worker.create(connection=connection, task_queue="guard", workflow=guarded_workflow,
                                max_cached_workflows=cache)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=["guard-go"], task_queue="guard",
                                         workflow_name="guarded_workflow")
    await client.workflow.signal("guard-go", "signalled")
    assert await handle.result(timeout=20) == [2, 0.1, "signalled", 11]
    kinds = [e["event_type"] for e in await handle.history()]
    assert kinds.count("activity_scheduled") == 2 and "workflow_task_failed" not in kinds
