"""handle.signal reaches only the handle's workflow (buffered for it while it does not wait yet);
client.workflow.signal stays the namespace-wide mailbox. get_handle(workflow_id) and the seed's
get_handle(task_queue, workflow_name, workflow_id), whose names are checked on first use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pgdurable import Durable, errors
from support.db import sql
from support.history import events, wait_pending

QUEUE = "targeted"


async def waits_for_approval(signal_id: str) -> Any:
    return await Durable.workflow.condition(signal_id)


async def waits_for_a_gate_then_approval(signal_id: str) -> Any:
    await Durable.workflow.condition(signal_id + "-gate")
    return await Durable.workflow.condition(signal_id)


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[Any]:
    connection = Durable.Connection(dsn)
    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflows=[waits_for_approval, waits_for_a_gate_then_approval])
    yield Durable.Client(connection=connection)
    await Durable.shutdown()


async def start(client: Any, workflow: Any, workflow_id: str, signal_id: str) -> Any:
    return await client.workflow.start(args=[signal_id], task_queue=QUEUE, workflow_name=workflow.__name__,
                                       workflow_id=workflow_id)


async def test_handle_signal_reaches_only_its_workflow_when_two_wait_on_the_same_id(client):
    a = await start(client, waits_for_approval, "WA", "approve-same")
    b = await start(client, waits_for_approval, "WB", "approve-same")
    await wait_pending(a, "condition", signal_id="approve-same")
    await wait_pending(b, "condition", signal_id="approve-same")

    await b.signal("approve-same", {"for": "WB"})
    assert await b.result(timeout=20) == {"for": "WB"}
    [received] = await events(b, "signal_received")
    assert received["details"]["delivery"] == "workflow"
    assert await a.status() == "running"
    assert await events(a, "signal_received") == []
    await wait_pending(a, "condition", signal_id="approve-same")

    # The namespace-wide mailbox still reaches whoever waits (WA, the only waiter left).
    await client.workflow.signal("approve-same", "anyone")
    assert await a.result(timeout=20) == "anyone"
    [received] = await events(a, "signal_received")
    assert received["details"]["delivery"] == "mailbox"


async def test_handle_signal_sent_before_its_workflow_waits_is_buffered_for_that_workflow_only(client, dsn):
    b = await start(client, waits_for_a_gate_then_approval, "WB-early", "approve-early")
    await wait_pending(b, "condition", signal_id="approve-early-gate")
    await b.signal("approve-early", "for WB")  # WB does not wait on it yet
    assert sql(dsn, "SELECT target_workflow_id FROM durable.signals WHERE signal_id = 'approve-early'") == [
        ("WB-early",)]

    a = await start(client, waits_for_approval, "WA-early", "approve-early")
    await wait_pending(a, "condition", signal_id="approve-early")
    assert await events(a, "signal_received") == []  # WA never takes WB's signal

    await b.signal("approve-early-gate", None)
    assert await b.result(timeout=20) == "for WB"
    assert await a.status() == "running"
    assert await events(a, "signal_received") == []


async def test_handle_signal_of_an_unknown_or_closed_workflow_raises_not_found_and_buffers_nothing(
        client, dsn):
    with pytest.raises(errors.WorkflowNotFoundError, match="'nobody'"):
        await client.workflow.get_handle("nobody").signal("approve-x", 1)

    done = await start(client, waits_for_approval, "closed-one", "approve-closed")
    await done.signal("approve-closed", "bye")
    assert await done.result(timeout=20) == "bye"
    with pytest.raises(errors.WorkflowNotFoundError, match="'closed-one'.*not running"):
        await done.signal("approve-closed", "too late")
    assert sql(dsn, "SELECT count(*) FROM durable.signals") == [(0,)]


def test_get_handle_by_id_alone_does_no_io():
    client = Durable.Client(connection=Durable.Connection("postgresql://nobody@127.0.0.1:1/nowhere"))
    handle = client.workflow.get_handle("some-id")
    assert (handle.workflow_id, handle.workflow_name, handle.task_queue) == ("some-id", None, None)
    seed = client.workflow.get_handle("q", "w", "some-id")
    assert (seed.workflow_id, seed.workflow_name, seed.task_queue) == ("some-id", "w", "q")
    with pytest.raises(TypeError, match="get_handle"):
        client.workflow.get_handle("q", "some-id")


async def test_get_handle_by_id_and_the_seed_form_with_the_right_names_reach_the_workflow(client):
    await start(client, waits_for_approval, "by-id", "approve-by-id")
    by_id = client.workflow.get_handle("by-id")
    await wait_pending(by_id, "condition", signal_id="approve-by-id")
    seed = client.workflow.get_handle(QUEUE, "waits_for_approval", "by-id")
    await seed.signal("approve-by-id", 7)
    assert await by_id.result(timeout=20) == 7
    assert await seed.result(timeout=20) == 7


@pytest.mark.parametrize(("task_queue", "workflow_name", "actual", "given"), [
    (QUEUE, "some_other_workflow", "'waits_for_approval'", "'some_other_workflow'"),
    ("another-queue", "waits_for_approval", f"'{QUEUE}'", "'another-queue'"),
])
async def test_get_handle_with_names_that_do_not_match_raises_invalid_argument_on_first_use(
        client, dsn, task_queue, workflow_name, actual, given):
    await start(client, waits_for_approval, "named", "approve-named")
    wrong = client.workflow.get_handle(task_queue, workflow_name, "named")
    for call in (wrong.status, wrong.state, wrong.history, lambda: wrong.signal("approve-named", 1),
                 wrong.cancel):
        with pytest.raises(errors.InvalidArgumentError) as caught:
            await call()
        assert actual in str(caught.value) and given in str(caught.value)
    assert await client.workflow.get_handle("named").status() == "running"
    assert sql(dsn, "SELECT count(*) FROM durable.signals") == [(0,)]
    assert await events(client.workflow.get_handle("named"), "signal_received") == []
