"""patched()/deprecate_patch(): deploy changed workflow code under running executions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pgdurable import Durable
from support.history import event_types, new_client, wait_pending
from support.polling import wait_for

QUEUE = "patching"
calls: list[str] = []


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    calls.clear()
    connection = Durable.Connection(dsn)
    yield connection
    await Durable.shutdown(grace=5)


async def patch_step_a(tag: str) -> str:
    calls.append(f"a:{tag}")
    return "a"


async def patch_step_b(tag: str) -> str:
    calls.append(f"b:{tag}")
    return "b"


async def patch_new_step(tag: str) -> str:
    calls.append(f"new:{tag}")
    return "new"


ACTIVITIES = [patch_step_a, patch_step_b, patch_new_step]


def named(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every version below is deployed as the same workflow, ``order_flow``."""
    fn.__name__ = fn.__qualname__ = "order_flow"
    return fn


@named
async def order_flow_v1(tag: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    steps = [await acts.patch_step_a(tag)]
    await Durable.workflow.condition(f"go-{tag}")
    steps.append(await acts.patch_step_b(tag))
    return steps


@named
async def order_flow_v2(tag: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    steps = [await acts.patch_step_a(tag)]
    if Durable.workflow.patched("add-new-step"):
        steps.append(await acts.patch_new_step(tag))
    await Durable.workflow.condition(f"go-{tag}")
    steps.append(await acts.patch_step_b(tag))
    return steps


@named
async def order_flow_v3(tag: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    steps = [await acts.patch_step_a(tag)]
    Durable.workflow.deprecate_patch("add-new-step")
    steps.append(await acts.patch_new_step(tag))
    await Durable.workflow.condition(f"go-{tag}")
    steps.append(await acts.patch_step_b(tag))
    return steps


@named
async def order_flow_unguarded(tag: str) -> list[str]:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    steps = [await acts.patch_step_a(tag)]
    steps.append(await acts.patch_new_step(tag))  # the same change, without patched()
    await Durable.workflow.condition(f"go-{tag}")
    steps.append(await acts.patch_step_b(tag))
    return steps


async def start_on_old_code(connection: Durable.Connection, tag: str) -> Any:
    """Runs ``tag`` on the old code up to its condition, then stops that worker."""
    old = await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=order_flow_v1)
    client = new_client(connection)
    handle = await client.workflow.start(args=[tag], task_queue=QUEUE, workflow_name="order_flow",
                                         workflow_id=f"order-{tag}")
    await wait_pending(handle, "condition", signal_id=f"go-{tag}")
    await old.shutdown()
    return handle


async def test_an_old_execution_stays_on_the_old_path_and_a_new_one_takes_the_patched_path(
        connection: Durable.Connection) -> None:
    old_run = await start_on_old_code(connection, "old")
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=order_flow_v2)
    client = new_client(connection)
    await client.workflow.signal("go-old", True)
    assert await old_run.result(timeout=20) == ["a", "b"]
    old_types = await event_types(old_run)
    assert "workflow_task_failed" not in old_types
    assert "patch_marker" not in old_types
    assert (await old_run.state())["last_task_failure"] is None

    new_run = await client.workflow.start(args=["new"], task_queue=QUEUE, workflow_name="order_flow")
    await wait_pending(new_run, "condition", signal_id="go-new")
    await client.workflow.signal("go-new", True)
    assert await new_run.result(timeout=20) == ["a", "new", "b"]
    assert "patch_marker" in await event_types(new_run)
    assert sorted(calls) == ["a:new", "a:old", "b:new", "b:old", "new:new"]


async def test_a_patched_execution_replays_under_code_that_deprecates_the_patch(
        connection: Durable.Connection) -> None:
    patched_worker = await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                                 workflow=order_flow_v2)
    client = new_client(connection)
    handle = await client.workflow.start(args=["p"], task_queue=QUEUE, workflow_name="order_flow")
    await wait_pending(handle, "condition", signal_id="go-p")
    await patched_worker.shutdown()
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=order_flow_v3)
    await client.workflow.signal("go-p", True)
    assert await handle.result(timeout=20) == ["a", "new", "b"]
    assert "workflow_task_failed" not in await event_types(handle)
    fresh = await client.workflow.start(args=["d"], task_queue=QUEUE, workflow_name="order_flow")
    await wait_pending(fresh, "condition", signal_id="go-d")
    await client.workflow.signal("go-d", True)
    assert await fresh.result(timeout=20) == ["a", "new", "b"]
    assert calls.count("new:p") == 1


async def test_the_same_change_without_patched_is_a_non_determinism_error(
        connection: Durable.Connection) -> None:
    old_run = await start_on_old_code(connection, "bad")
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=order_flow_unguarded)
    client = new_client(connection)
    await client.workflow.signal("go-bad", True)

    async def task_failure() -> dict | None:
        return (await old_run.state())["last_task_failure"]

    failure = await wait_for(task_failure, "the replay to fail with a NonDeterminismError")
    assert failure["type"] == "NonDeterminismError"
    assert "patch_new_step" in failure["message"] and "patched()" in failure["message"]
    assert failure["failures"] >= 1
    assert await old_run.status() == "running"
    assert "workflow_task_failed" in await event_types(old_run)
    assert "new:bad" not in calls and "b:bad" not in calls
