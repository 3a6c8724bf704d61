"""Child workflows end to end: execute_child, start_child, failures, lineage, task queues."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pgdurable import Durable, errors
from support.history import event_types, new_client, wait_pending, wait_status
from support.polling import wait_for

QUEUE = "children"


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    connection = Durable.Connection(dsn)
    yield connection
    await Durable.shutdown(grace=5)


async def child_double(n: int) -> int:
    return n * 2


async def child_fails(reason: str) -> None:
    raise ValueError(f"child refused: {reason}")


async def child_waits(signal_id: str) -> str:
    data = await Durable.workflow.condition(signal_id)
    return f"child got {data}"


async def parent_executes(n: int) -> dict:
    result = await Durable.workflow.execute_child(workflow_name="child_double", args=[n])
    return {"child_result": result, "parent": Durable.workflow.info().workflow_id}


async def parent_catches_child_failure() -> dict:
    try:
        await Durable.workflow.execute_child(workflow_name="child_fails", args=["no stock"])
    except errors.DurableChildError as exc:
        return {"caught": type(exc).__name__, "error_type": exc.error_type, "message": exc.message,
                "child": exc.child_workflow_id}
    return {"caught": None}


async def parent_lets_child_failure_escape() -> None:
    await Durable.workflow.execute_child(workflow_name="child_fails", args=["escaped"])


async def parent_starts_child(signal_id: str) -> str:
    return await Durable.workflow.start_child(workflow_name="child_waits", args=[signal_id],
                                              workflow_id=f"started-{signal_id}")


async def parent_names_child(child_id: str) -> int:
    return await Durable.workflow.execute_child(workflow_name=child_double, args=[21], workflow_id=child_id)


async def parent_on_other_queue(n: int, queue: str) -> int:
    return await Durable.workflow.execute_child(workflow_name="child_double", args=[n], task_queue=queue)


async def test_execute_child_returns_the_childs_result(connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[parent_executes, child_double])
    client = new_client(connection)
    handle = await client.workflow.start(args=[7], task_queue=QUEUE, workflow_name="parent_executes",
                                         workflow_id="parent-1")
    assert await handle.result(timeout=20) == {"child_result": 14, "parent": "parent-1"}
    types = await event_types(handle)
    assert "child_started" in types and "child_completed" in types


async def test_a_failing_child_raises_durable_child_error_with_the_childs_error(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[parent_catches_child_failure, child_fails])
    client = new_client(connection)
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="parent_catches_child_failure")
    outcome = await handle.result(timeout=20)
    assert outcome["caught"] == "DurableChildError"
    assert outcome["error_type"] == "ValueError"
    assert "child refused: no stock" in outcome["message"]
    assert outcome["child"]
    child = client.workflow.get_handle(QUEUE, "child_fails", outcome["child"])
    assert await child.status() == "failed"


async def test_an_uncaught_child_failure_fails_the_parent_naming_the_childs_error(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[parent_lets_child_failure_escape, child_fails])
    client = new_client(connection)
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="parent_lets_child_failure_escape")
    with pytest.raises(errors.WorkflowFailedError) as failed:
        await handle.result(timeout=20)
    assert "child refused: escaped" in str(failed.value)


async def test_start_child_returns_the_child_id_at_once_and_the_child_outlives_its_parent(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[parent_starts_child, child_waits])
    client = new_client(connection)
    parent = await client.workflow.start(args=["go-child"], task_queue=QUEUE,
                                         workflow_name="parent_starts_child")
    # The parent finishes while its child still waits for a signal.
    assert await parent.result(timeout=20) == "started-go-child"
    child = client.workflow.get_handle(QUEUE, "child_waits", "started-go-child")
    await wait_pending(child, "condition", signal_id="go-child")
    assert await child.status() == "running"
    await client.workflow.signal("go-child", "the signal")
    assert await child.result(timeout=20) == "child got the signal"
    assert await parent.status() == "completed"


async def test_an_explicit_child_workflow_id_is_honoured_and_lineage_is_visible(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[parent_names_child, child_double])
    client = new_client(connection)
    parent = await client.workflow.start(args=["my-child-id"], task_queue=QUEUE,
                                         workflow_name="parent_names_child", workflow_id="the-parent")
    assert await parent.result(timeout=20) == 42
    child = client.workflow.get_handle(QUEUE, "child_double", "my-child-id")
    assert await child.result(timeout=5) == 42
    child_state = await child.state()
    assert child_state["parent_workflow_id"] == "the-parent"
    assert child_state["workflow_name"] == "child_double"
    parent_state = await parent.state()
    assert [c["workflow_id"] for c in parent_state["children"]] == ["my-child-id"]
    assert parent_state["children"][0]["status"] == "completed"
    assert parent_state["parent_workflow_id"] is None
    listed = {row["workflow_id"] for row in await client.workflow.list()}
    assert {"the-parent", "my-child-id"} <= listed


async def test_a_child_on_another_task_queue_runs_on_that_queues_worker(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=parent_on_other_queue)
    await Durable.Worker.create(connection=connection, task_queue="children-elsewhere", workflow=child_double)
    client = new_client(connection)
    parent = await client.workflow.start(args=[5, "children-elsewhere"], task_queue=QUEUE,
                                         workflow_name="parent_on_other_queue")
    assert await parent.result(timeout=20) == 10
    [child] = (await parent.state())["children"]
    child_state = await client.workflow.get_handle("children-elsewhere", "child_double",
                                                   child["workflow_id"]).state()
    assert child_state["task_queue"] == "children-elsewhere"
    assert child_state["status"] == "completed"


async def test_a_child_started_before_its_worker_exists_completes_once_the_worker_starts(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflow=parent_on_other_queue)
    client = new_client(connection)
    parent = await client.workflow.start(args=[8, "children-late"], task_queue=QUEUE,
                                         workflow_name="parent_on_other_queue")
    await wait_pending(parent, "child")

    async def child_waits_for_its_worker() -> dict | None:
        state = await parent.state()
        if not state["children"]:
            return None
        child_id = state["children"][0]["workflow_id"]
        child = client.workflow.get_handle("children-late", "child_double", child_id)
        child_state = await child.state()
        waiting = [p for p in child_state["pending"] if p.get("type") == "workflow_task"]
        return waiting[0] if waiting and waiting[0].get("waiting_for") else None

    waiting = await wait_for(child_waits_for_its_worker, "the child to wait for a worker")
    assert "child_double" in waiting["waiting_for"] and "children-late" in waiting["waiting_for"]
    assert await parent.status() == "running"
    await Durable.Worker.create(connection=connection, task_queue="children-late", workflow=child_double)
    assert await parent.result(timeout=20) == 16
    await wait_status(parent, "completed")
