"""A port brings modules whose functions share names: registering two different functions under
one activity or workflow name raises ``ValueError`` naming both (nothing is replaced), and a dict
``{"explicit_name": function}`` (``activities=`` or ``workflows=``) registers either under a name
of its own. The seed's plain-function form keeps working."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from pgdurable import Durable
from pgdurable import _registry as registry
from porting_names import billing, shipping
from support.history import new_client

QUEUE = "porting-names"


@pytest.fixture(autouse=True)
def _registry_restored() -> Iterator[None]:
    """Activities are registered per process: leave the registry as this test found it."""
    before = dict(registry._activities)
    yield
    registry._activities.clear()
    registry._activities.update(before)


@pytest.fixture
async def connection(dsn: str) -> AsyncIterator[Durable.Connection]:
    yield Durable.Connection(dsn)
    await Durable.shutdown()


async def porting_order_workflow(order_id: str) -> str:
    acts = Durable.workflow.proxy_activities(
        activities={"send_porting_receipt": billing.send_porting_receipt,
                    "send_shipping_receipt": shipping.send_porting_receipt})
    return " / ".join([await acts.send_porting_receipt(order_id), await acts.send_shipping_receipt(order_id)])


async def porting_conflicting_workflow(order_id: str) -> str:
    Durable.workflow.proxy_activities(activities=[billing.send_porting_receipt])
    acts = Durable.workflow.proxy_activities(activities=[shipping.send_porting_receipt])
    return await acts.send_porting_receipt(order_id)


def test_a_second_function_under_an_activity_name_raises_naming_both_and_replaces_nothing() -> None:
    registry.register_activities([billing.send_porting_receipt])
    with pytest.raises(ValueError) as caught:
        registry.register_activities([shipping.send_porting_receipt])
    message = str(caught.value)
    assert "porting_names.billing.send_porting_receipt" in message
    assert "porting_names.shipping.send_porting_receipt" in message
    assert "explicit name" in message
    assert registry.get("send_porting_receipt") is billing.send_porting_receipt
    with pytest.raises(ValueError, match="porting_names.shipping.send_porting_receipt"):
        registry.register_activities([billing.send_porting_receipt, shipping.send_porting_receipt])
    # The same function again (or a module that defines it, loaded again) is no conflict.
    assert list(registry.register_activities([billing.send_porting_receipt])) == ["send_porting_receipt"]
    assert list(registry.register_activities(billing)) == ["send_porting_receipt"]


async def test_two_workflows_under_one_name_raise_naming_both(connection: Durable.Connection) -> None:
    with pytest.raises(ValueError) as caught:
        await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                    workflows=[porting_order_workflow, shipping.porting_order_workflow])
    assert f"{__name__}.porting_order_workflow" in str(caught.value)
    assert "porting_names.shipping.porting_order_workflow" in str(caught.value)


async def test_explicit_names_register_same_named_functions_side_by_side(
        connection: Durable.Connection) -> None:
    await Durable.Worker.create(connection=connection, task_queue=QUEUE, workflows={
        "porting_order_workflow": porting_order_workflow,
        "shipping_order_workflow": shipping.porting_order_workflow})
    client = new_client(connection)
    ours = await client.workflow.start(args=["o-1"], task_queue=QUEUE, workflow_name="porting_order_workflow")
    theirs = await client.workflow.start(args=["o-2"], task_queue=QUEUE,
                                         workflow_name="shipping_order_workflow")
    assert await ours.result(timeout=20) == "billing notified of o-1 / shipping notified of o-1"
    assert await theirs.result(timeout=20) == "shipping workflow for o-2"


async def test_a_conflict_met_in_workflow_code_fails_that_workflow_naming_both(
        connection: Durable.Connection) -> None:
    from pgdurable import errors

    await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                workflow=porting_conflicting_workflow)
    client = new_client(connection)
    handle = await client.workflow.start(args=["o-3"], task_queue=QUEUE,
                                         workflow_name="porting_conflicting_workflow")
    with pytest.raises(errors.WorkflowFailedError) as caught:
        await handle.result(timeout=20)
    assert caught.value.error_type == "ValueError"
    assert "porting_names.billing.send_porting_receipt" in caught.value.message
    assert "porting_names.shipping.send_porting_receipt" in caught.value.message


async def test_durable_shutdown_ends_the_processs_activity_registrations() -> None:
    registry.register_activities([billing.send_porting_receipt])
    await Durable.shutdown()
    assert "send_porting_receipt" not in registry.names()
    registry.register_activities([shipping.send_porting_receipt])  # no conflict any more
    assert registry.get("send_porting_receipt") is shipping.send_porting_receipt


async def porting_add_one(n: int) -> int:
    return n + 1


IMPORT_TIME_ACTS = Durable.workflow.proxy_activities(activities=[porting_add_one])
"""A proxy made once, at import (as a module-level constant): it must outlive Durable.shutdown()."""


async def porting_counting_workflow(n: int) -> int:
    return await IMPORT_TIME_ACTS.porting_add_one(n)


async def test_a_proxy_made_at_import_still_serves_the_workers_created_after_a_shutdown(dsn: str) -> None:
    for n in (1, 2):  # a worker, Durable.shutdown() (which ends the registrations), a new worker
        connection = Durable.Connection(dsn)
        await Durable.Worker.create(connection=connection, task_queue=QUEUE,
                                    workflow=porting_counting_workflow)
        handle = await new_client(connection).workflow.start(args=[n], task_queue=QUEUE,
                                                             workflow_name="porting_counting_workflow")
        assert await handle.result(timeout=20) == n + 1
        await Durable.shutdown()
