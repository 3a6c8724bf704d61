"""Issue 11, finding 1: a worker role holding one legitimately claimed workflow task of ``orders``
must not reach another team's task queue through the commands of its completion. An activity or
a child workflow on a task queue outside the role's produce list is refused with PD005 naming
the target, and nothing of that completion is applied (the task stays held, so the same lease
can still complete it legitimately)."""

from __future__ import annotations

import json

import psycopg
import pytest

from pgdurable import Durable
from support.attack import Owner, activity, child, claim_workflow_task, complete_workflow_task, refused
from support.polling import wait_for

pytestmark = pytest.mark.sql


@pytest.fixture
def held(owner: Owner):
    """A worker role of ``orders`` (and its activities), logged in, holding the workflow task of
    order ``o-1``; payments work exists next to it."""
    role = owner.provision(["orders", "orders-activity"])
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    owner.start("p-1", task_queue="payments", workflow_name="payment_workflow")
    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        yield role, session, task


def _nothing_reached_payments(owner: Owner) -> None:
    assert owner.messages("payments-activity") == []
    assert [m[1] for m in owner.messages("payments")] == ["workflow"]  # only p-1's own task
    workflow_ids = [r[0] for r in owner.rows("SELECT workflow_id FROM durable.workflows ORDER BY 1")]
    assert workflow_ids == ["o-1", "p-1"]


def test_an_activity_on_another_teams_task_queue_is_refused_naming_the_activity_and_the_queue(held, owner):
    role, session, task = held
    before = owner.event_types("o-1")

    with refused("PD005") as refusal:
        complete_workflow_task(session, task, [activity(1, "refund", "payments", '["o-1", 100]')])

    assert f"worker role {role.name} may not schedule activity 'refund' on task queue 'payments'" \
        in refusal.message
    _nothing_reached_payments(owner)
    assert owner.event_types("o-1") == before
    # The refusal applied nothing and left the task held: the same lease completes it legitimately.
    assert complete_workflow_task(session, task, [activity(1, "charge")]) == "ok"
    assert [m[2] for m in owner.messages("orders-activity")] == ["charge"]


def test_a_child_workflow_on_another_teams_task_queue_is_refused_naming_the_workflow_and_the_queue(
        held, owner):
    role, session, task = held

    with refused("PD005") as refusal:
        complete_workflow_task(session, task, [child(1, "pay-o-1", "payment_workflow", "payments")])

    assert f"worker role {role.name} may not start workflow 'payment_workflow' on task queue 'payments'" \
        in refusal.message
    assert owner.runs("pay-o-1") == []
    _nothing_reached_payments(owner)


def test_a_refused_command_rolls_back_the_legitimate_commands_before_it(held, owner):
    role, session, task = held

    with refused("PD005"):
        complete_workflow_task(session, task, [activity(1, "charge"),
                                               child(2, "o-1-kid", "order_workflow"),
                                               activity(3, "refund", "payments")])

    assert owner.messages("orders-activity") == []
    assert owner.runs("o-1-kid") == []
    assert [e for e in owner.event_types("o-1") if e != "workflow_started"] == []
    _nothing_reached_payments(owner)


def test_eager_dispatch_does_not_bypass_the_produce_scope(held, owner):
    """complete_workflow_task_v1 schedules activities itself on its eager path (not through
    _apply_command): the scope check must hold there too."""
    role, session, task = held
    eager = {"owner": "attacker", "lease_seconds": 30, "activity_stream": "payments-activity",
             "activity_names": ["refund"]}

    with refused("PD005") as refusal:
        complete_workflow_task(session, task, [activity(1, "refund", "payments")], eager=eager)

    assert "'refund'" in refusal.message and "'payments'" in refusal.message
    _nothing_reached_payments(owner)


