"""handle.interrupt(): a hard stop. Nothing of the workflow runs again; late activity
results are discarded; its signal waits are dropped; its children are not touched."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import psycopg
import pytest

from pgdurable import Durable, RetryPolicy, errors
from support.gates import gated_connection
from support.history import event_types, new_client, wait_pending
from support.polling import wait_for

QUEUE = "interrupting"
executions: list[str] = []
gates: dict[str, asyncio.Event] = {}


@pytest.fixture
async def connection(dsn: str, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Durable.Connection]:
    caplog.set_level(logging.INFO, logger="pgdurable.worker")
    executions.clear()
    async with gated_connection(dsn, gates) as connection:
        yield connection


async def interrupt_slow_step(outcome: str) -> str:
    executions.append(outcome)
    gates["entered"].set()
    await gates["release"].wait()
    if outcome == "fail":
        raise RuntimeError("failed after the interrupt")
    return "late result"


async def runs_a_slow_step(outcome: str) -> str:
    acts = Durable.workflow.proxy_activities(
        activities=[interrupt_slow_step], retry=RetryPolicy(maximum_attempts=5, initial_interval=0.1))
    return await acts.interrupt_slow_step(outcome)


async def waits_for_a_signal(signal_id: str) -> str:
    return await Durable.workflow.condition(signal_id)


async def starts_a_waiting_child() -> str:
    await Durable.workflow.execute_child(workflow_name="waits_for_a_signal", args=["child-go"],
                                         workflow_id="interrupted-parents-child")
    return "parent done"


def messages_of(conn: psycopg.Connection, workflow_id: str) -> int:
    row = conn.execute("SELECT count(*) FROM durable.messages WHERE workflow_id = %s",
                       [workflow_id]).fetchone()
    assert row is not None
    return row[0]


async def start(connection: Durable.Connection, workflow, args: list) -> tuple:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=workflow)
    client = new_client(connection)
    return client, await client.workflow.start(args=args, task_queue=QUEUE, workflow_name=workflow.__name__)


@pytest.mark.parametrize("outcome", ["complete", "fail"])
async def test_an_in_flight_activitys_late_outcome_is_discarded_and_it_never_runs_again(
        connection: Durable.Connection, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture,
        outcome: str) -> None:
    _, handle = await start(connection, runs_a_slow_step, [outcome])
    await asyncio.wait_for(gates["entered"].wait(), 20)
    await handle.interrupt("operator stop")
    assert await handle.status() == "interrupted"
    with pytest.raises(errors.WorkflowInterruptedError, match="operator stop"):
        await handle.result(timeout=20)
    assert messages_of(conn, handle.workflow_id) == 0  # nothing left that could run again

    gates["release"].set()
    verb = "result" if outcome == "complete" else "failure"
    discarded = f"lease lost, {verb} discarded"

    async def logged() -> bool:
        return discarded in caplog.text

    await wait_for(logged, f"the worker to report: {discarded}")
    types = await event_types(handle)
    assert "activity_completed" not in types and "activity_failed" not in types
    assert types[-1] == "workflow_interrupted"
    assert executions == [outcome]
    assert messages_of(conn, handle.workflow_id) == 0
    state = await handle.state()
    assert state["status"] == "interrupted" and "operator stop" in state["error"]["message"]


async def test_interrupt_drops_pending_signal_waits(connection: Durable.Connection,
                                                   conn: psycopg.Connection) -> None:
    client, handle = await start(connection, waits_for_a_signal, ["interrupt-sig"])
    await wait_pending(handle, "condition", signal_id="interrupt-sig")
    await handle.interrupt("no longer needed")
    with pytest.raises(errors.WorkflowInterruptedError):
        await handle.result(timeout=20)
    waits = conn.execute("SELECT count(*) FROM durable.signal_waits WHERE workflow_id = %s",
                         [handle.workflow_id]).fetchone()
    assert waits == (0,)
    # The signal is not swallowed by the dead wait: it is buffered for the next condition.
    await client.workflow.signal("interrupt-sig", "for whoever waits next")
    assert "signal_received" not in await event_types(handle)
    successor = await client.workflow.start(args=["interrupt-sig"], task_queue=QUEUE,
                                            workflow_name="waits_for_a_signal")
    assert await successor.result(timeout=20) == "for whoever waits next"
    assert await handle.status() == "interrupted"


async def test_interrupt_does_not_reach_children(connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=waits_for_a_signal)
    client, parent = await start(connection, starts_a_waiting_child, [])
    child = client.workflow.get_handle(QUEUE, "waits_for_a_signal", "interrupted-parents-child")
    await wait_pending(parent, "child", workflow_id="interrupted-parents-child")
    await wait_pending(child, "condition", signal_id="child-go")
    await parent.interrupt("parent only")
    with pytest.raises(errors.WorkflowInterruptedError):
        await parent.result(timeout=20)
    assert await child.status() == "running"
    await client.workflow.signal("child-go", "still alive")
    assert await child.result(timeout=20) == "still alive"
    assert await parent.status() == "interrupted"
    assert "child_completed" not in await event_types(parent)
