"""Issue 11, finding 4: signals are a namespace-wide mailbox. Through a condition command a worker
role consumed a signal buffered for another team's workflow; through a signal command it forged
one for another task queue's workflow. Now a role provisioned with signal prefixes may only wait
on ids starting with one of them (PD005), and a signal a worker role sends reaches only
conditions of runs on task queues in its produce list; the client's (owner's) signals are
unrestricted."""

from __future__ import annotations

import psycopg
import pytest

from support.attack import Owner, claim_workflow_task, complete_workflow_task, condition, refused, signal

pytestmark = pytest.mark.sql


def _received(owner: Owner, workflow_id: str) -> list[str]:
    """The data of every signal_received event of the workflow's latest run, in order."""
    return [e["data"]["data"] for e in owner.events(workflow_id) if e["event_type"] == "signal_received"]


def _wait_as_owner(owner: Owner, workflow_id: str, queue: str, name: str, signal_id: str) -> None:
    """The workflow (claimed by a trusted worker: the owner) starts waiting on ``signal_id``."""
    owner.start(workflow_id, task_queue=queue, workflow_name=name)
    with owner.connect() as conn:
        task = claim_workflow_task(conn, queue, name)
        complete_workflow_task(conn, task, [condition(1, signal_id)])


# -- stealing through a condition command ---------------------------------------------------------

def test_a_condition_outside_the_roles_signal_prefixes_is_refused_and_the_signal_stays_buffered(owner):
    role = owner.provision(["orders"], signal_prefixes=["orders."])
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    assert owner.send_signal("payments.approve-p-1", '"approved by finance"') == "buffered"

    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        with refused("PD005") as refusal:
            complete_workflow_task(session, task, [condition(1, "payments.approve-p-1")])
        assert f"worker role {role.name} may not wait on signal 'payments.approve-p-1'" in refusal.message
        assert _received(owner, "o-1") == []
        # Inside its prefixes it may wait.
        assert complete_workflow_task(session, task, [condition(1, "orders.ship-o-1")]) == "ok"

    # The signal is still there for the workflow it was meant for.
    _wait_as_owner(owner, "p-1", "payments", "payment_workflow", "payments.approve-p-1")
    assert _received(owner, "p-1") == ['"approved by finance"']


def test_the_signal_prefixes_are_listed_and_a_prefix_is_a_prefix_not_a_pattern(owner):
    role = owner.provision(["orders"], signal_prefixes=["orders.", "ship_"])
    listed = owner.rows("SELECT signal_prefixes FROM durable.list_worker_roles('durable') "
                        "WHERE role_name = %s", [role.name])
    assert listed == [(["orders.", "ship_"],)]
    owner.start("o-2", task_queue="orders", workflow_name="order_workflow")
    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        # LIKE wildcards in a prefix match only themselves: 'shipX' does not start with 'ship_'.
        for stolen in ("shipX-payments", "orders-x", "ORDERS.x", "payments.orders."):
            with refused("PD005"):
                complete_workflow_task(session, task, [condition(1, stolen)])
        assert complete_workflow_task(session, task, [condition(1, "ship_o-2")]) == "ok"


# -- forging through a signal command -------------------------------------------------------------

def test_a_forged_signal_does_not_reach_another_teams_waiting_workflow(owner):
    role = owner.provision(["orders"])
    _wait_as_owner(owner, "p-1", "payments", "payment_workflow", "payments.approved")
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")

    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        assert complete_workflow_task(session, task, [signal(1, "payments.approved", '"forged"')]) == "ok"

    assert _received(owner, "p-1") == []
    # The genuine signal (sent by a client) still reaches it.
    assert owner.send_signal("payments.approved", '"genuine"') == "delivered"
    assert _received(owner, "p-1") == ['"genuine"']


def test_a_forged_buffered_signal_is_consumed_neither_by_another_team_nor_ahead_of_a_genuine_one(owner):
    role = owner.provision(["orders"])
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")
    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        complete_workflow_task(session, task, [signal(1, "payments.approved", '"forged"')])
    owner.send_signal("payments.approved", '"genuine"')  # buffered after the forged one

    _wait_as_owner(owner, "p-1", "payments", "payment_workflow", "payments.approved")
    assert _received(owner, "p-1") == ['"genuine"']
    _wait_as_owner(owner, "p-2", "payments", "payment_workflow", "payments.approved")
    assert _received(owner, "p-2") == []  # the forged one is not for payments runs

    # It was buffered, tagged with the sender's produce list: a run on orders may take it.
    _wait_as_owner(owner, "o-2", "orders", "order_workflow", "payments.approved")
    assert _received(owner, "o-2") == ['"forged"']


def test_a_worker_roles_signal_skips_waiters_outside_its_produce_list(owner):
    role = owner.provision(["orders"])
    _wait_as_owner(owner, "p-1", "payments", "payment_workflow", "shared.go")  # the oldest waiter
    _wait_as_owner(owner, "o-1", "orders", "order_workflow", "shared.go")
    owner.start("o-2", task_queue="orders", workflow_name="order_workflow")

    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        complete_workflow_task(session, task, [signal(1, "shared.go", '"from orders"')])

    assert _received(owner, "p-1") == []
    assert _received(owner, "o-1") == ['"from orders"']


def test_a_role_whose_produce_list_covers_payments_may_signal_payments_workflows(owner):
    role = owner.provision(["orders"], produce=["orders", "payments"])
    _wait_as_owner(owner, "p-1", "payments", "payment_workflow", "payments.approved")
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")

    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        complete_workflow_task(session, task, [signal(1, "payments.approved", '"from orders"')])

    assert _received(owner, "p-1") == ['"from orders"']


# -- laundering through an abandoned condition ----------------------------------------------------

def _cancel_wait(seq: int, signal_id: str) -> dict[str, object]:
    return {"type": "cancel_wait", "seq": seq, "signal_id": signal_id}


def test_abandoning_a_condition_cannot_re_send_its_signal_to_another_teams_workflow(owner):
    """A condition abandoned after it took its signal gives the signal back to the head of the
    mailbox. The signal id of that give-back comes from the command: a worker role must not use
    it to re-send data it received (here: its own signal, on its own prefix) to any other id,
    nor to strip a forged signal of its produce-list tag."""
    role = owner.provision(["orders"], signal_prefixes=["orders."])
    _wait_as_owner(owner, "p-1", "payments", "payment_workflow", "payments.approved")
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")

    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        try:
            complete_workflow_task(session, task, [signal(1, "orders.x", '"forged"'),
                                                   condition(2, "orders.x"),
                                                   _cancel_wait(2, "payments.approved")])
        except psycopg.Error as exc:  # refusing the give-back is as good as keeping it in scope
            assert exc.sqlstate in ("PD004", "PD005"), exc

    assert _received(owner, "p-1") == []
    _wait_as_owner(owner, "p-2", "payments", "payment_workflow", "payments.approved")
    assert _received(owner, "p-2") == []


def test_abandoning_a_condition_keeps_a_forged_signal_tagged(owner):
    role = owner.provision(["orders"])  # no signal prefixes: it may wait on any id
    _wait_as_owner(owner, "p-1", "payments", "payment_workflow", "payments.approved")
    owner.start("o-1", task_queue="orders", workflow_name="order_workflow")

    with role.login() as session:
        task = claim_workflow_task(session, "orders", "order_workflow")
        complete_workflow_task(session, task, [signal(1, "payments.approved", '"forged"'),
                                               condition(2, "payments.approved"),
                                               _cancel_wait(2, "payments.approved")])

    assert _received(owner, "p-1") == []
