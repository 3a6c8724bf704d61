"""Changing workflow code under a running workflow is detected, never recorded: the task fails
with NonDeterminismError (visible in state() and history), and the original code completes it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pgdurable import Durable
from support.db import sql
from support.history import events, wait_pending
from support.polling import wait_for


async def nd_code_a(signal_id: str) -> str:
    data = await Durable.workflow.condition(signal_id)
    slept = await Durable.workflow.sleep(0.05)
    return f"A got {data} after {slept}"


async def nd_code_b(signal_id: str) -> str:
    # The same workflow, redeployed with a different first durable call.
    await Durable.workflow.sleep(0.05)
    data = await Durable.workflow.condition(signal_id)
    return f"B got {data}"


nd_code_a.__name__ = nd_code_b.__name__ = "nd_flow"


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def test_changing_workflow_code_between_runs_raises_non_determinism_error(connection, dsn):
    client = Durable.Client(connection=connection)
    worker_a = await Durable.Worker.create(connection=connection, task_queue="nd", workflow=nd_code_a)
    handle = await client.workflow.start(args=["nd-go"], task_queue="nd", workflow_name="nd_flow")
    await wait_pending(handle, "condition", signal_id="nd-go")
    await worker_a.shutdown()
    before = await handle.history()

    worker_b = await Durable.Worker.create(connection=connection, task_queue="nd", workflow=nd_code_b)
    await client.workflow.signal("nd-go", "yes")
    await wait_for(lambda: events(handle, "workflow_task_failed"), "the workflow task to fail")
    await worker_b.shutdown()

    state = await handle.state()
    assert state["status"] == "running"
    failure = state["last_task_failure"]
    assert failure["type"] == "NonDeterminismError"
    assert "durable call #1" in failure["message"] and "condition" in failure["message"]
    assert failure["failures"] >= 1
    task = [p for p in state["pending"] if p["type"] == "workflow_task"]
    assert task and task[0]["workflow_name"] == "nd_flow"

    # History is not rewritten: the old events stay, only signal and failure events were appended.
    after = await handle.history()
    assert after[:len(before)] == before
    appended = [e["event_type"] for e in after[len(before):]]
    assert appended[0] == "signal_received"
    assert set(appended[1:]) == {"workflow_task_failed"}
    failed = await events(handle, "workflow_task_failed")
    assert failed[0]["details"]["type"] == "NonDeterminismError"
    assert failed[0]["details"]["retry_in_seconds"] >= 1

    # Skip the task's retry backoff (the engine clock is the database's), then deploy code A again.
    sql(dsn, "SELECT durable.advance_clock('61 seconds')")
    await Durable.Worker.create(connection=connection, task_queue="nd", workflow=nd_code_a)
    assert await handle.result(timeout=20) == "A got yes after 0.05"
    final = await handle.history()
    assert final[:len(after)] == after
    assert [e["event_type"] for e in final[len(after):]] == [
        "timer_started", "timer_fired", "workflow_completed"]
