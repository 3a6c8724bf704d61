"""As in Temporal: a cancelled workflow's heartbeating activity learns of the cancellation at its
next ``heartbeat()`` (it raises ``CancelledFailure``; ``get_context().is_cancelled()`` says so),
and a non-heartbeating one runs to its end, its late result recorded as such in the history
(``late`` and ``cancelled``, not inbound), never fed to the workflow that moved on. An activity
awaited inside a non-cancellable scope is not cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pgdurable import CancellationScope, Durable, errors
from support.history import events, new_client, wait_event, wait_pending
from support.polling import wait_for

QUEUE = "porting-cancel"
observed: dict[str, Any] = {}
gates: dict[str, asyncio.Event] = {}  # made per test: an asyncio.Event belongs to one event loop


async def porting_heartbeating(total: int) -> str:
    ctx = Durable.activity.get_context()
    try:
        for step in range(total):
            Durable.activity.heartbeat(step)
            await asyncio.sleep(0.05)
    except errors.CancelledFailure:
        observed["heartbeating"] = {"is_cancelled": ctx.is_cancelled(), "raised": True}
        raise
    return "finished"


async def porting_silent(label: str) -> str:
    await gates["release"].wait()
    return f"late {label}"


async def porting_cleanup(label: str) -> str:
    return f"cleaned {label}"


async def cancels_a_heartbeating_activity() -> str:
    acts = Durable.workflow.proxy_activities(activities=[porting_heartbeating, porting_cleanup])
    try:
        return await acts.porting_heartbeating(100_000)
    except errors.CancelledFailure:
        async with CancellationScope.non_cancellable():
            observed["cleanup"] = await acts.porting_cleanup("after cancel")
        raise


async def moves_on_from_a_silent_activity() -> str:
    acts = Durable.workflow.proxy_activities(activities=[porting_silent])
    try:
        return await acts.porting_silent("result")
    except errors.CancelledFailure:
        return "moved on"


async def shields_its_activity() -> str:
    acts = Durable.workflow.proxy_activities(activities=[porting_silent])
    async with CancellationScope.non_cancellable():
        return await acts.porting_silent("shielded")


async def shields_a_heartbeating_activity() -> str:
    acts = Durable.workflow.proxy_activities(activities=[porting_heartbeating])
    async with CancellationScope.non_cancellable():
        return await acts.porting_heartbeating(40)


async def abandons_a_slow_activity() -> str:
    acts = Durable.workflow.proxy_activities(activities=[porting_silent])
    try:
        return await asyncio.wait_for(acts.porting_silent("abandoned"), timeout=0.5)
    except TimeoutError:
        return "gave up waiting"


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[Durable.Client]:
    observed.clear()
    gates["release"] = asyncio.Event()
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflows=[
        cancels_a_heartbeating_activity, moves_on_from_a_silent_activity, shields_its_activity,
        abandons_a_slow_activity, shields_a_heartbeating_activity])
    yield new_client(connection)
    gates["release"].set()
    await Durable.shutdown(grace=5)


async def test_a_heartbeating_activity_learns_of_the_cancel_at_its_next_heartbeat(
        client: Durable.Client) -> None:
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="cancels_a_heartbeating_activity")
    await wait_pending(handle, "activity", activity_name="porting_heartbeating", running=True)
    assert await handle.cancel() is True
    with pytest.raises(errors.WorkflowCancelledError):
        await handle.result(timeout=30)
    await wait_for(lambda: "heartbeating" in observed, "the activity to see its cancellation")
    assert observed["heartbeating"] == {"is_cancelled": True, "raised": True}
    assert observed["cleanup"] == "cleaned after cancel"  # scheduled after the cancel: delivered
    late = (await wait_event(handle, "activity_failed"))[0]
    assert late["details"]["late"] is True and late["details"]["cancelled"] is True
    assert late["details"]["error"]["type"] == "CancelledFailure"
    completed = await events(handle, "activity_completed")
    assert [c["details"]["result"] for c in completed] == ["cleaned after cancel"]


async def test_a_silent_activity_finishes_and_its_late_result_is_recorded_not_delivered(
        client: Durable.Client, conn: Any) -> None:
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="moves_on_from_a_silent_activity")
    await wait_pending(handle, "activity", activity_name="porting_silent", running=True)
    await handle.cancel()
    assert await handle.result(timeout=30) == "moved on"
    gates["release"].set()
    late = (await wait_event(handle, "activity_completed"))[0]
    assert late["details"]["result"] == "late result"
    assert late["details"]["late"] is True and late["details"]["cancelled"] is True
    row = conn.execute("SELECT inbound FROM durable.history WHERE workflow_id = %s AND event_type = "
                       "'activity_completed'", [handle.workflow_id]).fetchone()
    assert row == (False,)  # never fed to the workflow
    types = [e["event_type"] for e in await events(handle)]
    assert types.index("workflow_completed") < types.index("activity_completed")


async def test_an_activity_awaited_in_a_non_cancellable_scope_is_not_cancelled(
        client: Durable.Client) -> None:
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="shields_its_activity")
    await wait_pending(handle, "activity", activity_name="porting_silent", running=True)
    await handle.cancel()
    await wait_event(handle, "cancel_requested")
    gates["release"].set()
    assert await handle.result(timeout=30) == "late shielded"
    completed = (await events(handle, "activity_completed"))[0]
    assert "late" not in completed["details"]


async def test_an_activity_the_workflow_stops_awaiting_is_cancelled_and_its_late_result_recorded(
        client: Durable.Client) -> None:
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="abandons_a_slow_activity")
    assert await handle.result(timeout=30) == "gave up waiting"
    gates["release"].set()
    late = (await wait_event(handle, "activity_completed"))[0]
    assert late["details"]["result"] == "late abandoned"
    assert late["details"]["late"] is True and late["details"]["cancelled"] is True


async def test_a_heartbeating_activity_awaited_in_a_non_cancellable_scope_is_not_cancelled(
        client: Durable.Client) -> None:
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="shields_a_heartbeating_activity")
    await wait_pending(handle, "activity", activity_name="porting_heartbeating", running=True)
    await handle.cancel()
    await wait_event(handle, "cancel_requested")
    assert await handle.result(timeout=30) == "finished"  # 40 heartbeats, none raised
    assert "heartbeating" not in observed
