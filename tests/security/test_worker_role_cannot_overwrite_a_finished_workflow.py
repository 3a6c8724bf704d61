"""Issue 11, finding 2: a child command whose workflow id is an existing workflow of another
workflow name or task queue, running or closed, must not start a run of it. Before, a closed
workflow of another team got a new run on the attacker's queue, and ``handle.result()`` of the
original then returned whatever the attacker's run returned."""

from __future__ import annotations

import pytest

from pgdurable import Durable
from support.attack import Owner, child, claim_workflow_task, complete_workflow_task

pytestmark = pytest.mark.sql


@pytest.fixture
def attacker(owner: Owner):
    """A worker role of ``orders`` holding the workflow task of order ``o-1``."""
    role = owner.provision(["orders", "orders-activity"])
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with role.login() as session:
        yield session, claim_workflow_task(session, "orders", "order_workflow")


def _child_failed_as_duplicate(owner: Owner, seq: int) -> None:
    [failed] = [e for e in owner.events("o-1") if e["event_type"] == "child_failed"]
    assert failed["seq"] == seq and failed["inbound"]
    assert failed["data"]["error"]["type"] == "DuplicateWorkflowError", failed


async def _sdk_result(dsn: str, workflow_id: str, task_queue: str, workflow_name: str) -> object:
    connection = Durable.Connection(dsn)
    try:
        client = Durable.Client(connection=connection)
        return await client.workflow.get_handle(task_queue, workflow_name, workflow_id).result(timeout=5)
    finally:
        await connection.close()


async def test_a_child_with_the_id_of_another_teams_closed_workflow_does_not_rerun_it(attacker, owner, dsn):
    session, task = attacker
    owner.run_to_completion("pay-1", task_queue="payments", workflow_name="payment_workflow",
                            result='"paid 100 EUR"')

    # The child's task queue defaults to the attacker's own (in its produce list): only the
    # existing workflow's other task queue stands in the way.
    status = complete_workflow_task(session, task, [child(1, "pay-1", "payment_workflow")])

    assert status in ("ok", "requeued")
    assert owner.runs("pay-1") == [(1, "payment_workflow", "payments", "completed", '"paid 100 EUR"')]
    _child_failed_as_duplicate(owner, 1)
    assert await _sdk_result(dsn, "pay-1", "payments", "payment_workflow") == "paid 100 EUR"


async def test_a_child_with_the_id_of_a_closed_workflow_of_another_name_does_not_rerun_it(
        attacker, owner, dsn):
    session, task = attacker
    owner.run_to_completion("inv-7", task_queue="orders", workflow_name="invoice_workflow",
                            result='"invoice sent"')

    complete_workflow_task(session, task, [child(1, "inv-7", "order_workflow")])

    assert owner.runs("inv-7") == [(1, "invoice_workflow", "orders", "completed", '"invoice sent"')]
    _child_failed_as_duplicate(owner, 1)
    assert await _sdk_result(dsn, "inv-7", "orders", "invoice_workflow") == "invoice sent"


def test_an_unawaited_child_with_the_id_of_a_closed_workflow_starts_no_run(attacker, owner):
    session, task = attacker
    owner.run_to_completion("pay-2", task_queue="payments", workflow_name="payment_workflow",
                            result='"paid"')

    complete_workflow_task(session, task, [child(1, "pay-2", "payment_workflow", awaited=False)])

    assert owner.runs("pay-2") == [(1, "payment_workflow", "payments", "completed", '"paid"')]


def test_a_child_with_the_id_of_another_teams_running_workflow_is_refused_as_before(attacker, owner):
    session, task = attacker
    owner.start("pay-3", task_queue="payments", workflow_name="payment_workflow")

    complete_workflow_task(session, task, [child(1, "pay-3", "payment_workflow")])

    assert owner.runs("pay-3") == [(1, "payment_workflow", "payments", "running", None)]
    _child_failed_as_duplicate(owner, 1)
