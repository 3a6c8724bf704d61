"""Workflow code steers other workflows (Temporal's external workflow handle; HotMesh workflows
interrupt others) with ``Durable.workflow.get_external_handle(workflow_id)``: ``signal``,
``cancel`` and ``interrupt`` are durable calls, recorded once in the history with their outcome
and replayed from it (also by a new worker after a restart), never sent twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pgdurable import Durable, errors
from support.history import events, new_client, wait_event, wait_status

QUEUE = "porting-external"


async def porting_approval(order_id: str) -> Any:
    return await Durable.workflow.condition("approve")


async def porting_sleeper(order_id: str) -> str:
    try:
        await Durable.workflow.sleep("1 hour")
    except errors.CancelledFailure:
        return f"{order_id} cancelled cleanly"
    return f"{order_id} slept"


async def porting_steerer(approval_id: str, sleeper_id: str, victim_id: str) -> dict[str, Any]:
    outcomes: dict[str, Any] = {}
    await Durable.workflow.get_external_handle(approval_id).signal("approve", {"by": "steerer"})
    outcomes["go"] = await Durable.workflow.condition("porting-go")  # the test restarts the worker here
    outcomes["cancelled"] = await Durable.workflow.get_external_handle(sleeper_id).cancel()
    outcomes["cancelled_again"] = await Durable.workflow.get_external_handle(sleeper_id).cancel()
    outcomes["interrupted"] = await Durable.workflow.get_external_handle(victim_id).interrupt("superseded")
    try:
        await Durable.workflow.get_external_handle("porting-nobody").signal("approve", 1)
    except errors.WorkflowNotFoundError as exc:
        outcomes["unknown"] = type(exc).__name__
    try:
        await Durable.workflow.get_external_handle(Durable.workflow.info().workflow_id).cancel()
    except ValueError as exc:
        outcomes["self"] = str(exc)
    return outcomes


async def porting_scoped_steerer(target_id: str) -> dict[str, str]:
    refusals: dict[str, str] = {}
    for verb in ("signal", "cancel"):
        try:
            handle = Durable.workflow.get_external_handle(target_id)
            await (handle.signal("approve", "forged") if verb == "signal" else handle.cancel())
        except errors.WorkerRoleError as exc:
            refusals[verb] = str(exc)
    try:
        await Durable.workflow.get_external_handle("porting-nobody").cancel()
    except (errors.WorkflowNotFoundError, errors.WorkerRoleError) as exc:
        refusals["unknown"] = type(exc).__name__
    return refusals


async def porting_unknown_cancel() -> str:
    try:
        await Durable.workflow.get_external_handle("porting-nobody").cancel()
    except errors.WorkflowNotFoundError as exc:
        return type(exc).__name__
    return "no error"


WORKFLOWS = [porting_approval, porting_sleeper, porting_steerer, porting_unknown_cancel]


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def test_signal_cancel_and_interrupt_from_workflow_code_are_recorded_and_replayed_after_a_restart(
        connection: Durable.Connection) -> None:
    worker = await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflows=WORKFLOWS)
    client = new_client(connection)
    approval = await client.workflow.start(args=["o-1"], task_queue=QUEUE, workflow_name="porting_approval")
    sleeper = await client.workflow.start(args=["o-2"], task_queue=QUEUE, workflow_name="porting_sleeper")
    victim = await client.workflow.start(args=["o-3"], task_queue=QUEUE, workflow_name="porting_sleeper")
    steerer = await client.workflow.start(
        args=[approval.workflow_id, sleeper.workflow_id, victim.workflow_id], task_queue=QUEUE,
        workflow_name="porting_steerer")
    assert await approval.result(timeout=20) == {"by": "steerer"}
    sent = (await wait_event(steerer, "external_signal_sent"))[0]
    assert sent["details"]["workflow_id"] == approval.workflow_id
    assert sent["details"]["outcome"] in ("delivered", "buffered")
    await wait_event(steerer, "signal_wait_started")

    # A restart: the new worker has no cache and replays the steerer's history from the start.
    await worker.shutdown()
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflows=WORKFLOWS,
                                max_cached_workflows=0)
    await steerer.signal("porting-go", "now")
    outcomes = await steerer.result(timeout=20)
    assert outcomes["go"] == "now"
    assert outcomes["cancelled"] is True and outcomes["cancelled_again"] is False
    assert outcomes["interrupted"] is True
    assert outcomes["unknown"] == "WorkflowNotFoundError"
    assert "cannot cancel itself" in outcomes["self"]
    assert await sleeper.result(timeout=20) == "o-2 cancelled cleanly"
    await wait_status(victim, "interrupted")
    with pytest.raises(errors.WorkflowInterruptedError, match="superseded"):
        await victim.result(timeout=5)

    # Each command recorded once (the replay did not send the signal again), with its outcome.
    history = await events(steerer)
    external = [(e["event_type"], e["details"]["outcome"]) for e in history
                if e["event_type"].startswith("external_")]
    assert external == [("external_signal_sent", sent["details"]["outcome"]),
                        ("external_cancel_sent", "requested"), ("external_cancel_sent", "not_running"),
                        ("external_interrupt_sent", "interrupted"), ("external_signal_sent", "not_found")]
    assert [e["event_type"] for e in await events(approval)].count("signal_received") == 1
    assert [e["details"].get("delivery") for e in await events(approval, "signal_received")] == ["workflow"]


async def test_cancelling_an_unknown_workflow_raises_workflow_not_found(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflows=WORKFLOWS)
    client = new_client(connection)
    handle = await client.workflow.start(task_queue=QUEUE, workflow_name="porting_unknown_cancel")
    assert await handle.result(timeout=20) == "WorkflowNotFoundError"


@pytest.mark.sql
async def test_a_worker_roles_workflow_cannot_steer_a_workflow_outside_its_produce_scope(
        connection: Durable.Connection) -> None:
    cred = await Durable.provision_worker_role(connection=connection, stream_names=["porting-scoped"])
    await Durable.Worker.create(connection=connection, task_queue="porting-scoped",
                                workflow=porting_scoped_steerer, worker_credentials=cred)
    client = new_client(connection)
    other = await client.workflow.start(args=["o-9"], task_queue="porting-other",
                                        workflow_name="porting_sleeper")
    handle = await client.workflow.start(args=[other.workflow_id], task_queue="porting-scoped",
                                         workflow_name="porting_scoped_steerer")
    refusals = await handle.result(timeout=30)
    for verb in ("signal", "cancel"):
        assert f"worker role {cred.role_name} may not steer workflow '{other.workflow_id}'" in refusals[verb]
        assert "task queue the role may produce to (porting-scoped)" in refusals[verb]
    # An unknown id is refused alike (a worker role cannot probe for other teams' workflows).
    assert refusals["unknown"] == "WorkerRoleError"
    state = await other.state()
    assert state["status"] == "running" and state["cancel_requested"] is False
