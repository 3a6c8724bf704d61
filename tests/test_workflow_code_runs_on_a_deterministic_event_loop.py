"""Workflow code runs on a deterministic event loop: create_task, asyncio.wait and friends
replay to the same durable calls; real I/O raises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pgdurable import Durable
from support.history import comparable


async def loop_step(x: int) -> int:
    await asyncio.sleep(0.02 * x)
    return x


async def tasks_workflow() -> list[Any]:
    acts = Durable.workflow.proxy_activities(activities=[loop_step])
    order: list[str] = []

    async def branch(name: str, n: int) -> str:
        for i in range(n):
            await acts.loop_step(i % 2)
            order.append(f"{name}{i}")
        return name

    first = asyncio.create_task(branch("a", 3))
    second = asyncio.get_running_loop().create_task(branch("b", 2))
    slow = asyncio.ensure_future(Durable.workflow.sleep(30))
    fast = asyncio.ensure_future(acts.loop_step(1))
    done, pending = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
    return [await first, await second, fast in done, slow in pending, sorted(order)]


async def io_workflow() -> list[str]:
    refused = []
    try:
        await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2])
    except RuntimeError as exc:
        refused.append(str(exc))
    try:
        await asyncio.open_connection("127.0.0.1", 5432)
    except RuntimeError as exc:
        refused.append(str(exc))
    return refused


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def run(connection: Durable.Connection, workflow: Any, cache: int) -> tuple[Any, list[dict[str, Any]]]:
    worker = await Durable.Worker.create(connection=connection, task_queue="loop", workflow=workflow,
                                         max_cached_workflows=cache)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="loop", workflow_name=workflow.__name__)
    result = await handle.result(timeout=20)
    history = await handle.history()
    await worker.shutdown()
    return result, history


async def test_create_task_and_asyncio_wait_replay_to_the_same_durable_calls(connection):
    cached, cached_history = await run(connection, tasks_workflow, cache=1000)
    replayed, replayed_history = await run(connection, tasks_workflow, cache=0)
    assert cached == replayed == ["a", "b", True, True, ["a0", "a1", "a2", "b0", "b1"]]

    def commands(history: list[dict[str, Any]]) -> list[Any]:
        return [e for e in comparable(history) if e[0] in ("activity_scheduled", "timer_started")]

    assert commands(cached_history) == commands(replayed_history)
    assert [e[:2] for e in commands(cached_history)][:4] == [
        ("activity_scheduled", 1), ("activity_scheduled", 2), ("timer_started", 3), ("activity_scheduled", 4)]


async def test_real_io_inside_a_workflow_raises(connection):
    result, _ = await run(connection, io_workflow, cache=1000)
    assert len(result) == 2
    assert all("real I/O is not allowed inside a workflow" in message for message in result)
