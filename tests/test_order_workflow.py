"""The seed's order workflow end to end: charge → sleep → notify → result, with a worker
created from the workflow alone (its activities come from ``proxy_activities``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pgdurable import Durable
from support.history import events, timestamp
from workers import order_activities
from workers.order_workflows import order_workflow


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def test_order_workflow_runs_end_to_end_with_a_worker_given_only_the_workflow(connection):
    order_activities.calls.clear()
    await Durable.Worker.create(connection=connection, task_queue="orders", workflow=order_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=["order-123"], task_queue="orders",
                                         workflow_name="order_workflow", workflow_id=Durable.guid())

    assert await handle.result(timeout=20) == "receipt-order-123"
    assert await handle.status() == "completed"
    assert order_activities.calls == [("charge", ("order-123",)),
                                      ("notify", ("order-123", "receipt-order-123"))]
    history = await handle.history()
    assert [(e["event_type"], e["seq"]) for e in history] == [
        ("workflow_started", None),
        ("activity_scheduled", 1), ("activity_completed", 1),
        ("timer_started", 2), ("timer_fired", 2),
        ("activity_scheduled", 3), ("activity_completed", 3),
        ("workflow_completed", None),
    ]
    started = (await events(handle, "timer_started"))[0]
    fired = (await events(handle, "timer_fired"))[0]
    assert started["details"]["seconds"] == 0.2
    assert (timestamp(fired) - timestamp(started)).total_seconds() >= 0.2


async def test_order_workflow_activities_run_on_the_task_queues_activity_stream(connection):
    await Durable.Worker.create(connection=connection, task_queue="orders-2", workflow=order_workflow)
    client = Durable.Client(connection=connection)
    handle = await client.workflow.start(args=["o-2"], task_queue="orders-2", workflow_name="order_workflow")
    assert await handle.result(timeout=20) == "receipt-o-2"
    scheduled = await events(handle, "activity_scheduled")
    assert [e["details"]["activity_name"] for e in scheduled] == ["charge", "notify"]
    assert {e["details"]["task_queue"] for e in scheduled} == {"orders-2"}
    assert scheduled[0]["details"]["retry"]["maximum_attempts"] == 3
