"""Cooperative cancellation end to end (API.md): wake-up, CancelledFailure once, cleanup,
non-cancellable scopes, children, and activities that are already running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pgdurable import CancellationScope, Durable, errors
from support.gates import gated_connection
from support.history import event_types, new_client, wait_event, wait_pending, wait_status

QUEUE = "cancelling"
cleanups: list[str] = []
gates: dict[str, asyncio.Event] = {}


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    cleanups.clear()
    async with gated_connection(dsn, gates) as connection:
        yield connection


async def cancel_cleanup(what: str) -> str:
    await asyncio.sleep(0.2)  # long enough that an interrupted cleanup would show
    cleanups.append(what)
    return f"cleaned {what}"


async def cancel_blocking_step() -> str:
    gates["entered"].set()
    await gates["release"].wait()
    return "step done"


ACTIVITIES = [cancel_cleanup, cancel_blocking_step]


async def sleeps_an_hour() -> str:
    await Durable.workflow.sleep("1 hour")
    return "woke up"


async def asyncio_sleeps_an_hour() -> dict:
    try:
        await asyncio.sleep(3600)
    except errors.CancelledFailure as err:
        return {"cancelled": Durable.workflow.is_cancellation(err), "during": "asyncio.sleep"}
    return {"cancelled": False}


async def catches_cancel_and_cleans_up() -> dict:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    caught = []
    try:
        await Durable.workflow.sleep("1 hour")
    except errors.CancelledFailure as err:
        caught.append(Durable.workflow.is_cancellation(err))
        caught.append(Durable.workflow.did_interrupt(err))
        async with CancellationScope.non_cancellable():
            shielded = await acts.cancel_cleanup("shielded")
        # Raised once: later awaits outside any scope work normally.
        await Durable.workflow.sleep(0.1)
        plain = await acts.cancel_cleanup("after")
        return {"caught": caught, "cleanups": [shielded, plain]}
    return {"caught": caught}


async def cancelled_inside_a_non_cancellable_scope() -> dict:
    async with CancellationScope.non_cancellable():
        inside = await Durable.workflow.condition("finish-inside")
    try:
        await Durable.workflow.sleep("1 hour")
    except errors.CancelledFailure:
        return {"inside": inside, "cancelled_at": "the sleep after the scope"}
    return {"inside": inside, "cancelled_at": None}


async def child_sleeps_an_hour() -> str:
    await Durable.workflow.sleep("1 hour")
    return "child woke up"


async def awaits_a_sleeping_child() -> str:
    return await Durable.workflow.execute_child(workflow_name="child_sleeps_an_hour",
                                                workflow_id="sleeping-child")


async def shields_a_running_activity() -> dict:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    async with CancellationScope.non_cancellable():
        result = await acts.cancel_blocking_step()
    try:
        await Durable.workflow.sleep("1 hour")
    except errors.CancelledFailure:
        return {"result": result, "cancelled": True}
    return {"result": result, "cancelled": False}


async def abandons_a_running_activity() -> dict:
    acts = Durable.workflow.proxy_activities(activities=ACTIVITIES)
    try:
        return {"result": await acts.cancel_blocking_step()}
    except errors.CancelledFailure:
        decision = await Durable.workflow.condition("decide")
        return {"cancelled": True, "decision": decision}


async def start(connection: Durable.Connection, workflow, **kwargs):
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=workflow, **kwargs)
    client = new_client(connection)
    return client, await client.workflow.start(task_queue=QUEUE, workflow_name=workflow.__name__)


async def test_cancel_wakes_a_workflow_sleeping_an_hour_and_an_uncaught_cancel_ends_it_cancelled(
        connection: Durable.Connection) -> None:
    _, handle = await start(connection, sleeps_an_hour)
    await wait_pending(handle, "timer")
    await handle.cancel()
    with pytest.raises(errors.WorkflowCancelledError):
        await handle.result(timeout=20)
    assert await handle.status() == "cancelled"
    types = await event_types(handle)
    assert types.index("cancel_requested") < types.index("workflow_cancelled")
    assert "timer_fired" not in types


async def test_a_caught_cancellation_is_raised_once_and_cleanup_runs_to_completion(
        connection: Durable.Connection) -> None:
    _, handle = await start(connection, catches_cancel_and_cleans_up)
    await wait_pending(handle, "timer")
    await handle.cancel()
    outcome = await handle.result(timeout=20)
    assert outcome == {"caught": [True, True], "cleanups": ["cleaned shielded", "cleaned after"]}
    assert cleanups == ["shielded", "after"]
    assert await handle.status() == "completed"
    types = await event_types(handle)
    assert types.count("activity_completed") == 2 and types[-1] == "workflow_completed"


async def test_a_cancel_during_a_non_cancellable_scope_is_raised_at_the_next_await_outside_it(
        connection: Durable.Connection) -> None:
    client, handle = await start(connection, cancelled_inside_a_non_cancellable_scope)
    await wait_pending(handle, "condition", signal_id="finish-inside")
    await handle.cancel()
    await wait_event(handle, "cancel_requested")
    # The shielded condition still waits, and still receives its signal.
    await wait_pending(handle, "condition", signal_id="finish-inside")
    assert await handle.status() == "running"
    await client.workflow.signal("finish-inside", "inside data")
    assert await handle.result(timeout=20) == {"inside": "inside data",
                                               "cancelled_at": "the sleep after the scope"}
    assert "timer_started" not in await event_types(handle)


async def test_cancelling_a_parent_cancels_the_child_it_awaits(connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=child_sleeps_an_hour)
    client, parent = await start(connection, awaits_a_sleeping_child)
    child = client.workflow.get_handle(QUEUE, "child_sleeps_an_hour", "sleeping-child")
    await wait_pending(parent, "child", workflow_id="sleeping-child")
    await wait_pending(child, "timer")
    await parent.cancel()
    with pytest.raises(errors.WorkflowCancelledError):
        await parent.result(timeout=20)
    with pytest.raises(errors.WorkflowCancelledError):
        await child.result(timeout=20)
    assert "cancel_requested" in await event_types(child)


async def test_a_shielded_activity_running_at_cancel_time_is_recorded_and_the_workflow_decides(
        connection: Durable.Connection) -> None:
    _, handle = await start(connection, shields_a_running_activity)
    await asyncio.wait_for(gates["entered"].wait(), 20)
    await handle.cancel()
    await wait_event(handle, "cancel_requested")
    assert await handle.status() == "running"
    gates["release"].set()
    assert await handle.result(timeout=20) == {"result": "step done", "cancelled": True}
    types = await event_types(handle)
    assert types.index("cancel_requested") < types.index("activity_completed") < types.index(
        "workflow_completed")


async def test_a_cancel_while_an_activity_runs_wakes_the_workflow_and_the_result_is_still_recorded(
        connection: Durable.Connection) -> None:
    client, handle = await start(connection, abandons_a_running_activity)
    await asyncio.wait_for(gates["entered"].wait(), 20)
    await handle.cancel()
    # The workflow was woken at once: it waits on its decision while the activity still runs.
    await wait_pending(handle, "condition", signal_id="decide")
    assert not gates["release"].is_set()
    gates["release"].set()
    await wait_event(handle, "activity_completed")
    await client.workflow.signal("decide", "compensate")
    assert await handle.result(timeout=20) == {"cancelled": True, "decision": "compensate"}
    await wait_status(handle, "completed")


async def test_a_cancel_interrupts_an_asyncio_sleep_as_it_does_a_durable_sleep(
        connection: Durable.Connection) -> None:
    _, handle = await start(connection, asyncio_sleeps_an_hour)
    timer = await wait_pending(handle, "timer")
    await handle.cancel()
    assert await handle.result(timeout=20) == {"cancelled": True, "during": "asyncio.sleep"}
    types = await event_types(handle)
    assert "timer_fired" not in types
    assert types.index("cancel_requested") < types.index("timer_cancelled") < types.index(
        "workflow_completed")
    cancelled = [e for e in await handle.history() if e["event_type"] == "timer_cancelled"]
    assert [e["seq"] for e in cancelled] == [timer["seq"]]
