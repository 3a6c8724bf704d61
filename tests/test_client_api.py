"""The client: workflow ids (duplicates, id_reuse), list, status, state and history."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from pgdurable import Durable, errors
from support.history import EVENT_TYPES, wait_pending


async def api_step(x: int) -> int:
    return x * 10


async def api_waiting_workflow(signal_id: str) -> Any:
    acts = Durable.workflow.proxy_activities(activities=[api_step])
    got = await Durable.workflow.condition(signal_id)
    return {"got": got, "step": await acts.api_step(got["n"])}


async def api_failing_workflow() -> None:
    await Durable.workflow.sleep(0.01)
    raise LookupError("no such order")


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[Durable.Client]:
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue="api",
                                workflows=[api_waiting_workflow, api_failing_workflow])
    yield Durable.Client(connection=connection)
    await Durable.shutdown()


async def start_waiting(client: Durable.Client, workflow_id: str, signal_id: str, **kw: Any) -> Any:
    return await client.workflow.start(args=[signal_id], task_queue="api",
                                       workflow_name="api_waiting_workflow", workflow_id=workflow_id, **kw)


async def test_starting_a_running_workflow_id_again_raises_duplicate_workflow_error(client):
    await start_waiting(client, "dup-1", "dup-sig")
    with pytest.raises(errors.DuplicateWorkflowError, match="dup-1"):
        await start_waiting(client, "dup-1", "dup-sig")
    assert len(await client.workflow.list()) == 1


async def test_id_reuse_return_existing_returns_the_running_or_finished_workflow(client):
    first = await start_waiting(client, "idem-1", "idem-sig")
    again = await start_waiting(client, "idem-1", "other-sig", id_reuse="return_existing")
    assert again.workflow_id == "idem-1"
    await client.workflow.signal("idem-sig", {"n": 4})
    assert await first.result(timeout=20) == {"got": {"n": 4}, "step": 40}
    assert await again.result(timeout=20) == {"got": {"n": 4}, "step": 40}
    finished = await start_waiting(client, "idem-1", "other-sig", id_reuse="return_existing")
    assert await finished.result(timeout=20) == {"got": {"n": 4}, "step": 40}
    assert len(await client.workflow.list()) == 1


async def test_a_finished_workflow_id_is_started_again_as_a_new_run_keeping_its_history(client):
    first = await start_waiting(client, "rerun-1", "rerun-a")
    await client.workflow.signal("rerun-a", {"n": 1})
    await first.result(timeout=20)
    second = await start_waiting(client, "rerun-1", "rerun-b")
    await wait_pending(second, "condition", signal_id="rerun-b")
    assert await second.status() == "running"
    await client.workflow.signal("rerun-b", {"n": 2})
    assert await second.result(timeout=20) == {"got": {"n": 2}, "step": 20}
    all_runs = await second.history(all_runs=True)
    assert [e["event_type"] for e in all_runs].count("workflow_started") == 2
    assert {e["run_id"] for e in all_runs} == {1, 2}
    assert [e["event_type"] for e in await second.history()].count("workflow_started") == 1


async def test_list_status_and_state_describe_workflows(client):
    waiting = await start_waiting(client, "list-wait", "list-sig")
    failing = await client.workflow.start(task_queue="api", workflow_name="api_failing_workflow",
                                          workflow_id="list-fail")
    with pytest.raises(errors.WorkflowFailedError) as info:
        await failing.result(timeout=20)
    assert info.value.error_type == "LookupError" and info.value.message == "no such order"
    assert "api_failing_workflow" in info.value.traceback
    await wait_pending(waiting, "condition", signal_id="list-sig")

    assert await waiting.status() == "running"
    assert await failing.status() == "failed"
    listed = await client.workflow.list()
    assert {(w["workflow_id"], w["workflow_name"], w["task_queue"], w["status"]) for w in listed} == {
        ("list-wait", "api_waiting_workflow", "api", "running"),
        ("list-fail", "api_failing_workflow", "api", "failed")}
    for row in listed:
        assert {"workflow_id", "workflow_name", "task_queue", "status", "created_at",
                "updated_at"} <= row.keys()
        assert isinstance(row["created_at"], datetime) and row["updated_at"] >= row["created_at"]
    assert [w["workflow_id"] for w in await client.workflow.list(status="failed")] == ["list-fail"]
    assert [w["workflow_id"] for w in await client.workflow.list(workflow_name="api_waiting_workflow")] == [
        "list-wait"]
    assert len(await client.workflow.list(limit=1)) == 1

    state = await waiting.state()
    assert state["status"] == "running" and state["workflow_name"] == "api_waiting_workflow"
    assert state["task_queue"] == "api" and state["run_id"] == 1 and state["attempt"] == 1
    assert state["parent_workflow_id"] is None and state["last_task_failure"] is None
    assert [p["type"] for p in state["pending"]] == ["condition"]
    failed_state = await failing.state()
    assert failed_state["error"]["type"] == "LookupError"
    assert failed_state["error"]["message"] == "no such order"


async def test_history_events_are_json_serialisable_and_from_the_closed_set(client):
    handle = await start_waiting(client, "hist-1", "hist-sig")
    await client.workflow.signal("hist-sig", {"n": 3, "when": datetime(2024, 1, 1)})
    await handle.result(timeout=20)
    failing = await client.workflow.start(task_queue="api", workflow_name="api_failing_workflow")
    with pytest.raises(errors.WorkflowFailedError):
        await failing.result(timeout=20)
    for h in (handle, failing):
        history = await h.history(all_runs=True)
        json.dumps(history)
        assert {e["event_type"] for e in history} <= EVENT_TYPES
        ids = [e["event_id"] for e in history]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        for event in history:
            assert {"event_id", "event_type", "timestamp"} <= event.keys()
            datetime.fromisoformat(event["timestamp"])
    kinds = [e["event_type"] for e in await handle.history()]
    assert kinds == ["workflow_started", "signal_wait_started", "signal_received", "activity_scheduled",
                     "activity_completed", "workflow_completed"]


async def test_unknown_workflow_id_raises_workflow_not_found_error(client):
    handle = client.workflow.get_handle("api", "api_waiting_workflow", "nobody")
    for call in (handle.status, handle.state, handle.history, handle.result):
        with pytest.raises(errors.WorkflowNotFoundError):
            await call()


async def test_result_with_a_timeout_raises_timeout_error_while_the_workflow_runs(client):
    handle = await start_waiting(client, "slow-1", "slow-sig")
    with pytest.raises(TimeoutError):
        await handle.result(timeout=0.3)
    assert await handle.status() == "running"
