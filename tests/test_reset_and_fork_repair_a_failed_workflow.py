"""Reset and fork: a workflow that failed on a bug in step 3 of 5 is repaired, once the fix is
deployed, by restarting it from step 3; steps 1 and 2 are not executed again."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from pgdurable import Durable, errors
from pgdurable import sync as durable_sync
from support.cli import assert_one_line_error, invoke, ok_json, restore_logging  # noqa: F401
from support.history import events, new_client, wait_event

QUEUE = "repairing"
executions: Counter[str] = Counter()
bug = {"deployed": True}


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    executions.clear()
    bug["deployed"] = True
    connection = Durable.Connection(dsn)
    yield connection
    await Durable.shutdown(grace=5)


async def repair_step(step: int) -> int:
    executions[f"step {step}"] += 1
    if step == 3 and bug["deployed"]:
        raise errors.DurableFatalError("step 3 divides by the wrong total")
    return step * 10


async def five_steps() -> list[int]:
    acts = Durable.workflow.proxy_activities(activities=[repair_step])
    return [await acts.repair_step(step) for step in range(1, 6)]


async def failed_on_step_3(connection: Durable.Connection) -> tuple[Any, Any, int]:
    """Runs five_steps until it fails; returns the client, the handle and step 3's scheduled event id."""
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=five_steps)
    client = new_client(connection)
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="five_steps")
    with pytest.raises(errors.WorkflowFailedError, match="wrong total"):
        await handle.result(timeout=20)
    scheduled = await events(handle, "activity_scheduled")
    assert [e["details"]["args"] for e in scheduled] == [[1], [2], [3]]
    assert executions == Counter({"step 1": 1, "step 2": 1, "step 3": 1})
    bug["deployed"] = False  # the fix is deployed
    return client, handle, scheduled[2]["event_id"]


async def test_a_reset_to_before_the_failed_step_completes_it_without_running_earlier_steps_again(
        connection: Durable.Connection) -> None:
    _, handle, step_3 = await failed_on_step_3(connection)
    new_run = await handle.reset(step_3, reason="fixed step 3")
    assert new_run == 2
    assert await handle.result(timeout=20) == [10, 20, 30, 40, 50]
    assert executions == Counter({"step 1": 1, "step 2": 1, "step 3": 2, "step 4": 1, "step 5": 1})
    history = await handle.history(all_runs=True)
    runs = {e["run_id"]: e for e in history if e["event_type"] == "workflow_reset"}
    assert runs[1]["details"] == runs[2]["details"] == {
        "reason": "fixed step 3", "event_id": step_3, "from_workflow_id": handle.workflow_id,
        "from_run_id": 1, "new_run_id": 2}
    old_run = [e["event_type"] for e in history if e["run_id"] == 1]
    assert old_run[-2:] == ["workflow_failed", "workflow_reset"]


async def test_a_fork_completes_a_copy_and_leaves_the_original_failed(connection: Durable.Connection) -> None:
    client, handle, step_3 = await failed_on_step_3(connection)
    copy = await client.workflow.fork(handle.workflow_id, from_event_id=step_3,
                                      new_workflow_id="five-steps-fixed")
    assert copy.workflow_id == "five-steps-fixed"
    assert await copy.result(timeout=20) == [10, 20, 30, 40, 50]
    assert executions == Counter({"step 1": 1, "step 2": 1, "step 3": 2, "step 4": 1, "step 5": 1})
    assert await handle.status() == "failed"
    assert {e["run_id"] for e in await handle.history(all_runs=True)} == {1}
    forked = await events(copy, "workflow_reset")
    assert forked[0]["details"] == {"event_id": step_3, "from_workflow_id": handle.workflow_id,
                                    "from_run_id": 1, "fork": True}


async def waits_after_a_step() -> str:
    acts = Durable.workflow.proxy_activities(activities=[repair_step])
    await acts.repair_step(1)
    return await Durable.workflow.condition("go")