def test_the_task_queue_of_an_activity_cannot_smuggle_another_stream(held, owner):
    """The activity stream is <task_queue>-activity: a queue named like another team's activity
    stream lands on a stream nobody serves, and is still outside the produce list."""
    role, session, task = held

    with refused("PD005"):
        complete_workflow_task(session, task, [activity(1, "refund", "payments-activity")])
    with refused("PD005"):
        complete_workflow_task(session, task, [activity(1, "refund", "orders-activity")])

    assert owner.rows("SELECT stream FROM durable.messages WHERE kind = 'activity'") == []


def test_the_produce_list_defaults_to_the_roles_task_queues_and_the_dba_can_widen_it(owner):
    default = owner.provision(["orders", "orders-activity"])
    widened = owner.provision(["orders"], produce=["orders", "payments"])

    listed = dict(owner.rows("SELECT role_name, produce FROM durable.list_worker_roles('durable')"))
    assert listed == {default.name: ["orders"], widened.name: ["orders", "payments"]}

    owner.start("o-2", task_queue="orders", workflow_name="order_workflow")
    with widened.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        commands = [activity(1, "refund", "payments"), child(2, "pay-o-2", "payment_workflow", "payments")]
        assert complete_workflow_task(session, task, commands) == "ok"
    assert [m[2] for m in owner.messages("payments-activity")] == ["refund"]
    assert [r[2] for r in owner.runs("pay-o-2")] == ["payments"]


def test_re_provisioning_narrows_the_produce_list_of_the_same_role(owner):
    wide = owner.provision(["orders"], produce=["orders", "payments"])
    narrow = owner.provision(["orders"])  # same streams: same role, new password, default produce
    assert narrow.name == wide.name

    owner.start("o-3", task_queue="orders", workflow_name="order_workflow")
    with narrow.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        with refused("PD005"):
            complete_workflow_task(session, task, [activity(1, "refund", "payments")])


def test_the_engine_owner_is_not_limited_by_any_produce_list(owner):
    owner.start("o-4", task_queue="orders", workflow_name="order_workflow")
    with owner.connect() as conn:
        task = claim_workflow_task(conn, "orders", "order_workflow")
        assert complete_workflow_task(conn, task, [activity(1, "refund", "payments")]) == "ok"
    assert [m[2] for m in owner.messages("payments-activity")] == ["refund"]


def test_a_worker_role_cannot_call_the_internal_command_functions_directly(held, owner):
    role, session, task = held
    for call in ("SELECT durable._schedule_activity(NULL::durable.workflows, '{}'::jsonb, NULL::jsonb)",
                 "SELECT durable._apply_command(NULL::durable.workflows, '{}'::jsonb)",
                 "SELECT * FROM durable._start_workflow('durable', 'x', 'x', 'payments', '[]', NULL, "
                 "'reject', NULL, NULL, NULL)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            session.execute(call)


# -- through the SDK --------------------------------------------------------------------------------

async def refund_elsewhere_workflow(order_id: str) -> str:
    payments = Durable.workflow.proxy_activities(task_queue="payments")
    return await payments.refund(order_id)


async def test_an_sdk_worker_whose_workflow_reaches_outside_its_scope_fails_the_task_and_applies_nothing(
        owner, dsn):
    role = owner.provision(["orders", "orders-activity"])
    connection = Durable.Connection(dsn)
    try:
        await Durable.Worker.create(connection=connection, task_queue="orders",
                                    workflow=refund_elsewhere_workflow,
                                    worker_credentials={"user": role.name, "password": role.password})
        client = Durable.Client(connection=connection)
        handle = await client.workflow.start(args=["o-9"], task_queue="orders",
                                             workflow_name="refund_elsewhere_workflow", workflow_id="o-9")

        async def task_failure() -> object:
            return (await handle.state()).get("last_task_failure")

        failure = await wait_for(task_failure, "the refused completion to fail the workflow task")
        assert "refund" in json.dumps(failure) and "payments" in json.dumps(failure), failure
        assert await handle.status() == "running"
        assert owner.messages("payments-activity") == []
        assert "activity_scheduled" not in owner.event_types("o-9")
    finally:
        await Durable.shutdown(grace=1)
        await connection.close()
