"""A worker's ``concurrency`` bounds the activities it runs at once, eager dispatch included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pgdurable import Durable
from support.history import events

running: list[int] = []  # activities running right now (by argument)
peak: list[int] = [0]


async def bound_step(x: int) -> int:
    running.append(x)
    peak[0] = max(peak[0], len(running))
    try:
        await asyncio.sleep(0.1)  # overlap with whatever else this worker starts meanwhile
        return x * 10
    finally:
        running.remove(x)


async def gather_ten_workflow() -> list[int]:
    acts = Durable.workflow.proxy_activities(activities=[bound_step])
    return list(await asyncio.gather(*(acts.bound_step(i) for i in range(10))))


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    running.clear()
    peak[0] = 0
    yield Durable.Connection(dsn)
    await Durable.shutdown(grace=5)


async def test_gather_of_ten_activities_on_a_worker_with_concurrency_two_never_runs_more_than_two_at_once(
        connection):
    await Durable.Worker.create(connection=connection, task_queue="bound", workflow=gather_ten_workflow,
                                concurrency=2)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(task_queue="bound", workflow_name="gather_ten_workflow")
    assert await handle.result(timeout=30) == [i * 10 for i in range(10)]
    assert peak[0] == 2, f"{peak[0]} activities ran at once on a worker with concurrency=2"
    assert len(await events(handle, "activity_completed")) == 10
