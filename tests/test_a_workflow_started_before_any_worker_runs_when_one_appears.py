"""A workflow started before any worker serves it waits, visibly, and runs when one appears."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pgdurable import Durable
from support.history import wait_pending


async def late_double(x: int) -> int:
    return 2 * x


async def late_workflow(x: int) -> int:
    acts = Durable.workflow.proxy_activities(activities=[late_double])
    return await acts.late_double(x) + 1


async def other_workflow() -> None:
    return None


async def late_remote_step(x: int) -> str:
    return f"remote {x}"


async def remote_activity_workflow(x: int) -> str:
    # No activities= here: this process does not know late_remote_step until an activity worker
    # registers it.
    acts = Durable.workflow.proxy_activities(task_queue="late-remote")
    return await acts.late_remote_step(x)


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def test_workflow_started_before_any_worker_waits_visibly_and_completes_once_one_starts(connection):
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[20], task_queue="late-q", workflow_name="late_workflow")

    waiting = await wait_pending(handle, "workflow_task")
    assert waiting["workflow_name"] == "late_workflow"
    assert waiting["task_queue"] == "late-q"
    assert "late_workflow" in waiting["waiting_for"] and "late-q" in waiting["waiting_for"]
    assert await handle.status() == "running"

    # A worker of another workflow on the same queue does not take it (though it does consume the queue).
    await Durable.Worker.create(connection=connection, task_queue="late-q", workflow=other_workflow)
    other = await client.workflow.start(task_queue="late-q", workflow_name="other_workflow")
    assert await other.result(timeout=20) is None
    still = await wait_pending(handle, "workflow_task")
    assert still["workflow_name"] == "late_workflow"
    assert [e["event_type"] for e in await handle.history()] == ["workflow_started"]

    await Durable.Worker.create(connection=connection, task_queue="late-q", workflow=late_workflow)
    assert await handle.result(timeout=20) == 41
    assert (await handle.state())["pending"] == []


async def test_activity_no_worker_knows_yet_waits_and_runs_once_an_activity_worker_registers_it(connection):
    await Durable.Worker.create(connection=connection, task_queue="late-q", workflow=remote_activity_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=[5], task_queue="late-q",
                                         workflow_name="remote_activity_workflow")
    waiting = await wait_pending(handle, "activity", activity_name="late_remote_step")
    assert waiting["task_queue"] == "late-remote" and waiting["running"] is False

    await Durable.register_activity_worker({"connection": connection, "task_queue": "late-remote"},
                                           [late_remote_step])
    assert await handle.result(timeout=20) == "remote 5"
    assert [e["event_type"] for e in await handle.history()].count("activity_failed") == 0