async def test_a_running_workflow_reset_ends_its_run_as_continued_and_runs_again_from_the_point(
        connection: Durable.Connection, conn: psycopg.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=waits_after_a_step)
    handle = await new_client(connection).workflow.start(task_queue=QUEUE, workflow_name="waits_after_a_step")
    await wait_event(handle, "signal_wait_started")
    wait = (await events(handle, "signal_wait_started"))[0]["event_id"]
    assert await handle.reset(wait, reason="wait again") == 2
    row = conn.execute("SELECT status FROM durable.workflows WHERE workflow_id = %s AND run_id = 1",
                       [handle.workflow_id]).fetchone()
    assert row == ("continued",)
    assert await handle.status() == "running"
    await wait_event(handle, "signal_wait_started")
    waits = conn.execute("SELECT run_id FROM durable.signal_waits WHERE workflow_id = %s",
                         [handle.workflow_id]).fetchall()
    assert waits == [(2,)]  # the old run's wait is gone, the new run waits
    await handle.signal("go", "on")
    assert await handle.result(timeout=20) == "on"
    assert executions == Counter({"step 1": 1})


@pytest.mark.parametrize("event_type", ["workflow_started", "activity_completed", "workflow_failed"])
async def test_a_reset_or_fork_to_an_event_that_is_not_a_durable_call_is_refused_with_the_valid_types(
        connection: Durable.Connection, event_type: str) -> None:
    client, handle, _ = await failed_on_step_3(connection)
    event_id = (await events(handle, event_type))[0]["event_id"]
    valid = "activity_scheduled, timer_started, child_started or signal_wait_started"
    refusal = f"is a {event_type} event: reset or fork from an {valid}"
    with pytest.raises(errors.InvalidArgumentError, match=refusal):
        await handle.reset(event_id)
    with pytest.raises(errors.InvalidArgumentError, match=valid):
        await client.workflow.fork(handle.workflow_id, from_event_id=event_id)
    with pytest.raises(errors.InvalidArgumentError, match="is not in its history"):
        await handle.reset(999)
    assert await handle.status() == "failed"
    assert {e["run_id"] for e in await handle.history(all_runs=True)} == {1}


async def test_the_sync_client_resets_and_forks(connection: Durable.Connection, dsn: str) -> None:
    _, handle, step_3 = await failed_on_step_3(connection)
    with durable_sync.Client(dsn) as client:
        copy = client.fork(handle.workflow_id, from_event_id=step_3)
        assert client.get_handle(handle.workflow_id).reset(step_3) == 2
    assert await handle.result(timeout=20) == [10, 20, 30, 40, 50]
    assert await new_client(connection).workflow.get_handle(copy.workflow_id).result(timeout=20) == [
        10, 20, 30, 40, 50]


@pytest.mark.usefixtures("restore_logging")  # the CLI configures logging per run
def test_the_cli_resets_and_forks_a_failed_workflow(dsn: str) -> None:
    async def failed() -> tuple[str, int]:
        connection = Durable.Connection(dsn)
        try:
            _, handle, step_3 = await failed_on_step_3(connection)
            return handle.workflow_id, step_3
        finally:
            await Durable.shutdown(grace=5)

    executions.clear()
    bug["deployed"] = True
    workflow_id, step_3 = asyncio.run(failed())
    forked = ok_json("workflow", "fork", workflow_id, "--from-event", str(step_3), "--new-id", "cli-copy",
                     "--dsn", dsn)
    assert forked == {"workflow_id": "cli-copy", "forked_from": workflow_id, "from_event_id": step_3}
    reset = ok_json("workflow", "reset", workflow_id, "--event", str(step_3), "--reason", "fixed",
                    "--dsn", dsn)
    assert reset == {"workflow_id": workflow_id, "run_id": 2, "from_event_id": step_3}
    assert_one_line_error(invoke("workflow", "reset", workflow_id, "--event", "1", "--dsn", dsn),
                          "is a workflow_started event: reset or fork from an activity_scheduled")
